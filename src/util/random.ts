/**
 * Randomness in one place: unpredictable bytes for names and tokens (below), and a seeded, replayable
 * sequence for simulations, benchmarks and fuzz tests (`seededRandom`).
 *
 * Random bytes for names and tokens made on every call or turn (recording files, channel ids, call
 * tokens): drawn from the operating system's generator 4 KB at a time instead of one system call each
 * (a per-turn `randomBytes(6)` cost ~20 µs of the main thread on a loaded 2-core machine). Every byte is
 * handed out once, so the values are as unpredictable as `crypto.randomBytes`'s.
 */
import { randomFillSync } from 'crypto';

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafeSlow(POOL_SIZE);
let used = POOL_SIZE;

function take(n: number): Buffer {
  if (n > POOL_SIZE) return randomFillSync(Buffer.allocUnsafe(n));
  if (used + n > POOL_SIZE) {
    randomFillSync(pool);
    used = 0;
  }
  const out = Buffer.from(pool.subarray(used, used + n)); // a copy: the pool is refilled later
  pool.fill(0, used, used + n); // nothing handed out stays readable in the pool
  used += n;
  return out;
}

/** `n` random bytes as lower-case hex (2n characters). */
export function randomHex(n: number): string {
  return take(n).toString('hex');
}

/** `n` random bytes as base64url. */
export function randomBase64url(n: number): string {
  return take(n).toString('base64url');
}

/**
 * A replayable sequence of numbers in [0, 1) from `seed` (mulberry32): the same seed gives the same
 * sequence, so a simulated load or a fuzz failure can be run again. Never for secrets.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
