/**
 * Issue 11, "a 10 MB CSV imported during a live 30-call campaign blocked the event loop 13.6 s": the
 * import must leave the event loop to the live calls. A CSV is posted to the HTTP API (as `npm start`
 * serves it: PGlite in its worker thread; PostgreSQL too when DATABASE_URL is set) while simulated
 * calls exchange a command every 20 ms; the event-loop delay is measured the whole time.
 *
 * Budget: the loop must keep turning (on average every 100 ms at worst), its p99 stay within the shared
 * machine's own noise (measured first, same calls, no import) plus a margin, and no stall reach 3 s:
 * before the fix the import was one synchronous block, about 1.4 s per MB on an idle machine (5+ s for
 * this file). What this cannot tell on a loaded machine is the finer slicing: with the ~5 ms slices
 * removed (src/campaign/import.ts yieldToLoop) the file still reads in 64 KB pieces and it passed at
 * load 21 (p99 218-283 ms, max 1.0-1.2 s, against 100-111 ms and 0.26-0.32 s with them). The < 50 ms p99 target of the issue
 * is measured by `npm run bench api` (bench/api/loop.ts) on a quiet machine.
 */
import http from 'http';
import net from 'net';
import type { AddressInfo } from 'net';
import { monitorEventLoopDelay } from 'perf_hooks';
import express from 'express';
import { createApiRouter } from '../../src/api/router';
import type { Db } from '../../src/store/db';
import { dbTargets, type DbTarget } from '../helpers/db';

const MB = 1024 * 1024;
const CALLS = 10;

/** A CSV of about `bytes` bytes with distinct US numbers, one bad row in every 1000. */
function csvOf(bytes: number): { csv: string; good: number } {
  const areas = ['212', '415', '312', '602', '617', '713', '303', '206'];
  const lines = ['phone,name,plan'];
  let size = 0;
  let good = 0;
  for (let i = 0; size < bytes; i++) {
    const sub = String(2000000 + Math.floor(i / areas.length));
    const l =
      i % 1000 === 999
        ? `bad-${i},Broken,`
        : `(${areas[i % areas.length]}) ${sub.slice(0, 3)}-${sub.slice(3)},"Name ${i}",p${i % 5}`;
    if (i % 1000 !== 999) good++;
    lines.push(l);
    size += l.length + 2;
  }
  return { csv: lines.join('\r\n') + '\r\n', good };
}

/** `n` live calls: each sends a command every 20 ms, answered by this process (as FastAGI is). */
async function liveCalls(n: number): Promise<{ stop(): Promise<void> }> {
  const server = net.createServer((s) => {
    s.on('data', (d) => s.write(`200 result=0 ${d.length}\n`));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const sockets: net.Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  for (let i = 0; i < n; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    sockets.push(s);
    timers.push(setInterval(() => s.write('STREAM FILE "greeting" "#"\n'), 20));
  }
  return {
    stop: async () => {
      timers.forEach(clearInterval);
      sockets.forEach((s) => s.destroy());
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/**
 * Event-loop delay while `work` runs: p99 and max (ms), and how often the loop turned (`gapMs`: the
 * work's duration over the monitor's 10 ms samples; an import done in one block turns it about once).
 */
async function loopDelay(work: () => Promise<void>): Promise<{ p99: number; max: number; gapMs: number }> {
  const h = monitorEventLoopDelay({ resolution: 10 });
  const t0 = performance.now();
  h.enable();
  await work();
  h.disable();
  const ms = performance.now() - t0;
  const r = (x: number) => Math.round(x * 10) / 10;
  return { p99: r(h.percentile(99) / 1e6), max: r(h.max / 1e6), gapMs: r(ms / Math.max(1, h.count)) };
}

describe.each(dbTargets())('CSV import beside live calls on db target %#', (mk) => {
  let target: DbTarget;
  let db: Db;
  let server: http.Server;
  let base = '';

  beforeAll(async () => {
    target = mk();
    // npm start opens PGlite in its worker thread (src/runtime/main.ts); PostgreSQL is a pool either way
    db = await target.open(target.name === 'pglite' ? { pglite: 'worker' } : {});
    const app = express();
    app.use(createApiRouter({ getDb: async () => db, token: '', readToken: '', log: () => undefined }));
    server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }, 180000);
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await db?.close();
    await target?.cleanup();
  });

  test('a 4 MB CSV import leaves the event loop to the live calls (before: one block of the whole import)', async () => {
    const { csv, good } = csvOf(4 * MB);
    const camp = await db.query<{ id: number }>(`insert into campaigns (name) values ('loop') returning id`);
    const calls = await liveCalls(CALLS);
    try {
      // the machine's own noise with the same calls, no import
      const noise = await loopDelay(() => new Promise((r) => setTimeout(r, 2000)));
      let body: { inserted?: number; invalid?: number } = {};
      let status = 0;
      const during = await loopDelay(async () => {
        const r = await fetch(`${base}/api/v1/campaigns/${camp.rows[0].id}/contacts`, {
          method: 'POST',
          headers: { 'content-type': 'text/csv' },
          body: csv,
        });
        status = r.status;
        body = (await r.json()) as typeof body;
      });
      expect(status).toBe(200);
      expect(body.inserted).toBe(good);
      // printed so a slow run can be read from the log
      console.log(`loop delay on ${target.name}: import ${JSON.stringify(during)}, noise ${JSON.stringify(noise)}`);
      // the loop kept turning: on average at least every 100 ms (one block: once for the whole import) ...
      expect(during.gapMs).toBeLessThan(100);
      // ... and rarely late: the machine's own noise (a loaded shared machine deschedules us) plus a little
      expect(during.p99).toBeLessThan(Math.max(300, 4 * noise.p99));
      // no stall of the old kind (seconds) beyond what the machine itself does
      expect(during.max).toBeLessThan(Math.max(3000, 5 * noise.max));
    } finally {
      await calls.stop();
    }
  }, 600000);
});
