/**
 * Event-loop delay while a 10 MB CSV is imported over HTTP during 30 live simulated calls.
 *
 * The calls are what the runtime's event loop serves during a conversation: 30 FastAGI-style
 * sessions on loopback sockets, each sending a command every 20 ms (the STREAM FILE / RECORD
 * cadence) that the in-process "dialer" answers; a late answer is what a callee hears as a gap or a
 * fallback prompt. Measured: perf_hooks event-loop delay p99/max and per-command answer latency,
 * while the same process takes the upload on the HTTP API (text/csv, PGlite in memory).
 *
 * BENCH_BASE=/path/to/an/older/checkout (built) adds the same run against that checkout's API, for
 * a before/after table. BENCH_API_MB (default 10), BENCH_API_CALLS (default 30).
 */
import http from 'http';
import net from 'net';
import path from 'path';
import type { AddressInfo } from 'net';
import { monitorEventLoopDelay } from 'perf_hooks';
import express from 'express';

type Row = Record<string, string | number>;
const MB = 1024 * 1024;
const AREAS = ['212', '415', '312', '602', '617', '713', '303', '206'];

function csvOf(bytes: number): { csv: string; rows: number } {
  const lines = ['phone,name,timezone,plan,notes'];
  let size = lines[0].length + 2;
  let i = 0;
  while (size < bytes) {
    const sub = String(2000000 + (Math.floor(i / AREAS.length) % 8000000));
    const l =
      i % 1000 === 999
        ? `bad-${i},Broken,,,`
        : `(${AREAS[i % AREAS.length]}) ${sub.slice(0, 3)}-${sub.slice(3)},"Name ${i}",${i % 3 ? '' : 'America/Denver'},p${i % 5},"note, with comma"`;
    lines.push(l);
    size += l.length + 2;
    i++;
  }
  return { csv: lines.join('\r\n') + '\r\n', rows: i };
}

interface Calls {
  latencies: number[];
  stop(): Promise<void>;
}

/** n simulated calls: a client sends a line every 20 ms, the in-process server answers at once. */
async function liveCalls(n: number): Promise<Calls> {
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (d) => s.write(`200 result=0 ${d.length}\n`));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const latencies: number[] = [];
  const sockets: net.Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  for (let i = 0; i < n; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.setNoDelay(true);
    s.on('error', () => undefined);
    sockets.push(s);
    let sent = 0;
    s.on('data', () => {
      if (sent) latencies.push(performance.now() - sent);
      sent = 0;
    });
    timers.push(
      setInterval(() => {
        if (sent) return; // the previous command is still unanswered
        sent = performance.now();
        s.write('STREAM FILE "greeting" "#"\n');
      }, 20),
    );
  }
  return {
    latencies,
    stop: async () => {
      timers.forEach(clearInterval);
      sockets.forEach((s) => s.destroy());
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const pct = (a: number[], p: number): number => {
  if (!a.length) return 0;
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

interface ApiModules {
  openDb(o: {
    dataDir: string;
  }): Promise<{ query(sql: string): Promise<{ rows: Array<{ id: number }> }>; close(): Promise<void> }>;
  createApiRouter(o: Record<string, unknown>): express.Router;
}

function modulesFrom(root: string): ApiModules {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const db = require(path.join(root, 'dist', 'src', 'store', 'db')) as Pick<ApiModules, 'openDb'>;
  const api = require(path.join(root, 'dist', 'src', 'api', 'router')) as Pick<ApiModules, 'createApiRouter'>;
  /* eslint-enable @typescript-eslint/no-require-imports */
  return { openDb: db.openDb, createApiRouter: api.createApiRouter };
}

async function measure(label: string, mods: ApiModules, csv: string, rows: number, nCalls: number): Promise<Row> {
  const db = await mods.openDb({ dataDir: 'memory://' });
  const id = (await db.query("insert into campaigns (name) values ('bench') returning id")).rows[0].id;
  const app = express();
  app.use(
    mods.createApiRouter({
      getDb: async () => db,
      token: '',
      readToken: '',
      control: () => undefined,
      log: () => undefined,
    }),
  );
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const calls = await liveCalls(nCalls);
  await new Promise((r) => setTimeout(r, 300)); // calls settle
  calls.latencies.length = 0;
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const mem = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const t0 = performance.now();
  const r = await fetch(`http://127.0.0.1:${port}/api/v1/campaigns/${id}/contacts`, {
    method: 'POST',
    headers: { 'content-type': 'text/csv' },
    body: csv,
  });
  const body = (await r.json()) as { inserted?: number; invalid?: number; error?: string };
  const ms = performance.now() - t0;
  h.disable();
  clearInterval(mem);
  await calls.stop();
  server.closeAllConnections();
  await new Promise<void>((res) => server.close(() => res()));
  await db.close();
  const late = calls.latencies.filter((x) => x > 100).length;
  return {
    code: label,
    'upload MB': Math.round((csv.length / MB) * 10) / 10,
    rows,
    status: r.status,
    inserted: body.inserted ?? body.error ?? '',
    'import s': Math.round(ms / 100) / 10,
    'loop delay p99 ms': Math.round(h.percentile(99) / 1e5) / 10,
    'loop delay max ms': Math.round(h.max / 1e5) / 10,
    'call answer p99 ms': Math.round(pct(calls.latencies, 99) * 10) / 10,
    'call answer max ms': Math.round(Math.max(0, ...calls.latencies) * 10) / 10,
    'answers >100 ms': late,
    'peak RSS +MB': Math.round((peak - rss0) / MB),
    'target p99': '< 50 ms',
  };
}

export async function run(): Promise<Row[]> {
  const mb = Number(process.env.BENCH_API_MB ?? 10);
  const nCalls = Number(process.env.BENCH_API_CALLS ?? 30);
  const { csv, rows } = csvOf(mb * MB);
  const out: Row[] = [];
  if (process.env.BENCH_BASE)
    out.push(
      await measure('before (BENCH_BASE)', modulesFrom(path.resolve(process.env.BENCH_BASE)), csv, rows, nCalls),
    );
  out.push(await measure('this checkout', modulesFrom(path.resolve(__dirname, '..', '..', '..')), csv, rows, nCalls));
  return out;
}

if (require.main === module) {
  run().then(
    (r) => console.table(r),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
