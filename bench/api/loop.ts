/**
 * Event-loop delay while a 10 MB CSV is imported over HTTP during 30 live simulated calls.
 *
 * The calls are what the runtime's event loop serves during a conversation: 30 FastAGI-style
 * sessions on loopback sockets, each sending a command every 20 ms (the STREAM FILE / RECORD
 * cadence) that the in-process "dialer" answers; a late answer is what a callee hears as a gap or a
 * fallback prompt. Measured: perf_hooks event-loop delay p99/max and per-command answer latency,
 * while the same process takes the upload on the HTTP API (text/csv).
 *
 * Rows: the calls alone (what the shared machine's scheduling costs, no import), PGlite on the event
 * loop (how it ran before issue 11's fix), PGlite in its worker thread (the default), and PostgreSQL
 * when DATABASE_URL is set. Each also says how long one call's turn write (appendTurn) takes there.
 *
 * BENCH_BASE=/path/to/an/older/checkout (built) adds the same run against that checkout's API, for
 * a before/after table. BENCH_API_MB (default 10), BENCH_API_CALLS (default 30), BENCH_API_ONLY (e.g.
 * "worker,postgres": only those rows).
 */
import http from 'http';
import net from 'net';
import path from 'path';
import type { AddressInfo } from 'net';
import { monitorEventLoopDelay } from 'perf_hooks';
import express from 'express';
import { Client } from 'pg';

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

