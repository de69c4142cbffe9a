/**
 * Where synthesized audio lives, and the cache that keeps it.
 *
 * Audio directory: the configured one, else `$AUDIO_DIR`, else `$DATA_DIR/audio`, else
 * `<os tmp>/ai-dialer-audio`; the first that can be created and written wins (a read-only or missing
 * mount falls through).
 *
 * Cache: one WAV per (engine, voice/settings, text), named ONLY from a SHA-256 of those (so no text
 * ever reaches a file name or an AGI command). Files are written to a temporary name and renamed, so
 * Asterisk never plays a half-written file. A size cap evicts the least recently used files first;
 * files leased for a playback in progress are never evicted. Concurrent requests for the same key share
 * one synthesis.
 *
 * A hit is served from memory: the index knows each file's size and audio length, and touches the disk
 * at most once per HIT_CHECK_MS per file (one `stat`: was it removed behind our back?) and refreshes the
 * file's time (which keeps the LRU order across restarts) at most once per TOUCH_MS.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { createHash, randomBytes } from 'crypto';
import { localFiles } from '../util/local-file';

/** Pick the first usable audio directory: configured, then AUDIO_DIR, then DATA_DIR/audio, then the OS temp dir. */
export function resolveAudioDir(configured?: string, env: NodeJS.ProcessEnv = process.env): string {
  const candidates: string[] = [];
  if (configured && configured.trim()) candidates.push(path.resolve(configured.trim()));
  if (env.AUDIO_DIR && env.AUDIO_DIR.trim()) candidates.push(path.resolve(env.AUDIO_DIR.trim()));
  if (env.DATA_DIR && env.DATA_DIR.trim()) candidates.push(path.resolve(env.DATA_DIR.trim(), 'audio'));
  candidates.push(path.join(os.tmpdir(), 'ai-dialer-audio'));
  for (const dir of candidates) {
    try {
      fs.mkdirSync(dir, { recursive: true });
      fs.accessSync(dir, fs.constants.W_OK | fs.constants.R_OK);
      return dir;
    } catch {
      /* try the next one */
    }
  }
  throw new Error(`no writable audio directory (tried ${candidates.join(', ')})`);
}

/** Cache key of a synthesis: engine identity (engine, voice, settings) and the exact text. */
export function cacheKey(engineIdentity: string, text: string): string {
  return createHash('sha256').update(engineIdentity).update('\u0000').update(text).digest('hex').slice(0, 40);
}

/** Temporary file names: unique to this process (random once, then a counter: no random bytes per write). */
const TMP_TAG = randomBytes(6).toString('hex');
let tmpSeq = 0;

/** A hit checks that its file still exists at most this often (one stat), ms. */
const HIT_CHECK_MS = 5_000;
/** A hit refreshes its file's time (the LRU order after a restart) at most this often, ms. */
const TOUCH_MS = 60_000;

interface Entry {
  size: number;
  atime: number;
  /** Audio length (ms) from the WAV header, once known. */
  durationMs?: number;
  /** When the file was last seen on disk / its time last refreshed (Date.now()). */
  checkedAt: number;
  touchedAt: number;
}

export interface CacheGetResult {
  /** Full path WITH `.wav`. */
  file: string;
  hit: boolean;
  /** Audio length (ms) from the WAV header (8 kHz 16-bit mono as encodeWav writes it), when readable. */
  durationMs?: number;
  /** Release the lease taken for playback (idempotent). */
  release(): void;
  /** On a miss, the WAV bytes this call produced (also in `file`, or soon, with `inMemory`). */
  bytes?: Buffer;
}

export class AudioCache {
  readonly dir: string;
  readonly maxBytes: number;
  private entries = new Map<string, Entry>();
  private total = 0;
  private leases = new Map<string, number>();
  /** Productions under way: the audio, then its file written. */
  private inflight = new Map<string, { bytes: Promise<Buffer>; written: Promise<void> }>();
  private clock = 0;

  private readonly hitCheckMs: number;
  private readonly touchMs: number;

  constructor(dir: string, maxBytes = 200 * 1024 * 1024, opts: { hitCheckMs?: number; touchMs?: number } = {}) {
    this.dir = dir;
    this.maxBytes = maxBytes;
    this.hitCheckMs = opts.hitCheckMs ?? HIT_CHECK_MS;
    this.touchMs = opts.touchMs ?? TOUCH_MS;
    fs.mkdirSync(dir, { recursive: true });
    localFiles.checkDir(dir); // prompts are written here: a network mount writes them in the pool
    // Index what an earlier run left (oldest first by mtime); drop stale temp files.
    const found: Array<{ key: string; size: number; mtime: number }> = [];
    for (const name of fs.readdirSync(dir)) {
      const full = path.join(dir, name);
      if (name.startsWith('.tmp-')) {
        fs.rmSync(full, { force: true });
        continue;
      }
      const m = /^tts-([0-9a-f]{40})\.wav$/.exec(name);
      if (!m) continue;
      try {
        const st = fs.statSync(full);
        found.push({ key: m[1], size: st.size, mtime: st.mtimeMs });
      } catch {
        /* vanished */
      }
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) {
      this.index(f.key, f.size);
      // known on disk now, but checked (and its length read) at its first hit
      const e = this.entries.get(f.key)!;
      e.checkedAt = 0;
      e.touchedAt = f.mtime;
    }
  }

