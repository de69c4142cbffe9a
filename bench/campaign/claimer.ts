/**
 * One claim contender in its own process (spawned by bench/campaign/index.ts): `workers` connections,
 * each claiming in a loop for `seconds`, one claim statement per round trip. Ours goes through the
 * store as the campaign manager does (src/store/db.ts: a pool, the claim as a named prepared
 * statement); the peer sends its statement as a plain parameterized query. Prints one JSON line:
 * contacts claimed, statements, elapsed seconds and the per-statement latencies' percentiles (never
 * divided by the batch size).
 *
 * argv[2]: JSON {url, contender: 'ours' | 'peer', campaignId, workers, batch, seconds, now}
 */
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
  await Promise.all(
    Array.from({ length: a.workers }, async (_, w) => {
      const client = await pool.connect();
      try {
        while (Date.now() < deadline) {
          const s = process.hrtime.bigint();
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
          lat.push(Number(process.hrtime.bigint() - s) / 1e6);
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
