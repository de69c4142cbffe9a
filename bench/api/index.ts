/**
 * Import benchmark: CSV parsing, contact and do-not-call imports of 100,000-row files (0.1% bad rows,
 * ~2% duplicates), directly and through the HTTP API (text/csv upload to the express router), on
 * embedded PGlite and, when DATABASE_URL is set, on PostgreSQL; then event-loop delay during an upload
 * with live calls (loop.ts) and peak memory of 51 / 100 MB uploads (mem.ts). Loopback only; bounded.
 * BENCH_QUICK=1: 20,000 rows.
 */
import http from 'http';
import type { AddressInfo } from 'net';
import express from 'express';
import { Client } from 'pg';
import { openDb, type Db } from '../../src/store/db';
import { parseCsv } from '../../src/campaign/import-csv';
import { importContacts, importDnc } from '../../src/campaign/import';
import { createApiRouter } from '../../src/api/router';
import { run as runLoop } from './loop';
import { run as runMem } from './mem';

type Row = Record<string, string | number>;
const N = process.env.BENCH_QUICK === '1' ? 20_000 : 100_000;
const AREAS = ['212', '415', '312', '602', '617', '713', '303', '206'];

function contactsCsv(n: number): string {
  const lines = ['phone,name,timezone,plan,notes'];
  for (let i = 0; i < n; i++) {
    if (i % 1000 === 999) lines.push(`bad-${i},Broken,,,`);
    else {
      const k = i % 50 === 49 ? i - 1 : i; // ~2% duplicates of the previous row
      const sub = String(2000000 + Math.floor(k / AREAS.length));
      lines.push(
        `(${AREAS[k % AREAS.length]}) ${sub.slice(0, 3)}-${sub.slice(3)},"Name ${k}",${k % 3 === 0 ? 'America/Denver' : ''},p${k % 5},"note, with comma"`,
      );
    }
  }
  return lines.join('\r\n') + '\r\n';
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; out: T }> {
  const t = performance.now();
  const out = await fn();
  return { ms: performance.now() - t, out };
}

async function onDb(name: string, db: Db, csv: string): Promise<Row[]> {
  const rows: Row[] = [];
  const mk = async () =>
    (await db.query<{ id: number }>("insert into campaigns (name) values ('bench') returning id")).rows[0].id;
  const c1 = await mk();
  const a = await timed(() => importContacts(db, c1, csv));
  rows.push({
    db: name,
    what: `contacts import (${N} rows)`,
    ms: Math.round(a.ms),
    'rows/s': Math.round(N / (a.ms / 1000)),
    inserted: a.out.inserted,
    invalid: a.out.invalid,
    duplicates: a.out.duplicates,
  });
  const again = await timed(() => importContacts(db, c1, csv));
  rows.push({
    db: name,
    what: 'same file again (all merged)',
    ms: Math.round(again.ms),
    'rows/s': Math.round(N / (again.ms / 1000)),
    inserted: again.out.inserted,
    invalid: again.out.invalid,
    duplicates: again.out.duplicates,
  });
  const d = await timed(() => importDnc(db, csv));
  rows.push({
    db: name,
    what: `global DNC import (${N} rows)`,
    ms: Math.round(d.ms),
    'rows/s': Math.round(N / (d.ms / 1000)),
    inserted: d.out.inserted,
    invalid: d.out.invalid,
    duplicates: d.out.duplicates,
  });

  const c2 = await mk();
  const app = express();
  app.use(createApiRouter({ getDb: async () => db, token: '', control: () => undefined }));
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const h = await timed(async () => {
    const r = await fetch(`http://127.0.0.1:${port}/api/v1/campaigns/${c2}/contacts`, {
      method: 'POST',
      headers: { 'content-type': 'text/csv' },
      body: csv,
    });
    return (await r.json()) as { inserted: number; invalid: number; duplicates: number };
  });
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  rows.push({
    db: name,
    what: `HTTP upload text/csv (${(csv.length / 1e6).toFixed(1)} MB)`,
    ms: Math.round(h.ms),
    'rows/s': Math.round(N / (h.ms / 1000)),
    inserted: h.out.inserted,
    invalid: h.out.invalid,
    duplicates: h.out.duplicates,
  });
  return rows;
}

export async function run(): Promise<Row[]> {
  const csv = contactsCsv(N);
  const rows: Row[] = [];
  const p = await timed(async () => parseCsv(csv));
  rows.push({
    db: '-',
    what: `CSV parse only (${N} rows)`,
    ms: Math.round(p.ms),
    'rows/s': Math.round(N / (p.ms / 1000)),
  });
  const lite = await openDb({ dataDir: 'memory://' });
  try {
    rows.push(...(await onDb('pglite', lite, csv)));
  } finally {
    await lite.close();
  }
  const url = process.env.DATABASE_URL;
  if (url) {
    const name = `aid_bench_api_${process.pid}`;
    const admin = new Client({ connectionString: url });
    await admin.connect();
    await admin.query(`create database ${name}`);
    const u = new URL(url);
    u.pathname = `/${name}`;
    const pg = await openDb({ url: u.toString() });
    try {
      rows.push(...(await onDb('postgres', pg, csv)));
    } finally {
      await pg.close();
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  }
  // event-loop delay during a 10 MB upload with 30 live simulated calls (bench/api/loop.ts)
  rows.push(...((await runLoop()) as Row[]));
  // peak memory of a 51 MB and a 100 MB upload, each in a child process (bench/api/mem.ts)
  rows.push(...((await runMem()) as Row[]));
  return rows;
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