  fileOf(key: string): string {
    if (!/^[0-9a-f]{40}$/.test(key)) throw new Error('invalid cache key');
    return path.join(this.dir, `tts-${key}.wav`);
  }

  /** Bytes held. */
  get size(): number {
    return this.total;
  }

  /** Number of files held. */
  get count(): number {
    return this.entries.size;
  }

  has(key: string): boolean {
    return this.entries.has(key) && fs.existsSync(this.fileOf(key));
  }

  /**
   * The file for `key`, producing it with `produce` (which returns the WAV bytes) on a miss. Concurrent
   * callers with the same key wait for one production. The returned lease keeps the file from eviction
   * until released.
   *
   * `inMemory`: the caller reads `bytes` and never plays the file (stream mode). A miss then resolves as
   * soon as the audio exists, with its bytes, while the file is written in the background (a later
   * request for the key waits for that write; a failed write leaves the key uncached, and is not this
   * caller's failure); a request for a key being produced gets the same bytes.
   */
  async get(key: string, produce: () => Promise<Buffer>, opts: { inMemory?: boolean } = {}): Promise<CacheGetResult> {
    const file = this.fileOf(key);
    const e = this.entries.get(key);
    if (e) {
      const now = Date.now();
      let there = now - e.checkedAt < this.hitCheckMs;
      if (!there) {
        there = await fs.promises.stat(file).then(
          (st) => st.isFile(),
          () => false,
        );
        e.checkedAt = now;
      }
      if (there && this.entries.get(key) === e) {
        if (e.durationMs === undefined) e.durationMs = await headerDurationMs(file);
        this.touch(key, file, now);
        return this.lease(key, file, true, e.durationMs);
      }
      if (!there) this.forget(key); // removed behind our back
    }
    let job = this.inflight.get(key);
    const produced = !job;
    if (!job) {
      const bytes = produce();
      const written = bytes.then(async (b) => {
        const tmp = path.join(this.dir, `.tmp-${TMP_TAG}-${++tmpSeq}`);
        await localFiles.writeAtomic(tmp, file, b);
        this.index(key, b.length, wavDurationMs(b));
        this.evict();
      });
      const j = { bytes, written };
      job = j;
      this.inflight.set(key, j);
      written.then(
        () => this.inflight.get(key) === j && this.inflight.delete(key),
        () => this.inflight.get(key) === j && this.inflight.delete(key),
      );
    }
    if (opts.inMemory) {
      const made = await job.bytes;
      job.written.catch(() => undefined); // the next request for the key produces it again
      const result = this.lease(key, file, !produced, wavDurationMs(made));
      result.bytes = made;
      return result;
    }
    await job.written;
    const result = this.lease(key, file, !produced, this.entries.get(key)?.durationMs);
    // the bytes just made: a stream-mode reader needs not read the file back
    if (produced) result.bytes = await job.bytes;
    return result;
  }

  private lease(key: string, file: string, hit: boolean, durationMs: number | undefined): CacheGetResult {
    this.leases.set(key, (this.leases.get(key) ?? 0) + 1);
    let released = false;
    return {
      file,
      hit,
      durationMs,
      release: () => {
        if (released) return;
        released = true;
        const n = (this.leases.get(key) ?? 1) - 1;
        if (n <= 0) this.leases.delete(key);
        else this.leases.set(key, n);
      },
    };
  }

  private index(key: string, size: number, durationMs?: number): void {
    const old = this.entries.get(key);
    if (old) this.total -= old.size;
    this.entries.delete(key); // re-insert at the end (Map keeps insertion order = LRU order)
    const now = Date.now();
    this.entries.set(key, { size, atime: ++this.clock, durationMs, checkedAt: now, touchedAt: now });
    this.total += size;
  }

  private touch(key: string, file: string, now: number): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    e.atime = ++this.clock;
    this.entries.set(key, e);
    if (now - e.touchedAt < this.touchMs) return;
    e.touchedAt = now;
    const d = new Date(now);
    fs.utimes(file, d, d, () => undefined); // LRU order survives a restart
  }

  private forget(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.total -= e.size;
    this.entries.delete(key);
  }

  /** Remove least recently used, unleased files until the cache fits its cap. */
  evict(): void {
    if (this.total <= this.maxBytes) return;
    for (const key of [...this.entries.keys()]) {
      if (this.total <= this.maxBytes) break;
      if (this.leases.has(key) || this.inflight.has(key)) continue;
      fs.rmSync(this.fileOf(key), { force: true });
      this.forget(key);
    }
  }
}

/**
 * Audio length of a cached WAV from its header: encodeWav's 44-byte layout, whose data size (offset 40)
 * counts 8 kHz 16-bit mono samples (16 bytes per ms); undefined for anything else.
 */
export function wavDurationMs(head: Buffer): number | undefined {
  if (head.length < 44 || head.toString('ascii', 36, 40) !== 'data') return undefined;
  return Math.round(head.readUInt32LE(40) / 16);
}

/** wavDurationMs of a file (one open, one 44-byte read); undefined when unreadable. */
async function headerDurationMs(file: string): Promise<number | undefined> {
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(file, 'r');
    const head = Buffer.alloc(44);
    const { bytesRead } = await fh.read(head, 0, 44, 0);
    return wavDurationMs(head.subarray(0, bytesRead));
  } catch {
    return undefined;
  } finally {
    await fh?.close().catch(() => undefined);
  }
}
