/**
 * Where synthesized audio lives, and the cache that keeps it.
 *
 * Audio directory: the configured one, else `$AUDIO_DIR`, else `$DATA_DIR/audio`, else
 * `<os tmp>/ai-dialer-audio`; the first that can be created and written wins (a read-only or missing
 * mount falls through).
 *
 * Cache: one WAV per (engine, voice/settings, text), named ONLY from a SHA-256 of those (so no text
 * ever reaches a file name or an AGI command). Files are written to a temporary name and renamed, so
 * Asterisk never plays a half-written file. A size cap evicts the least recently used files first
 * (a hit refreshes the file's time); files leased for a playback in progress are never evicted.
 * Concurrent requests for the same key share one synthesis.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { createHash, randomBytes } from 'crypto';

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

interface Entry {
  size: number;
  atime: number;
}

export interface CacheGetResult {
  /** Full path WITH `.wav`. */
  file: string;
  hit: boolean;
  /** Release the lease taken for playback (idempotent). */
  release(): void;
}

export class AudioCache {
  readonly dir: string;
  readonly maxBytes: number;
  private entries = new Map<string, Entry>();
  private total = 0;
  private leases = new Map<string, number>();
  private inflight = new Map<string, Promise<void>>();
  private clock = 0;

  constructor(dir: string, maxBytes = 200 * 1024 * 1024) {
    this.dir = dir;
    this.maxBytes = maxBytes;
    fs.mkdirSync(dir, { recursive: true });
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
    for (const f of found) this.index(f.key, f.size);
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
   */
  async get(key: string, produce: () => Promise<Buffer>): Promise<CacheGetResult> {
    const file = this.fileOf(key);
    if (this.entries.has(key)) {
      if (fs.existsSync(file)) {
        this.touch(key, file);
        return this.lease(key, file, true);
      }
      this.forget(key); // removed behind our back
    }
    let p = this.inflight.get(key);
    let produced = false;
    if (!p) {
      produced = true;
      p = (async () => {
        const bytes = await produce();
        const tmp = path.join(this.dir, `.tmp-${randomBytes(6).toString('hex')}`);
        await fs.promises.writeFile(tmp, bytes);
        await fs.promises.rename(tmp, file);
        this.index(key, bytes.length);
      })();
      this.inflight.set(key, p);
      p.then(
        () => this.inflight.delete(key),
        () => this.inflight.delete(key),
      );
    }
    await p;
    const result = this.lease(key, file, !produced);
    this.evict();
    return result;
  }

  private lease(key: string, file: string, hit: boolean): CacheGetResult {
    this.leases.set(key, (this.leases.get(key) ?? 0) + 1);
    let released = false;
    return {
      file,
      hit,
      release: () => {
        if (released) return;
        released = true;
        const n = (this.leases.get(key) ?? 1) - 1;
        if (n <= 0) this.leases.delete(key);
        else this.leases.set(key, n);
      },
    };
  }

  private index(key: string, size: number): void {
    const old = this.entries.get(key);
    if (old) this.total -= old.size;
    this.entries.delete(key); // re-insert at the end (Map keeps insertion order = LRU order)
    this.entries.set(key, { size, atime: ++this.clock });
    this.total += size;
  }

  private touch(key: string, file: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    e.atime = ++this.clock;
    this.entries.set(key, e);
    const now = new Date();
    fs.utimes(file, now, now, () => undefined); // LRU order survives a restart
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
