/**
 * Instructions per command of each FastAGI server (issue #17): a measure the machine's load does not move.
 * Each server (bench/agi/server.ts) runs under `valgrind --tool=cachegrind --cache-sim=no` (user-space
 * instructions of every thread of the process, garbage collection included; the kernel's part, the same
 * read and write per command for every server, is not counted), the fake Asterisk (bench/agi/load.ts)
 * in a normal process. Every kind runs twice, for BENCH_AGI_VG_MS and 3x that; the difference of the two
 * totals divided by the difference of the commands answered is the cost of a command in steady state
 * (start-up and compilation cancel out).
 * Run: `npm run build && nice -n 19 node dist/bench/agi/instructions.js`. Env: BENCH_AGI_KINDS (floor,ours;
 * `before` with BENCH_AGI_BEFORE), BENCH_AGI_LEVELS (1000), BENCH_AGI_VG_MS (20000), BENCH_AGI_MODES (cmd).
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { fork, type ChildProcess } from 'child_process';
import type { LoadJob, LoadResult } from './load';
import type { Kind } from './server';

const ext = path.extname(__filename);

function next<T>(c: ChildProcess): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: unknown) => {
      c.off('exit', onExit);
      if ((m as { error?: string }).error) reject(new Error((m as { error: string }).error));
      else resolve(m as T);
    };
    const onExit = (code: number | null) => {
      c.off('message', onMsg);
      reject(new Error(`bench child exited (${code})`));
    };
    c.once('message', onMsg);
    c.once('exit', onExit);
  });
}

/** One server under valgrind for `ms` of load: its instructions and the commands (or sessions) answered. */
async function count(kind: Kind, perSession: number, concurrency: number, ms: number) {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'agi-vg-')), 'cachegrind.out');
  const srv = fork(path.join(__dirname, 'server' + ext), [], {
    execPath: 'valgrind',
    execArgv: [
      '--tool=cachegrind',
      '--cache-sim=no',
      '--smc-check=all-non-file',
      `--cachegrind-out-file=${out}`,
      '--log-file=/dev/null',
      process.execPath,
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const load = fork(path.join(__dirname, 'load' + ext), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    srv.send({ kind, perSession });
    const { port } = await next<{ port: number }>(srv);
    load.send({ port, concurrency, warmupMs: 0, durationMs: ms } as LoadJob);
    await next(load); // window start
    await next(load); // window end
    const r = await next<LoadResult>(load);
    load.send({ release: true });
    await next(load);
    const exited = new Promise((resolve) => srv.once('exit', resolve));
    srv.disconnect(); // the server exits; valgrind writes its count
    await exited;
    const summary = /^summary:\s+(\d+)/m.exec(fs.readFileSync(out, 'utf8'));
    if (!summary) throw new Error(`no instruction count in ${out}`);
    return { instructions: Number(summary[1]), commands: r.commands, sessions: r.sessions, errors: r.errors };
  } finally {
    if (load.connected) load.disconnect();
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  }
}

export async function run(): Promise<Array<Record<string, string | number>>> {
  const kinds = (process.env.BENCH_AGI_KINDS ?? 'floor,ours').split(',') as Kind[];
  const levels = (process.env.BENCH_AGI_LEVELS ?? '1000').split(',').map(Number);
  const modes = (process.env.BENCH_AGI_MODES ?? 'cmd').split(',');
  const ms = Number(process.env.BENCH_AGI_VG_MS ?? 20000);
  const rows: Array<Record<string, string | number>> = [];
  for (const mode of modes)
    for (const c of levels) {
      const row: Record<string, string | number> = {
        workload: mode === 'cmd' ? '100 GET VARIABLE/session' : 'sessions',
        concurrent: c,
      };
      const per: Partial<Record<Kind, number>> = {};
      for (const k of kinds) {
        const a = await count(k, mode === 'cmd' ? 100 : 1, c, ms);
        const b = await count(k, mode === 'cmd' ? 100 : 1, c, 3 * ms);
        const n = mode === 'cmd' ? b.commands - a.commands : b.sessions - a.sessions;
        per[k] = (b.instructions - a.instructions) / n;
        row[`${k} instr/${mode === 'cmd' ? 'command' : 'session'}`] = Math.round(per[k] as number);
        row[`${k} counted`] = n;
        if (a.errors + b.errors) row[`${k} errors`] = a.errors + b.errors;
      }
      for (const k of kinds.filter((x) => x !== 'floor'))
        if (per.floor) row[`${k}/floor`] = ((per[k] as number) / per.floor).toFixed(3);
      rows.push(row);
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
