/**
 * FastAGI benchmark (issue #17): GET VARIABLE round trips (100 per session) and short sessions
 * (environment block, one GET VARIABLE, close) at 1 / 100 / 1,000 concurrent sessions, against
 *   (a) floor: a hand-written socket server with no library (reads the environment block, writes the
 *       same command bytes, counts reply lines, closes);
 *   (b) ours: src/agi/server.ts + session (argument quoting, reply parsing, per-command timeout,
 *       HANGUP handling, registry, hostile-input limits), driven by `await session.getVariable()`;
 *   (c) optionally `ding-dong`, the npm FastAGI library (BENCH_AGI_KINDS=floor,ours,ding-dong).
 * Each server runs in its own process, started fresh for every run (bench/agi/server.ts); the
 * fake-Asterisk load runs in another (bench/agi/load.ts). Runs are interleaved (the order of the
 * contenders alternates each round) and repeated; reported are min / median / max over the rounds of
 * the rate and of the server process's CPU time (user + system) per command or per session inside the
 * counting window, and the paired ratios ours / floor of each round (min / median / max).
 * Env: BENCH_AGI_ROUNDS (5), BENCH_AGI_MS (1500 per run), BENCH_AGI_WARMUP_MS (1000 before each window), BENCH_AGI_LEVELS (1,100,1000),
 * BENCH_AGI_MODES (cmd,ses), BENCH_AGI_KINDS (floor,ours; `before` with BENCH_AGI_BEFORE=<another build's dist/>
 * runs that build's server interleaved with this one's), BENCH_AGI_PROF (a directory: `--cpu-prof` of
 * every server process), BENCH_AGI_SERVER_ARGS (node options of the server processes, e.g.
 * `--min-semi-space-size=256 --max-semi-space-size=256`: no GC in the window, so BENCH_AGI_VERBOSE shows the
 * bytes allocated per command or session), BENCH_QUICK=1 (3 rounds of 1 s).
 */
import path from 'path';
import { fork, type ChildProcess } from 'child_process';
import type { LoadJob, LoadResult } from './load';
import type { Kind, WindowCost } from './server';

const ext = path.extname(__filename);
/** load before the counting window: a fresh server process warms up (JIT) first, as a running one is */
const WARMUP_MS = Number(process.env.BENCH_AGI_WARMUP_MS ?? 1000);

/** Messages from a child, in order, one at a time. */
class Child {
  readonly proc: ChildProcess;
  private inbox: unknown[] = [];
  private waiting: ((m: unknown) => void)[] = [];
  private exited?: Error;
  constructor(file: string, execArgv: string[] = []) {
    this.proc = fork(path.join(__dirname, file + ext), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv,
    });
    this.proc.on('message', (m) => {
      const w = this.waiting.shift();
      if (w) w(m);
      else this.inbox.push(m);
    });
    this.proc.on('exit', (code) => {
      this.exited = new Error(`bench child ${file} exited (${code})`);
      for (const w of this.waiting.splice(0)) w(this.exited);
    });
  }
  async next<T>(): Promise<T> {
    const m = this.inbox.length
      ? this.inbox.shift()
      : (this.exited ?? (await new Promise<unknown>((r) => this.waiting.push(r))));
    if (m instanceof Error) throw m;
    if ((m as { error?: string }).error) throw new Error((m as { error: string }).error);
    return m as T;
  }
  send(m: unknown): void {
    this.proc.send(m as object);
  }
  stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return Promise.resolve();
    return new Promise((r) => {
      this.proc.once('exit', () => r());
      this.proc.disconnect();
    });
  }
}

/** The load's counts and what the server process spent inside the window (CPU µs user + system, ...). */
type Measured = LoadResult & WindowCost;

async function measure(
  load: Child,
  kind: Kind,
  perSession: number,
  concurrency: number,
  durationMs: number,
  profDir?: string,
): Promise<Measured> {
  const prof = profDir
    ? [
        '--cpu-prof',
        '--cpu-prof-dir',
        profDir,
        '--cpu-prof-name',
        `${kind}-${perSession}-${concurrency}-${Date.now()}.cpuprofile`,
      ]
    : [];
  const extra = process.env.BENCH_AGI_SERVER_ARGS ? process.env.BENCH_AGI_SERVER_ARGS.split(' ').filter(Boolean) : [];
  const srv = new Child('server', [...extra, ...prof]);
  try {
    srv.send({ kind, perSession });
    const { port } = await srv.next<{ port: number }>();
    load.send({ port, concurrency, warmupMs: WARMUP_MS, durationMs } as LoadJob);
    await load.next<{ window: 'start' }>();
    srv.send({ cpu: 'start' });
    await load.next<{ window: 'end' }>();
    srv.send({ cpu: 'stop' });
    const [r, cost] = await Promise.all([load.next<LoadResult>(), srv.next<WindowCost>()]);
    load.send({ release: true });
    await load.next<{ released: true }>();
    return { ...r, ...cost };
  } finally {
    await srv.stop();
  }
}

