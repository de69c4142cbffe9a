/**
 * Parsing of node settings as the editor stores them (strings, often empty) and of environment
 * variables: one place for what "a number", "a duration" and "a flag" mean.
 */

export interface NumberOptions {
  /** Used when the value is empty, missing or not a finite number. */
  fallback?: number;
  min?: number;
  max?: number;
  /** Round to a whole number. */
  integer?: boolean;
}

/** `''`, `undefined`, `null` and non-numbers give `fallback` (or undefined); numbers are clamped to [min, max]. */
export function parseNumber(v: unknown, opts: NumberOptions & { fallback: number }): number;
export function parseNumber(v: unknown, opts?: NumberOptions): number | undefined;
export function parseNumber(v: unknown, opts: NumberOptions = {}): number | undefined {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && v.trim() !== '') n = Number(v.trim());
  else return opts.fallback;
  if (!Number.isFinite(n)) return opts.fallback;
  if (opts.integer) n = Math.round(n);
  if (opts.min !== undefined && n < opts.min) n = opts.min;
  if (opts.max !== undefined && n > opts.max) n = opts.max;
  return n;
}

/**
 * A duration setting in `unit` (seconds by default) as milliseconds; empty, non-numeric or
 * non-positive values give `fallbackMs`.
 */
export function parseDurationMs(v: unknown, fallbackMs: number, unit: 's' | 'ms' = 's'): number {
  const n = parseNumber(v);
  if (n === undefined || n <= 0) return fallbackMs;
  return Math.round(unit === 's' ? n * 1000 : n);
}

/** `1`, `true`, `yes`, `on` (any case) are true; `0`, `false`, `no`, `off`, '' are false; else `fallback`. */
export function parseFlag(v: unknown, fallback = false): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v !== 'string') return fallback;
  const s = v.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  return fallback;
}

/**
 * An optional numeric setting that an engine validates itself: undefined when empty, NaN when set to
 * something that is not a number (so the engine refuses it with a clear configuration error instead
 * of silently using its default).
 */
export function parseOptionalNumber(v: unknown): number | undefined {
  if (v === undefined || v === null || (typeof v === 'string' && v.trim() === '')) return undefined;
  return parseNumber(v) ?? NaN;
}
