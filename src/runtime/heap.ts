/**
 * How far the JavaScript heap's old generation may grow between two full (mark-compact) collections.
 *
 * V8 picks the factor itself from how fast the process allocates against how fast it collects, and under load
 * it picks a small one: a runtime at 2,000 calls ran a full collection every 200-300 ms (a live heap of ~55 MB,
 * the next collection due ~10 MB later). A fixed growth of 200 % (to three times the live size,
 * `HEAP_GROWING_PERCENT=200`, the packaged runtime's default) cut the runtime's CPU per call from 14.2-14.8 to
 * 11.5-12.2 ms and the turn p99 from 98-110 to 56-60 ms there, for ~100 MB more memory at that load
 * (docs/contributing/benchmarks.md). `0` leaves the choice to V8. A `--heap-growing-percent` given to Node.js
 * itself (its command line or NODE_OPTIONS) wins over the variable.
 */

/** The packaged runtime's default. */
export const DEFAULT_HEAP_GROWING_PERCENT = 200;

/**
 * The V8 flag to set for `env`, or undefined when there is none to set (0, or Node.js was given one). Throws a
 * clear message naming the variable for a value that is not a whole number from 0 to 400.
 */
export function heapGrowingFlag(
  env: NodeJS.ProcessEnv,
  execArgv: readonly string[] = process.execArgv,
): string | undefined {
  const given = [...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)];
  if (given.some((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a))) return undefined;
  const raw = env.HEAP_GROWING_PERCENT;
  let n = DEFAULT_HEAP_GROWING_PERCENT;
  if (raw !== undefined && raw.trim() !== '') {
    n = Number(raw);
    if (!/^\s*\d{1,3}\s*$/.test(raw) || n > 400)
      throw new Error(`HEAP_GROWING_PERCENT must be a whole number from 0 to 400 (got "${raw}")`);
  }
  return n === 0 ? undefined : `--heap-growing-percent=${n}`;
}