const median = (xs: number[]) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');
const mmm = (xs: number[], d = 2) => {
  const f = xs.filter(Number.isFinite);
  return f.length ? `${fmt(Math.min(...f), d)} / ${fmt(median(f), d)} / ${fmt(Math.max(...f), d)}` : 'n/a';
};

export async function run(
  opts: { rounds?: number; durationMs?: number } = {},
): Promise<Array<Record<string, string | number>>> {
  const quick = process.env.BENCH_QUICK === '1';
  const rounds = opts.rounds ?? Number(process.env.BENCH_AGI_ROUNDS ?? (quick ? 3 : 5));
  const durationMs = opts.durationMs ?? Number(process.env.BENCH_AGI_MS ?? (quick ? 1000 : 1500));
  const kinds = (process.env.BENCH_AGI_KINDS ?? 'floor,ours').split(',') as Kind[];
  const levels = process.env.BENCH_AGI_LEVELS ? process.env.BENCH_AGI_LEVELS.split(',').map(Number) : [1, 100, 1000];
  const modes = (process.env.BENCH_AGI_MODES ?? 'cmd,ses').split(',');
  const profDir = process.env.BENCH_AGI_PROF ? path.resolve(process.env.BENCH_AGI_PROF) : undefined;
  const load = new Child('load');
  /** per key `mode:kind:level`, one result per round */
  const res = new Map<string, Measured[]>();
  try {
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? kinds : [...kinds].reverse();
      for (const c of levels)
        for (const mode of modes)
          for (const k of order) {
            const r = await measure(load, k, mode === 'cmd' ? 100 : 1, c, durationMs, profDir);
            const key = `${mode}:${k}:${c}`;
            res.set(key, [...(res.get(key) ?? []), r]);
            if (process.env.BENCH_AGI_VERBOSE) {
              const n = mode === 'cmd' ? r.commands : r.sessions;
              console.error(
                `round ${round + 1} ${key}: ${Math.round((n * 1000) / r.elapsedMs)}/s, ${fmt(r.cpuUs / Math.max(1, n), 2)} µs cpu each (user ${fmt(r.userUs / Math.max(1, n), 2)}), per 1000: ${fmt((r.gcs * 1000) / Math.max(1, n), 2)} GCs (${fmt((r.gcMs * 1000) / Math.max(1, n), 1)} ms), ${fmt((r.minorFaults * 1000) / Math.max(1, n), 1)} page faults, ${fmt((r.ctxSwitches * 1000) / Math.max(1, n), 0)} context switches${r.gcs === 0 ? `, ${fmt(r.heapBytes / Math.max(1, n), 0)} B allocated each` : ''}; errors ${r.errors}`,
              );
            }
          }
    }
  } finally {
    await load.stop();
  }
  const rows: Array<Record<string, string | number>> = [];
  for (const [mode, by, label] of [
    ['cmd', 'commands', 'GET VARIABLE round trips (100/session)'],
    ['ses', 'sessions', 'sessions (env + 1 command + close)'],
  ] as const) {
    if (!modes.includes(mode)) continue;
    for (const c of levels) {
      const rate = (k: Kind) => (res.get(`${mode}:${k}:${c}`) ?? []).map((r) => (r[by] * 1000) / r.elapsedMs);
      const cpu = (k: Kind) => (res.get(`${mode}:${k}:${c}`) ?? []).map((r) => r.cpuUs / Math.max(1, r[by]));
      const user = (k: Kind) => (res.get(`${mode}:${k}:${c}`) ?? []).map((r) => r.userUs / Math.max(1, r[by]));
      const paired = (a: number[], b: number[]) => a.map((v, i) => v / b[i]);
      const row: Record<string, string | number> = { workload: label, concurrent: c, rounds: rate('floor').length };
      for (const k of kinds) {
        row[`${k} /s`] = mmm(rate(k), 0);
        row[`${k} cpu µs`] = mmm(cpu(k));
        row[`${k} user µs`] = mmm(user(k));
      }
      for (const k of kinds.filter((x) => x !== 'floor')) {
        row[`${k}/floor rate`] = mmm(paired(rate(k), rate('floor')));
        row[`${k}/floor cpu`] = mmm(paired(cpu(k), cpu('floor')));
      }
      row.errors = kinds.reduce(
        (a, k) => a + (res.get(`${mode}:${k}:${c}`) ?? []).reduce((x, r) => x + r.errors, 0),
        0,
      );
      rows.push(row);
    }
  }
  return rows;
}

if (require.main === module) {
  run().then(
    (rows) => console.table(rows),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
