/**
 * Instructions per command of one FastAGI server, counted only inside the load's window: the server of
 * server.ts runs under `valgrind --tool=callgrind --instr-atstart=no` (user-space instructions of every
 * thread, garbage collection and the JIT compiler included), the fake Asterisk of load.ts in a normal
 * process; instrumentation is switched on (`callgrind_control -i on <pid>`) when the load says its window
 * starts, after a warm-up, and off when it ends. Start-up is left out, unlike instructions.ts's difference of
 * two runs; what the compiler still does inside the window stays in (see `callgrind_annotate` of the output).
 * Run: `npm run build && nice -n 19 node dist/bench/agi/window.js <kind> [sessions=1000]`. Env:
 * BENCH_AGI_BEFORE (kind `before`), BENCH_AGI_VG_WARMUP_MS (20000), BENCH_AGI_VG_MS (30000),
 * BENCH_AGI_VG_KEEP=<dir> (keep the callgrind output there), BENCH_AGI_SERVER_ARGS (node options of the server, e.g.
 * `--perf-basic-prof`: /tmp/perf-<pid>.map names the JIT-compiled functions of the callgrind output, see jitnames.ts; the
 * output names the server's pid and the kept file).
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { execFileSync, fork, type ChildProcess } from 'child_process';
import type { LoadJob, LoadResult } from './load';
import type { Kind } from './server';

const ext = path.extname(__filename);

/** The messages of a child, in order. */
function inbox(c: ChildProcess): () => Promise<unknown> {
  const box: unknown[] = [];
  const waiting: Array<(m: unknown) => void> = [];
  c.on('message', (m) => {
    const w = waiting.shift();
    if (w) w(m);
    else box.push(m);
  });
  return () => (box.length ? Promise.resolve(box.shift()) : new Promise((r) => waiting.push(r)));
}

export async function countWindow(
  kind: Kind,
  sessions: number,
  warmupMs: number,
  windowMs: number,
  keep?: string,
): Promise<{
  instructions: number;
  commands: number;
  sessions: number;
  errors: number;
  pid?: number;
  kept?: string;
}> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agi-cg-'));
  const out = path.join(dir, 'callgrind.out');
  const srv = fork(path.join(__dirname, 'server' + ext), [], {
    execPath: 'valgrind',
    execArgv: [
      '--tool=callgrind',
      '--instr-atstart=no',
      '--smc-check=all-non-file',
      `--callgrind-out-file=${out}`,
      '--log-file=/dev/null',
      process.execPath,
      ...(process.env.BENCH_AGI_SERVER_ARGS ?? '').split(' ').filter(Boolean),
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const load = fork(path.join(__dirname, 'load' + ext), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const fromSrv = inbox(srv);
  const fromLoad = inbox(load);
  const instr = (on: boolean) =>
    execFileSync('callgrind_control', ['-i', on ? 'on' : 'off', String(srv.pid)], { stdio: 'ignore' });
  try {
    srv.send({ kind, perSession: 100 });
    const { port, error } = (await fromSrv()) as { port: number; error?: string };
    if (error) throw new Error(error);
    load.send({ port, concurrency: sessions, warmupMs, durationMs: windowMs } as LoadJob);
    await fromLoad(); // window start
    instr(true);
    await fromLoad(); // window end
    instr(false);
    const r = (await fromLoad()) as LoadResult;
    load.send({ release: true });
    await fromLoad();
    const exited = new Promise((resolve) => srv.once('exit', resolve));
    srv.disconnect(); // the server exits; callgrind writes its counts
    await exited;
    const text = fs.readFileSync(out, 'utf8');
    const totals = /^totals:\s+(\d+)/m.exec(text);
    if (!totals) throw new Error(`no instruction count in ${out}`);
    const kept = keep ? path.join(keep, `callgrind-${kind}-${sessions}-${Date.now()}.out`) : undefined;
    if (kept) fs.copyFileSync(out, kept);
    // pid: the server's, so its /tmp/perf-<pid>.map when it ran with --perf-basic-prof
    return {
      instructions: Number(totals[1]),
      commands: r.commands,
      sessions: r.sessions,
      errors: r.errors,
      pid: srv.pid,
      kept,
    };
  } finally {
    if (load.connected) load.disconnect();
    if (srv.connected) srv.disconnect();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const kind = (process.argv[2] ?? 'ours') as Kind;
  const sessions = Number(process.argv[3] ?? 1000);
  countWindow(
    kind,
    sessions,
    Number(process.env.BENCH_AGI_VG_WARMUP_MS ?? 20000),
    Number(process.env.BENCH_AGI_VG_MS ?? 30000),
    process.env.BENCH_AGI_VG_KEEP,
  ).then(
    (r) =>
      console.log(
        JSON.stringify({ kind, concurrent: sessions, ...r, perCommand: Math.round(r.instructions / r.commands) }),
      ),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
