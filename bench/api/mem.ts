/**
 * Peak memory of one large CSV upload (issue 11: a 51 MB file took 2.7 GB). Each size runs in a child
 * process of its own: the child opens the database (PGlite in a temporary folder, or a throwaway
 * database on the DATABASE_URL server), serves the API, and streams a generated CSV of the size to it
 * over loopback in 64 KB pieces (the file never exists whole). Measured: the child's resident set before
 * the upload and its peak during it (Linux VmHWM, reset just before the upload; else sampled every 20 ms).
 * The upload limit is raised to 128 MB for this (the default, API_MAX_UPLOAD_MB=50, answers 413 first).
 *
 * BENCH_MEM_SIZES (MB, default "51,100").
 */
import { spawn } from 'child_process';
import fs from 'fs';
import http from 'http';
import os from 'os';
import path from 'path';
import type { AddressInfo } from 'net';
import express from 'express';
import { Client } from 'pg';
import { openDb, type Db } from '../../src/store/db';
import { createApiRouter } from '../../src/api/router';

type Row = Record<string, string | number>;
const MB = 1024 * 1024;
const AREAS = ['212', '415', '312', '602', '617', '713', '303', '206'];

/** CSV lines of about `bytes` bytes in pieces of ~64 KB (same rows as bench/api/loop.ts). */
function* csvPieces(bytes: number): Generator<Buffer> {
  let size = 0;
  let i = 0;
  let piece = ['phone,name,timezone,plan,notes'];
  let pieceLen = piece[0].length;
  while (size < bytes) {
    const sub = String(2000000 + (Math.floor(i / AREAS.length) % 8000000));
    const l =
      i % 1000 === 999
        ? `bad-${i},Broken,,,`
        : `(${AREAS[i % AREAS.length]}) ${sub.slice(0, 3)}-${sub.slice(3)},"Name ${i}",${i % 3 ? '' : 'America/Denver'},p${i % 5},"note, with comma"`;
    piece.push(l);
    pieceLen += l.length + 2;
    size += l.length + 2;
    i++;
    if (pieceLen >= 65536) {
      yield Buffer.from(piece.join('\r\n') + '\r\n');
      piece = [];
      pieceLen = 0;
    }
  }
  if (piece.length) yield Buffer.from(piece.join('\r\n') + '\r\n');
}

function rssKb(field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+)`).exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** The child: one upload of `mb` MB, prints one JSON line. */
async function child(mb: number, url: string | undefined): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-bench-mem-'));
  let db: Db;
  if (url) db = await openDb({ url });
  else db = await openDb({ dataDir: path.join(dir, 'db'), pglite: 'worker' }); // as npm start runs it
  const id = (await db.query<{ id: number }>("insert into campaigns (name) values ('bench') returning id")).rows[0].id;
  const app = express();
  app.use(createApiRouter({ getDb: async () => db, token: '', control: () => undefined, maxUploadBytes: 128 * MB }));
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  global.gc?.();
  const before = rssKb('VmRSS') || Math.round(process.memoryUsage().rss / 1024);
  let hwmReset = false;
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5'); // reset the peak (VmHWM) to the current RSS
    hwmReset = true;
  } catch {
    /* not Linux, or not allowed: sample instead */
  }
  let sampled = before;
  const sampler = setInterval(() => (sampled = Math.max(sampled, Math.round(process.memoryUsage().rss / 1024))), 20);
  const t0 = performance.now();
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `/api/v1/campaigns/${id}/contacts`,
        headers: { 'content-type': 'text/csv' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    const gen = csvPieces(mb * MB);
    const pump = (): void => {
      for (let r = gen.next(); !r.done; r = gen.next()) if (!req.write(r.value)) return void req.once('drain', pump);
      req.end();
    };
    pump();
  });
  const secs = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  const peak = hwmReset ? rssKb('VmHWM') : sampled;
  const body = JSON.parse(answer.body) as { rows?: number; inserted?: number; error?: string };
  server.closeAllConnections();
  server.close();
  await db.close();
  fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(
    JSON.stringify({
      status: answer.status,
      rows: body.rows,
      inserted: body.inserted ?? body.error,
      secs,
      before,
      peak,
    }) + '\n',
  );
}

async function measure(mb: number, label: string, url?: string): Promise<Row> {
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(process.execPath, ['--expose-gc', __filename, 'child', String(mb)], {
      env: { ...process.env, BENCH_MEM_URL: url ?? '' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let s = '';
    p.stdout.on('data', (d: Buffer) => (s += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(s) : reject(new Error(`bench/api/mem child exited ${code}`))));
  });
  const r = JSON.parse(out.trim().split('\n').pop()!) as {
    status: number;
    rows: number;
    inserted: number | string;
    secs: number;
    before: number;
    peak: number;
  };
  return {
    code: `${mb} MB CSV upload, ${label}`,
    status: r.status,
    rows: r.rows,
    inserted: r.inserted,
    'import s': Math.round(r.secs * 10) / 10,
    'RSS before MB': Math.round(r.before / 1024),
    'peak RSS MB': Math.round(r.peak / 1024),
    'peak - before MB': Math.round((r.peak - r.before) / 1024),
    'issue: before the fix': mb === 51 ? '2.7 GB peak' : '-',
  };
}

export async function run(): Promise<Row[]> {
  const sizes = (process.env.BENCH_MEM_SIZES ?? '51,100').split(',').map(Number).filter(Boolean);
  const rows: Row[] = [];
  for (const mb of sizes) rows.push(await measure(mb, 'pglite'));
  const url = process.env.DATABASE_URL;
  if (url) {
    const name = `aid_bench_mem_${process.pid}`;
    const admin = new Client({ connectionString: url });
    await admin.connect();
    try {
      for (const mb of sizes) {
        await admin.query(`create database ${name}`);
        const u = new URL(url);
        u.pathname = `/${name}`;
        try {
          rows.push(await measure(mb, 'postgres', u.toString()));
        } finally {
          await admin.query(`drop database if exists ${name} with (force)`);
        }
      }
    } finally {
      await admin.end();
    }
  }
  return rows;
}

if (require.main === module) {
  if (process.argv[2] === 'child')
    child(Number(process.argv[3]), process.env.BENCH_MEM_URL || undefined).then(
      () => process.exit(0),
      (e) => {
        console.error(e);
        process.exit(1);
      },
    );
  else
    run().then(
      (r) => console.table(r),
      (e) => {
        console.error(e);
        process.exit(1);
      },
    );
}
