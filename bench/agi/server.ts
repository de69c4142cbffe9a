/**
 * Server process of bench/agi (forked by index.ts): one FastAGI server per process, so that its CPU
 * time is its own. `{ kind, perSession }` -> `{ port }`; `{ cpu: 'start' | 'stop' }` -> what the
 * process spent since the last start (`WindowCost`: CPU µs, user CPU µs, minor page faults, context
 * switches, garbage collections and their ms); exits when the parent disconnects.
 */
import { createRequire } from 'module';
import net from 'net';
import path from 'path';
import { PerformanceObserver } from 'perf_hooks';
import { AgiServer } from '../../src/agi/server';
import type { FastAgiSession } from '../../src/agi/session';

/** `before`: our server from another build (BENCH_AGI_BEFORE=<that checkout's dist/>), e.g. the commit a change started from. */
export type Kind = 'floor' | 'ours' | 'before' | 'ding-dong';
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

/** (b) Our server and session (of this build, or of the build at `dist`). */
async function ourServer(perSession: number, dist?: string): Promise<Running> {
  const Server = dist
    ? (createRequire(__filename)(path.join(path.resolve(dist), 'src/agi/server.js')) as { AgiServer: typeof AgiServer })
        .AgiServer
    : AgiServer;
  const server = new Server({ host: '127.0.0.1', port: 0, maxSessions: 100000 });
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
  ours: (n) => ourServer(n),
  before: (n) => {
    if (!process.env.BENCH_AGI_BEFORE)
      return Promise.reject(new Error('kind before needs BENCH_AGI_BEFORE=<dist dir>'));
    return ourServer(n, process.env.BENCH_AGI_BEFORE);
  },
  'ding-dong': dingDongServer,
};

/** What the window cost the process: CPU (user + system, and user alone), page faults, context switches, GCs. */
export interface WindowCost {
  cpuUs: number;
  userUs: number;
  minorFaults: number;
  ctxSwitches: number;
  gcs: number;
  gcMs: number;
  /** heap growth, bytes: what was allocated, when no GC ran in the window (see BENCH_AGI_SERVER_ARGS) */
  heapBytes: number;
}

let gcs = 0;
let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcs++;
    gcMs += e.duration;
  }
}).observe({ entryTypes: ['gc'] });

let at0: { ru: NodeJS.ResourceUsage; gcs: number; gcMs: number; heap: number } | undefined;
process.on('message', (m: { kind?: Kind; perSession?: number; cpu?: 'start' | 'stop' }) => {
  if (m.cpu === 'start') {
    at0 = { ru: process.resourceUsage(), gcs, gcMs, heap: process.memoryUsage().heapUsed };
    return;
  }
  if (m.cpu === 'stop') {
    const ru = process.resourceUsage();
    const heap = process.memoryUsage().heapUsed;
    const a = at0;
    const cost: WindowCost = a
      ? {
          cpuUs: ru.userCPUTime + ru.systemCPUTime - a.ru.userCPUTime - a.ru.systemCPUTime,
          userUs: ru.userCPUTime - a.ru.userCPUTime,
          minorFaults: ru.minorPageFault - a.ru.minorPageFault,
          ctxSwitches:
            ru.voluntaryContextSwitches +
            ru.involuntaryContextSwitches -
            a.ru.voluntaryContextSwitches -
            a.ru.involuntaryContextSwitches,
          gcs: gcs - a.gcs,
          gcMs: gcMs - a.gcMs,
          heapBytes: heap - a.heap,
        }
      : { cpuUs: NaN, userUs: NaN, minorFaults: NaN, ctxSwitches: NaN, gcs: NaN, gcMs: NaN, heapBytes: NaN };
    process.send!(cost);
    return;
  }
  if (m.kind)
    makers[m.kind](m.perSession ?? 100).then(
      (r) => process.send!({ port: r.port }),
      (err) => process.send!({ error: String(err && err.message ? err.message : err) }),
    );
});
process.on('disconnect', () => process.exit(0));
