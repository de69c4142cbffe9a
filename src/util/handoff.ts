/**
 * Hand-over across a redeploy. Node-RED closes every node of a full Deploy and creates new instances
 * with the same ids; what must outlive the instance (the FastAGI server and its live sessions, the ARI
 * connection and the calls it follows, the database and the event bus, a conversation step in
 * progress) is parked here by the closing instance and adopted by the new one:
 *
 *   park(slot, key, value, dispose)   a node closes without being removed
 *   adopt(slot, key)                  the new instance of the node starts: the parked value when its
 *                                     key (a digest of the settings) is the same, else undefined (the
 *                                     parked value is disposed: the node was changed)
 *   announce(slot, value) / successor(slot, ms)
 *                                     the current instance of a node, and a wait for the next one
 *
 * A value nobody adopts within HANDOFF_LINGER_MS is disposed (the node was disabled, or the runtime
 * stops); `disposeParked()` disposes all at once (the runtime's shutdown). No Node-RED import.
 */
import { createHash } from 'crypto';

/** How long a parked value waits for the next instance of its node (a Deploy takes well under this). */
export const HANDOFF_LINGER_MS = 30_000;

interface Parked {
  key: string;
  value: unknown;
  dispose: () => Promise<void> | void;
  timer: NodeJS.Timeout;
}

const parked = new Map<string, Parked>();
const current = new Map<string, unknown>();
const waiting = new Map<string, Set<(v: unknown) => void>>();

/** A digest of a node's settings (credentials included; only the digest is kept). */
export function handoffKey(settings: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify(settings ?? null))
    .digest('hex');
}

const disposing = new Set<Promise<void>>();

function disposeEntry(p: Parked): Promise<void> {
  clearTimeout(p.timer);
  const d = Promise.resolve()
    .then(() => p.dispose())
    .catch(() => undefined)
    .finally(() => disposing.delete(d));
  disposing.add(d);
  return d;
}

/** Keep `value` for the next instance of `slot`; disposed after `lingerMs` unless adopted. */
export function park(
  slot: string,
  key: string,
  value: unknown,
  dispose: () => Promise<void> | void,
  lingerMs = HANDOFF_LINGER_MS,
): void {
  const old = parked.get(slot);
  if (old && old.value !== value) void disposeEntry(old);
  const timer = setTimeout(() => {
    const p = parked.get(slot);
    if (!p || p.value !== value) return;
    parked.delete(slot);
    void disposeEntry(p);
  }, lingerMs);
  timer.unref();
  parked.set(slot, { key, value, dispose, timer });
}

/**
 * The value parked under `slot` when its key is `key` (taken: it is no longer parked). A value parked
 * under another key is disposed; `disposed` resolves when that is done (e.g. a port is free again).
 */
export function adopt<T>(slot: string, key: string): { value?: T; disposed: Promise<void> } {
  const p = parked.get(slot);
  if (!p) return { disposed: Promise.resolve() };
  parked.delete(slot);
  if (p.key === key) {
    clearTimeout(p.timer);
    return { value: p.value as T, disposed: Promise.resolve() };
  }
  return { disposed: disposeEntry(p) };
}

/** Dispose every parked value now, and wait for disposals under way (the runtime stops). */
export async function disposeParked(): Promise<void> {
  const all = [...parked.values()];
  parked.clear();
  for (const p of all) void disposeEntry(p);
  await Promise.all([...disposing]);
}

/** How many values are parked (health, tests). */
export function parkedCount(): number {
  return parked.size;
}

/** `value` is the current instance of `slot`: anyone waiting for a successor gets it. */
export function announce(slot: string, value: unknown): void {
  current.set(slot, value);
  const w = waiting.get(slot);
  if (!w) return;
  waiting.delete(slot);
  for (const f of w) f(value);
}

/** The instance of `slot` is gone (closed); `removed`: no successor will come. */
export function retire(slot: string, value: unknown, removed: boolean): void {
  if (current.get(slot) === value) current.delete(slot);
  if (!removed) return;
  const w = waiting.get(slot);
  if (!w) return;
  waiting.delete(slot);
  for (const f of w) f(undefined);
}

/**
 * The instance of `slot` that follows `prev` (at once if it is already there), or undefined after `ms`.
 */
export function successor<T>(slot: string, prev: unknown, ms = HANDOFF_LINGER_MS): Promise<T | undefined> {
  const now = current.get(slot);
  if (now !== undefined && now !== prev) return Promise.resolve(now as T);
  return new Promise<T | undefined>((resolve) => {
    let set = waiting.get(slot);
    if (!set) waiting.set(slot, (set = new Set()));
    const s = set;
    const timer = setTimeout(() => {
      s.delete(f);
      resolve(undefined);
    }, ms);
    timer.unref();
    const f = (v: unknown): void => {
      clearTimeout(timer);
      s.delete(f);
      resolve(v as T | undefined);
    };
    s.add(f);
  });
}
