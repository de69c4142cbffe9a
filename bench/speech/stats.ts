import { performance } from 'perf_hooks';
/** Timing helpers shared by the speech benches: a row of percentiles, and n sequential timings. */
export type Row = Record<string, string | number>;

export function stats(what: string, samples: number[], note = ''): Row {
  const s = samples.slice().sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  const f = (v: number) => (v < 1 ? Number(v.toFixed(3)) : Number(v.toFixed(1)));
  return { what, n: s.length, 'p50 ms': f(q(0.5)), 'p95 ms': f(q(0.95)), 'mean ms': f(mean), note };
}

export async function time(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    out.push(performance.now() - t0);
  }
  return out;
}
