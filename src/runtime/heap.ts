/**
 * How far the JavaScript heap's old generation may grow between two full (mark-compact) collections.
 *
 * V8 picks the factor itself from how fast the process allocates against how fast it collects, and a busy runtime
 * gets its smallest: at 2,000 calls a full collection every 200-300 ms. The packaged runtime sets a fixed growth
 * instead (`HEAP_GROWING_PERCENT`, default 200: to three times what was live), measured in
 * docs/contributing/benchmarks.md ("The heap's growth between full collections"). `0` leaves the choice to V8. A
 * `--heap-growing-percent` on Node.js's own command line wins over the variable (Node.js refuses it in NODE_OPTIONS).
 */

/** The packaged runtime's default. */
export const DEFAULT_HEAP_GROWING_PERCENT = 200;

/**
 * The V8 flag to set for `env`, or undefined when there is none to set (0, or Node.js was started with one). Throws a
 * clear message naming the variable for a value that is not a whole number from 0 to 400.
 */
export function heapGrowingFlag(
  env: NodeJS.ProcessEnv,
  execArgv: readonly string[] = process.execArgv,
): string | undefined {
  if (execArgv.some((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a))) return undefined;
  const raw = env.HEAP_GROWING_PERCENT;
  let n = DEFAULT_HEAP_GROWING_PERCENT;
  if (raw !== undefined && raw.trim() !== '') {
    n = Number(raw);
    if (!/^\s*\d{1,3}\s*$/.test(raw) || n > 400)
      throw new Error(`HEAP_GROWING_PERCENT must be a whole number from 0 to 400 (got "${raw}")`);
  }
  return n === 0 ? undefined : `--heap-growing-percent=${n}`;
}
