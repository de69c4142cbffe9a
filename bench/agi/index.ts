/**
 * FastAGI benchmark: GET VARIABLE round trips (100 per session) and short sessions per second, at
 * 1 / 100 / 1000 concurrent sessions, against
 *   (a) floor: a hand-written socket server with no library (reads the env block, writes the
 *       same command bytes, counts reply lines, closes);
 *   (b) ours: src/agi/server.ts + session (argument quoting, reply parsing, per-command timeout,
 *       HANGUP handling, registry);
 *   (c) ding-dong: the npm FastAGI library, same workload.
 * The fake-Asterisk load runs in a separate process (bench/agi/load.ts). Runs are interleaved (order
 * rotated each round) and repeated; each rate is the best of the rounds, and so is each CPU figure
 * (server process user+system µs per command / per session inside the window): on a shared machine
 * noise only lowers a rate or raises a cost, and the CPU cost is the steadier of the two.
 * Env: BENCH_AGI_ROUNDS (3), BENCH_AGI_MS (1500 per run), BENCH_AGI_LEVELS (1,100,1000),
 * BENCH_AGI_MODES (cmd,ses), BENCH_AGI_KINDS (floor,ours,ding-dong).
 */
import { createRequire } from 'module';
import net from 'net';
import path from 'path';
import { fork, type ChildProcess } from 'child_process';
import { AgiServer } from '../../src/agi/server';
import type { FastAgiSession } from '../../src/agi/session';
import type { LoadJob, LoadResult } from './load';

type Kind = 'floor' | 'ours' | 'ding-dong';
interface Running {
  port: number;
  close(): Promise<void>;
}

/** (a) The physical floor: no library, minimal parsing, same bytes on the wire. */
function floorServer(perSession: number): Promise<Running> {
  const cmd = 'GET VARIABLE "CALL_ID"\n';
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.setNoDelay(true);
    sock.setEncoding('utf8');
    let inEnv = true;
    let buf = '';
    let left = perSession;
    sock.on('data', (d: string) => {
      buf += d;
      if (inEnv) {
        const end = buf.indexOf('\n\n');
        if (end === -1) return;
        inEnv = false;
        buf = buf.slice(end + 2);
        sock.write(cmd);
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        buf = buf.slice(nl + 1);
        if (--left > 0) sock.write(cmd);
        else sock.end();
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => sockets.delete(sock));
  });
  return listen(server, sockets);
}

/** (b) Our server and session. */
async function ourServer(perSession: number): Promise<Running> {
  const server = new AgiServer({ host: '127.0.0.1', port: 0, maxSessions: 100000 });
  server.on('session', (s: FastAgiSession) => {
    void (async () => {
      try {
        for (let i = 0; i < perSession; i++) await s.getVariable('CALL_ID');
      } catch {
        // the load generator drops its sockets at the end of a run
      }
      s.close();
    })();
  });
  const { port } = await server.listen();
  return { port, close: () => server.close() };
}

/** (c) ding-dong. */
function dingDongServer(perSession: number): Promise<Running> {
  // ding-dong ships no types
  const agi = createRequire(__filename)('ding-dong') as (h: (ctx: DingDongContext) => void) => {
    start(port: number, host?: string): net.Server;
  };
  const handler = (ctx: DingDongContext) => {
    ctx.on('error', () => undefined);
    ctx.onEvent('variables').then(async () => {
      for (let i = 0; i < perSession; i++) await ctx.getVariable('CALL_ID');
      await ctx.end();
    });
  };
  const server = agi(handler).start(0, '127.0.0.1');
  // Same accept backlog as the other two (ding-dong listens with Node's default of 511, which
  // drops SYNs when 1000 clients connect at once): re-listen before any connection arrives.
  server.close();
  server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.setNoDelay(true);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve) => {
    const ready = () =>
      resolve({ port: (server.address() as net.AddressInfo).port, close: () => closeAll(server, sockets) });
    if (server.listening) ready();
    else server.once('listening', ready);
  });
}
interface DingDongContext {
  on(ev: string, fn: (...a: unknown[]) => void): void;
  onEvent(ev: string): Promise<unknown>;
  getVariable(name: string): Promise<unknown>;
  end(): Promise<void>;
}

function listen(server: net.Server, sockets: Set<net.Socket>): Promise<Running> {
  return new Promise((resolve) => {
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () =>
      resolve({ port: (server.address() as net.AddressInfo).port, close: () => closeAll(server, sockets) }),
    );
  });
}

function closeAll(server: net.Server, sockets: Set<net.Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((r) => server.close(() => r()));
}

const makers: Record<Kind, (perSession: number) => Promise<Running>> = {
  floor: floorServer,
  ours: ourServer,
  'ding-dong': dingDongServer,
};

