/**
 * Small files on a call's path (a caller's recording, a synthesized prompt), read and written with one
 * blocking call each while the disk answers quickly, instead of a chain of thread-pool steps.
 *
 * Why: every `fs.promises` step is a hand-off to libuv's thread pool and back, and the next step waits
 * for a turn of the event loop. Reading a recording is four steps (open, stat, read, close); writing a
 * prompt and renaming it into place is four. Under load each loop turn waits behind every other call's
 * work, so the number of steps, not the bytes, set how long a turn waits (docs/contributing/benchmarks.md,
 * session 18). A blocking read is also cheaper: on the 2-core bench machine a 64 KB read took 16-34 µs of
 * CPU against 83-98 µs through the pool. Creating a file is not (about 250 µs in a directory of thousands):
 * a write creates its file through the pool (one step) and writes, closes and renames with blocking calls.
 *
 * Guard: a directory on a slow disk (a network mount) would stall every call while one blocking call
 * waits. Three blocking calls in a row slower than `slowMs` (default 20 ms; one slow call can be the
 * process being descheduled), or one slower than `stallMs` (default 200 ms), switch the process to the
 * thread pool for good, with one warning. `LOCAL_FILE_IO=async` starts there. No Node-RED import.
 */
import fs from 'fs';

export type LocalFileMode = 'blocking' | 'async';

export interface LocalFilesOptions {
  mode?: LocalFileMode;
  /** Three blocking calls in a row slower than this (ms) switch to async for good. */
  slowMs?: number;
  /** One blocking call slower than this (ms) switches to async for good. */
  stallMs?: number;
  /** Clock (ms), for tests. */
  now?: () => number;
  /** Told once, when a slow disk switches the mode. */
  onSlow?: (message: string) => void;
}

export class LocalFiles {
  private modeNow: LocalFileMode;
  private readonly slowMs: number;
  private readonly stallMs: number;
  private slowInRow = 0;
  private readonly now: () => number;
  private readonly onSlow: (message: string) => void;

  constructor(opts: LocalFilesOptions = {}) {
    this.modeNow = opts.mode ?? 'blocking';
    this.slowMs = opts.slowMs ?? 20;
    this.stallMs = opts.stallMs ?? 200;
    this.now = opts.now ?? (() => performance.now());
    this.onSlow = opts.onSlow ?? ((m) => process.emitWarning(m, { code: 'AID_SLOW_DISK' }));
  }

  get mode(): LocalFileMode {
    return this.modeNow;
  }

  /** A file's bytes (errors as `fs` gives them: `code` ENOENT, EACCES, ...). */
  async read(file: string): Promise<Buffer> {
    if (this.modeNow === 'async') return fs.promises.readFile(file);
    return this.timedSync(`reading ${file}`, () => fs.readFileSync(file));
  }

  /**
   * Write `bytes` to `tmp`, then rename it to `file`: a reader of `file` sees the old file or the whole
   * new one, never part of it. On failure `tmp` is removed.
   *
   * Blocking mode still creates `tmp` through the thread pool (one step): creating a file in a directory
   * of thousands is the expensive part (about 250 µs of CPU on the bench machine, inode and directory
   * updates), and it stays off the event loop. The write, close and rename that follow are blocking calls.
   */
  async writeAtomic(tmp: string, file: string, bytes: Uint8Array): Promise<void> {
    try {
      await this.write(tmp, bytes);
      if (this.modeNow === 'async') await fs.promises.rename(tmp, file);
      else this.timedSync(`writing ${file}`, () => fs.renameSync(tmp, file));
    } catch (err) {
      await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Write `bytes` to `file` (created or truncated) in place. Blocking mode creates the file through the
   * thread pool (one step; see writeAtomic), then writes and closes it with blocking calls.
   */
  async write(file: string, bytes: Uint8Array): Promise<void> {
    if (this.modeNow === 'async') return fs.promises.writeFile(file, bytes);
    const fd = await openForWrite(file);
    this.timedSync(`writing ${file}`, () => {
      try {
        for (let at = 0; at < bytes.length;) at += fs.writeSync(fd, bytes, at, bytes.length - at);
      } finally {
        fs.closeSync(fd);
      }
    });
  }

  private timedSync<T>(what: string, fn: () => T): T {
    const t0 = this.now();
    try {
      return fn();
    } finally {
      this.timed(t0, what);
    }
  }

  private timed(t0: number, what: string): void {
    const ms = this.now() - t0;
    if (ms <= this.slowMs) {
      this.slowInRow = 0;
      return;
    }
    if (this.modeNow === 'async' || (++this.slowInRow < 3 && ms <= this.stallMs)) return;
    this.modeNow = 'async';
    this.onSlow(
      `the disk is slow (${Math.round(ms)} ms ${what}): audio and recordings are read and written in the ` +
        `background from now on. Keep AUDIO_DIR and RECORDINGS_DIR on a local disk.`,
    );
  }
}

/** A new file for writing (truncated if there), its descriptor: one thread-pool step. */
function openForWrite(file: string): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, 'w', (err, fd) => (err ? reject(err) : resolve(fd))));
}

/** The process's instance: blocking unless `LOCAL_FILE_IO=async`. */
export const localFiles = new LocalFiles({
  mode: process.env.LOCAL_FILE_IO?.trim().toLowerCase() === 'async' ? 'async' : 'blocking',
});