type BenchDb = {
  query(sql: string, params?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
  close(): Promise<void>;
};

interface ApiModules {
  openDb(o: { dataDir?: string; url?: string; pglite?: 'main' | 'worker' }): Promise<BenchDb>;
  createApiRouter(o: Record<string, unknown>): express.Router;
  appendTurn(q: BenchDb, callId: number, t: Record<string, unknown>): Promise<unknown>;
}

function modulesFrom(root: string): ApiModules {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const db = require(path.join(root, 'dist', 'src', 'store', 'db')) as Pick<ApiModules, 'openDb'>;
  const api = require(path.join(root, 'dist', 'src', 'api', 'router')) as Pick<ApiModules, 'createApiRouter'>;
  const calls = require(path.join(root, 'dist', 'src', 'store', 'calls')) as Pick<ApiModules, 'appendTurn'>;
  /* eslint-enable @typescript-eslint/no-require-imports */
  return { openDb: db.openDb, createApiRouter: api.createApiRouter, appendTurn: calls.appendTurn };
}

/** One call's turn writes, one after the other (what the outbox does per call): p50 / p99 in ms. */
async function turnWrites(mods: ApiModules, db: BenchDb, n = 500): Promise<{ p50: number; p99: number }> {
  const call = await db.query(
    "insert into calls (direction, phone, status, answered_at) values ('inbound', '+12125550100', 'in_progress', now()) returning id",
  );
  const id = Number(call.rows[0].id);
  const t: number[] = [];
  for (let seq = 1; seq <= n; seq++) {
    const t0 = performance.now();
    await mods.appendTurn(db, id, {
      seq,
      userText: 'I would like to know more about the plan',
      botText: 'Sure, the plan costs ten dollars a month.',
      timing: { recordMs: 900, sttMs: 120, llmMs: 300, ttsMs: 80 },
    });
    t.push(performance.now() - t0);
  }
  return { p50: Math.round(pct(t, 50) * 100) / 100, p99: Math.round(pct(t, 99) * 100) / 100 };
}

interface Target {
  label: string;
  mods: ApiModules;
  open(): Promise<BenchDb>;
  drop?(): Promise<void>;
}

async function measure(t: Target | undefined, csv: string, rows: number, nCalls: number): Promise<Row> {
  const db = t ? await t.open() : undefined;
  let server: http.Server | undefined;
  let port = 0;
  let id = 0;
  let turn = { p50: 0, p99: 0 };
  if (t && db) {
    turn = await turnWrites(t.mods, db);
    id = Number((await db.query("insert into campaigns (name) values ('bench') returning id")).rows[0].id);
    const app = express();
    app.use(
      t.mods.createApiRouter({
        getDb: async () => db,
        token: '',
        readToken: '',
        control: () => undefined,
        log: () => undefined,
      }),
    );
    server = http.createServer(app);
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  }
  const calls = await liveCalls(nCalls);
  await new Promise((r) => setTimeout(r, 300)); // calls settle
  calls.latencies.length = 0;
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const mem = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const t0 = performance.now();
  let status: number | string = '-';
  let body: { inserted?: number; invalid?: number; error?: string } = {};
  if (server) {
    const r = await fetch(`http://127.0.0.1:${port}/api/v1/campaigns/${id}/contacts`, {
      method: 'POST',
      headers: { 'content-type': 'text/csv' },
      body: csv,
    });
    status = r.status;
    body = (await r.json()) as typeof body;
  } else await new Promise((r) => setTimeout(r, 5000)); // the calls alone, 5 s
  const ms = performance.now() - t0;
  h.disable();
  clearInterval(mem);
  await calls.stop();
  if (server) {
    server.closeAllConnections();
    await new Promise<void>((res) => server!.close(() => res()));
  }
  await db?.close();
  await t?.drop?.();
  const late = calls.latencies.filter((x) => x > 100).length;
  return {
    code: t ? t.label : 'no import: the 30 calls alone (machine noise)',
    'upload MB': t ? Math.round((csv.length / MB) * 10) / 10 : '-',
    rows: t ? rows : '-',
    status,
    inserted: body.inserted ?? body.error ?? '',
    'import s': Math.round(ms / 100) / 10,
    'loop delay p99 ms': Math.round(h.percentile(99) / 1e5) / 10,
    'loop delay max ms': Math.round(h.max / 1e5) / 10,
    'call answer p99 ms': Math.round(pct(calls.latencies, 99) * 10) / 10,
    'call answer max ms': Math.round(calls.latencies.reduce((a, b) => Math.max(a, b), 0) * 10) / 10,
    'answers >100 ms': late,
    'peak RSS +MB': Math.round((peak - rss0) / MB),
    'turn write p50/p99 ms': t ? `${turn.p50} / ${turn.p99}` : '-',
    'target p99': '< 50 ms',
  };
}

/** PostgreSQL: a throwaway database per run on the DATABASE_URL server. */
function postgresTarget(label: string, mods: ApiModules, url: string): Target {
  const name = `aid_bench_loop_${process.pid}`;
  const admin = new Client({ connectionString: url });
  return {
    label,
    mods,
    open: async () => {
      await admin.connect();
      await admin.query(`create database ${name}`);
      const u = new URL(url);
      u.pathname = `/${name}`;
      return mods.openDb({ url: u.toString() });
    },
    drop: async () => {
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

export async function run(): Promise<Row[]> {
  const mb = Number(process.env.BENCH_API_MB ?? 10);
  const nCalls = Number(process.env.BENCH_API_CALLS ?? 30);
  const { csv, rows } = csvOf(mb * MB);
  const here = modulesFrom(path.resolve(__dirname, '..', '..', '..'));
  const targets: Target[] = [];
  if (process.env.BENCH_BASE) {
    const base = modulesFrom(path.resolve(process.env.BENCH_BASE));
    targets.push({
      label: 'before (BENCH_BASE), pglite',
      mods: base,
      open: () => base.openDb({ dataDir: 'memory://' }),
    });
  }
  targets.push(
    {
      label: 'pglite on the event loop (as before)',
      mods: here,
      open: () => here.openDb({ dataDir: 'memory://', pglite: 'main' }),
    },
    {
      label: 'pglite in its worker thread (npm start)',
      mods: here,
      open: () => here.openDb({ dataDir: 'memory://', pglite: 'worker' }),
    },
  );
  if (process.env.DATABASE_URL) targets.push(postgresTarget('postgres (DATABASE_URL)', here, process.env.DATABASE_URL));
  // BENCH_API_ONLY=worker,postgres: only the rows whose label contains one of the words
  const only = (process.env.BENCH_API_ONLY ?? '').split(',').filter(Boolean);
  const out: Row[] = [await measure(undefined, csv, rows, nCalls)];
  for (const t of targets)
    if (!only.length || only.some((w) => t.label.includes(w))) out.push(await measure(t, csv, rows, nCalls));
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
