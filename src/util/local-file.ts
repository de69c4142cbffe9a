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
 * Guards: a directory on a slow disk would stall every call while one blocking call waits.
 *  - A directory on a network file system (NFS, SMB/CIFS, FUSE, 9p, Ceph, ...) switches the process to the
 *    thread pool as soon as it is named (`checkDir`, by the audio cache and the record node).
 *  - Three blocking calls in a row slower than `slowMs` (default 20 ms; one slow call can be the process
 *    being descheduled), or one slower than `stallMs` (default 200 ms), switch it for good, with one warning.
 *  - A read blocks only for a non-empty regular file of at most `maxBlockingBytes` (16 MB), opened without
 *    waiting (a FIFO, a device, an empty or a bigger file goes through the thread pool).
 * `LOCAL_FILE_IO=async` starts in the thread pool. No Node-RED import.
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
  /** A read blocks only for a regular file up to this size (bytes). */
  maxBlockingBytes?: number;
  /** Told once, when a slow disk switches the mode. */
  onSlow?: (message: string) => void;
}

export class LocalFiles {
  private modeNow: LocalFileMode;
  private readonly slowMs: number;
  private readonly stallMs: number;
  private slowInRow = 0;
  private readonly maxBlockingBytes: number;
  private readonly now: () => number;
  private readonly onSlow: (message: string) => void;

  constructor(opts: LocalFilesOptions = {}) {
    this.modeNow = opts.mode ?? 'blocking';
    this.slowMs = opts.slowMs ?? 20;
    this.stallMs = opts.stallMs ?? 200;
    this.maxBlockingBytes = opts.maxBlockingBytes ?? 16 * 1024 * 1024;
    this.now = opts.now ?? (() => performance.now());
    this.onSlow = opts.onSlow ?? ((m) => process.emitWarning(m, { code: 'AID_SLOW_DISK' }));
  }

  get mode(): LocalFileMode {
    return this.modeNow;
  }

  /** A file's bytes (errors as `fs` gives them: `code` ENOENT, EACCES, ...). */
  async read(file: string): Promise<Buffer> {
    if (this.modeNow === 'async') return fs.promises.readFile(file);
    const bytes = this.timedSync(`reading ${file}`, () => this.readBlocking(file));
    return bytes ?? fs.promises.readFile(file);
  }

  /** The bytes of a non-empty regular file up to maxBlockingBytes; undefined for anything else (read it in the pool). */
  private readBlocking(file: string): Buffer | undefined {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile() || st.size === 0 || st.size > this.maxBlockingBytes) return undefined;
      const b = Buffer.allocUnsafe(st.size);
      let n = 0;
      for (let got = 1; n < b.length && got > 0; n += got) got = fs.readSync(fd, b, n, b.length - n, null);
      return n === b.length ? b : b.subarray(0, n);
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * A directory this process reads and writes call audio in: on a network file system, every step goes
   * through the thread pool from now on (one message, naming it).
   */
  checkDir(dir: string): void {
    if (this.modeNow === 'async') return;
    let type: number;
    try {
      type = fs.statfsSync(dir).type;
    } catch {
      return; // not there yet, or no statfs: the timing guard still holds
    }
    const name = NETWORK_FS.get(type >>> 0);
    if (name) this.switchToAsync(`${dir} is on a network file system (${name})`);
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
      await this.write(tmp, bytes, 'wx');
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
  async write(file: string, bytes: Uint8Array, flag: 'w' | 'wx' = 'w'): Promise<void> {
    if (this.modeNow === 'async') return fs.promises.writeFile(file, bytes, { flag });
    const f = await this.create(file, flag);
    return f.finish(bytes);
  }

  /**
   * Create `file` now (created or truncated; `wx`: never an existing name) and write its bytes later with
   * `finish`, as a recorder does that opens its file when it starts and has its bytes when it stops: the
   * costly creation (through the thread pool in blocking mode) is done before the bytes are waited for, and
   * `finish` writes and closes with blocking calls. `finish` runs once (a second call rejects); a file never
   * finished nor abandoned keeps its descriptor open, so every path must do one of the two.
   */
  async create(file: string, flag: 'w' | 'wx' = 'w'): Promise<CreatedFile> {
    if (this.modeNow === 'async') {
      const fh = await fs.promises.open(file, flag);
      return onceFinished(
        file,
        async (bytes) => {
          try {
            await fh.writeFile(bytes);
          } finally {
            await fh.close();
          }
        },
        () => fh.close(),
      );
    }
    const fd = await openForWrite(file, flag);
    return onceFinished(
      file,
      (bytes) => {
        this.timedSync(`writing ${file}`, () => {
          try {
            for (let at = 0; at < bytes.length;) at += fs.writeSync(fd, bytes, at, bytes.length - at);
          } finally {
            fs.closeSync(fd);
          }
        });
      },
      () => fs.closeSync(fd),
    );
  }

  /** `fn`, timed: three in a row slower than slowMs, or one slower than stallMs, switch to async. */
  private timedSync<T>(what: string, fn: () => T): T {
    const t0 = this.now();
    try {
      return fn();
    } finally {
      const ms = this.now() - t0;
      if (ms <= this.slowMs) this.slowInRow = 0;
      else if (++this.slowInRow >= 3 || ms > this.stallMs)
        this.switchToAsync(`the disk is slow (${Math.round(ms)} ms ${what})`);
    }
  }

  private switchToAsync(why: string): void {
    if (this.modeNow === 'async') return;
    this.modeNow = 'async';
    this.onSlow(
      `${why}: audio and recordings are read and written in the background from now on. ` +
        `Keep AUDIO_DIR and RECORDINGS_DIR on a local disk.`,
    );
  }
}

/** A file created by `LocalFiles.create`, waiting for its bytes. */
export interface CreatedFile {
  /** Write the whole file and close it (once). */
  finish(bytes: Uint8Array): Promise<void>;
  /** Close it as it is, unless finish ran (then nothing): for a way out that does not write it. */
  abandon(): Promise<void>;
}

function onceFinished(
  file: string,
  write: (bytes: Uint8Array) => void | Promise<void>,
  close: () => void | Promise<void>,
): CreatedFile {
  let done = false;
  return {
    finish: async (bytes) => {
      if (done) throw new Error(`${file}: already written or closed`);
      done = true;
      await write(bytes);
    },
    abandon: async () => {
      if (done) return;
      done = true;
      await close();
    },
  };
}

/** A file opened for writing (`w`: created or truncated; `wx`: created, never an existing name or link): one thread-pool step. */
function openForWrite(file: string, flag: 'w' | 'wx'): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, flag, (err, fd) => (err ? reject(err) : resolve(fd))));
}

/** statfs `f_type` of the network file systems (Linux magic numbers). */
const NETWORK_FS = new Map<number, string>([
  [0x6969, 'NFS'],
  [0xff534d42, 'CIFS'],
  [0xfe534d42, 'SMB2'],
  [0x517b, 'SMB'],
  [0x65735546, 'FUSE'],
  [0x01021997, '9p'],
  [0x00c36400, 'Ceph'],
  [0x47504653, 'GPFS'],
  [0x0bd00bd0, 'Lustre'],
  [0x6b414653, 'AFS'],
]);

/** The process's instance: blocking unless `LOCAL_FILE_IO=async`. */
export const localFiles = new LocalFiles({
  mode: process.env.LOCAL_FILE_IO?.trim().toLowerCase() === 'async' ? 'async' : 'blocking',
});