class LoadProcess {
  private child: ChildProcess;
  constructor() {
    this.child = fork(path.join(__dirname, 'load.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  }
  run(job: LoadJob): Promise<LoadResult> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`load generator exited (${code})`));
      this.child.once('exit', onExit);
      this.child.once('message', (m) => {
        this.child.off('exit', onExit);
        resolve(m as LoadResult);
      });
      this.child.send(job);
    });
  }
  stop(): void {
    this.child.disconnect();
  }
}

interface Measured extends LoadResult {
  /** CPU time the server process used inside the window, µs (user + system). */
  cpuUs: number;
}

async function measure(
  load: LoadProcess,
  kind: Kind,
  perSession: number,
  concurrency: number,
  durationMs: number,
): Promise<Measured> {
  const srv = await makers[kind](perSession);
  const warmupMs = Math.min(500, durationMs / 3);
  let c0: NodeJS.CpuUsage | undefined;
  const t = setTimeout(() => (c0 = process.cpuUsage()), warmupMs);
  try {
    const r = await load.run({ port: srv.port, concurrency, warmupMs, durationMs });
    const d = process.cpuUsage(c0);
    return { ...r, cpuUs: c0 ? d.user + d.system : NaN };
  } finally {
    clearTimeout(t);
    await srv.close();
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function run(
  opts: { rounds?: number; durationMs?: number } = {},
): Promise<Array<Record<string, string | number>>> {
  const rounds = opts.rounds ?? Number(process.env.BENCH_AGI_ROUNDS ?? 3);
  const durationMs = opts.durationMs ?? Number(process.env.BENCH_AGI_MS ?? 1500);
  const kinds = (process.env.BENCH_AGI_KINDS ?? 'floor,ours,ding-dong').split(',') as Kind[];
  const levels = process.env.BENCH_AGI_LEVELS ? process.env.BENCH_AGI_LEVELS.split(',').map(Number) : [1, 100, 1000];
  const modes = (process.env.BENCH_AGI_MODES ?? 'cmd,ses').split(',');
  const load = new LoadProcess();
  const best = new Map<string, Measured>();
  const leanest = new Map<string, number>();
  const keep = (key: string, r: Measured, by: 'commands' | 'sessions') => {
    const prev = best.get(key);
    if (!prev || r[by] / r.elapsedMs > prev[by] / prev.elapsedMs) best.set(key, r);
    const cpu = r.cpuUs / Math.max(1, r[by]);
    if (!((leanest.get(key) as number) <= cpu)) leanest.set(key, cpu);
  };
  try {
    for (let round = 0; round < rounds; round++) {
      // Rotate the order each round so no server always runs right after another one.
      kinds.push(kinds.shift() as Kind);
      for (const c of levels) {
        if (modes.includes('cmd'))
          for (const k of kinds) keep(`cmd:${k}:${c}`, await measure(load, k, 100, c, durationMs), 'commands');
        if (modes.includes('ses'))
          for (const k of kinds) keep(`ses:${k}:${c}`, await measure(load, k, 1, c, durationMs), 'sessions');
      }
    }
  } finally {
    load.stop();
  }
  const rate = (key: string, by: 'commands' | 'sessions') => {
    const r = best.get(key);
    return r ? (r[by] * 1000) / r.elapsedMs : NaN;
  };
  const cpu = (key: string) => leanest.get(key) ?? NaN;
  const r2 = (v: number) => (Number.isFinite(v) ? Number(v.toFixed(2)) : 'n/a');
  const rows: Array<Record<string, string | number>> = [];
  for (const [mode, by, label] of [
    ['cmd', 'commands', 'GET VARIABLE round trips (100/session)'],
    ['ses', 'sessions', 'sessions (env + 1 command + close)'],
  ] as const) {
    if (!modes.includes(mode)) continue;
    for (const c of levels) {
      const f = rate(`${mode}:floor:${c}`, by);
      const o = rate(`${mode}:ours:${c}`, by);
      const d = rate(`${mode}:ding-dong:${c}`, by);
      const fc = cpu(`${mode}:floor:${c}`);
      const oc = cpu(`${mode}:ours:${c}`);
      const dc = cpu(`${mode}:ding-dong:${c}`);
      rows.push({
        workload: label,
        concurrent: c,
        'floor /s': Math.round(f),
        'ours /s': Math.round(o),
        'ding-dong /s': Math.round(d),
        'ours/floor': r2(o / f),
        'ding-dong/floor': r2(d / f),
        'floor cpu µs': r2(fc),
        'ours cpu µs': r2(oc),
        'ding-dong cpu µs': r2(dc),
        'ours/floor (cpu)': r2(fc / oc),
        'ding-dong/floor (cpu)': r2(fc / dc),
      });
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
