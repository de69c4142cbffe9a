/**
 * One claim contender in its own process (spawned by bench/campaign/index.ts): `workers` connections,
 * each claiming in a loop for `seconds`, one claim statement per round trip. Ours goes through the
 * store as the campaign manager does (src/store/db.ts: a pool, the claim as a named prepared
 * statement); the peer sends its statement as a plain parameterized query. Prints one JSON line:
 * contacts claimed, statements, elapsed seconds and the per-statement latencies' percentiles (never
 * divided by the batch size).
 *
 * With `rate` (contacts/s over all workers) the workers are paced instead of claiming back to back: each
 * worker's statements are due at fixed intervals (workers x batch / rate seconds apart, the workers
 * staggered), and a statement's latency runs from the moment it was due, so a slow statement that delays
 * the next one counts against both (no coordinated omission).
 *
 * argv[2]: JSON {url, contender: 'ours' | 'peer', campaignId, workers, batch, seconds, now, rate?}
 */
import { performance } from 'perf_hooks';
import { setTimeout as sleep } from 'timers/promises';
import { Pool } from 'pg';
import { claimContacts } from '../../src/store/claim';
import { openDb, type Db } from '../../src/store/db';
import { PEER_CLAIM_SQL } from './peer-claim';

interface Args {
  url: string;
  contender: 'ours' | 'peer';
  campaignId: number;
  workers: number;
  batch: number;
  seconds: number;
  now: string;
  /** Contacts/s over all workers: paced statements (see the header); absent = back to back. */
  rate?: number;
}

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2]) as Args;
  const pool = new Pool({ connectionString: a.url, max: a.workers });
  const db: Db | undefined = a.contender === 'ours' ? await openDb({ url: a.url, poolSize: a.workers }) : undefined;
  const now = new Date(a.now);
  // open every connection before the clock starts
  await Promise.all(
    Array.from({ length: a.workers }, async () => {
      const c = await pool.connect();
      c.release();
    }),
  );
  if (db) await Promise.all(Array.from({ length: a.workers }, () => db.query('select 1')));
  const lat: number[] = [];
  let contacts = 0;
  let empty = 0;
  const deadline = Date.now() + a.seconds * 1000;
  const t0 = process.hrtime.bigint();
  /** ms between one worker's statements when paced. */
  const interval = a.rate ? (a.workers * a.batch * 1000) / a.rate : 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: a.workers }, async (_, w) => {
      const client = await pool.connect();
      try {
        for (let k = 0; Date.now() < deadline; k++) {
          let s = performance.now();
          if (interval) {
            const due = start + (w / a.workers + k) * interval;
            if (due > s) await sleep(due - s);
            s = due;
          }
          let got: number;
          if (db) {
            const r = await claimContacts(db, {
              campaignId: a.campaignId,
              limit: a.batch,
              worker: `w${w}`,
              now,
              concurrency: a.workers,
            });
            got = r.claimed.length;
          } else {
            const r = await client.query(PEER_CLAIM_SQL, [a.campaignId, a.batch, now, `w${w}`]);
            got = r.rowCount ?? 0;
          }
          lat.push(performance.now() - s);
          contacts += got;
          if (got === 0) empty++;
        }
      } finally {
        client.release();
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await pool.end();
  await db?.close();
  lat.sort((x, y) => x - y);
  process.stdout.write(
    JSON.stringify({
      contacts,
      statements: lat.length,
      empty,
      secs,
      p50: pct(lat, 50),
      p99: pct(lat, 99),
      max: lat[lat.length - 1] ?? 0,
    }) + '\n',
  );
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
});
