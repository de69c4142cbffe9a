/**
 * Campaign queue benchmark on the PostgreSQL server (DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/test). Creates its own database and drops it afterwards.
 *
 *  1. Claims: 1,000,000 contacts over 12 time zones (some closed at the bench's clock), 100,000
 *     do-not-call numbers (half of them match contacts), 20 caller IDs; claims/s and p50/p99 latency
 *     of one claim statement with 1 and 4 workers, for the batched claim (every rule in SQL, call
 *     record created, caller ID chosen) and for the straightforward one-row FOR UPDATE SKIP LOCKED
 *     claim (the floor). Afterwards: double claims and violations counted.
 *  2. Pacing: a CampaignManager at a configured calls/s, achieved rate over 60 s (BENCH_QUICK=1: 10 s);
 *     and two managers under a lower global cap (GLOBAL_CPS bucket).
 */
import os from 'os';
import { Client } from 'pg';
import { openDb, type Db } from '../../src/store/db';
import { claimContacts } from '../../src/store/claim';
import { NAIVE_CLAIM_SQL } from './naive-claim';
import { CampaignManager } from '../../src/campaign/manager';

type Row = Record<string, string | number>;

const BASE = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
const QUICK = process.env.BENCH_QUICK === '1';
const CLAIM_SECONDS = Number(process.env.BENCH_CLAIM_SECONDS || (QUICK ? 3 : 4));
const PACE_SECONDS = QUICK ? 10 : 60;
/** The bench's clock for eligibility: 2026-06-15 18:00Z (14:00 New York, 11:00 Los Angeles, 03:00 Tokyo: closed). */
export const NOW = new Date('2026-06-15T18:00:00Z');
const ZONES = [
  'America/New_York',
  'America/Chicago',
  'America/Denver',
  'America/Phoenix',
  'America/Los_Angeles',
  'America/Anchorage',
  'Pacific/Honolulu',
  'America/Puerto_Rico',
  'Europe/London',
  'Asia/Tokyo',
  'Australia/Sydney',
  'America/Halifax',
];

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function withAdmin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: BASE });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function seed(db: Db, n: number): Promise<number> {
  const r = await db.query<{ id: number }>(
    `insert into campaigns (name, status, timezone, window_start, window_end, max_attempts, caller_id_strategy, calls_per_second, max_concurrent, settings)
     values ('bench', 'running', 'America/New_York', '09:00', '20:00', 3, 'round_robin', 1000, 100000, '{"concurrency_scope":"worker"}') returning id`,
  );
  const cid = r.rows[0].id;
  await db.query(
    `insert into phone_numbers (campaign_id, number) select $1, '+1' || (200 + g * 37) || '5550100' from generate_series(1, 20) g`,
    [cid],
  );
  await db.query(
    `insert into contacts (campaign_id, phone, name, timezone, fields, next_attempt_at)
     select $1, '+1' || (200 + g % 800) || lpad(g::text, 7, '0'), 'Contact ' || g,
            case when g % 13 = 0 then null else ($3::text[])[1 + g % 12] end,
            jsonb_build_object('n', g),
            $4::timestamptz - make_interval(secs => (g % 86400))
       from generate_series(1, $2::int) g`,
    [cid, n, ZONES, NOW],
  );
  // 100k DNC: 50k on contacts' numbers (every 20th contact), 50k elsewhere
  await db.query(
    `insert into dnc (phone, campaign_id)
     select '+1' || (200 + g % 800) || lpad(g::text, 7, '0'), null from generate_series(20, $1::int, 20) g`,
    [n],
  );
  await db.query(
    `insert into dnc (phone, campaign_id) select '+1999' || lpad(g::text, 7, '0'), null from generate_series(1, 50000) g`,
  );
  await db.query('vacuum analyze contacts');
  await db.query('vacuum analyze dnc');
  await db.query('analyze');
  return cid;
}

async function claimRun(db: Db, cid: number, workers: number, batch: number, naive: boolean): Promise<Row> {
  const lat: number[] = [];
  let claims = 0;
  let dnc = 0;
  const deadline = Date.now() + CLAIM_SECONDS * 1000;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      while (Date.now() < deadline) {
        const s = process.hrtime.bigint();
        let got: number;
        if (naive) {
          const r = await db.query(NAIVE_CLAIM_SQL, [cid, `naive${w}`, NOW]);
          got = r.rowCount;
        } else {
          const r = await claimContacts(db, { campaignId: cid, limit: batch, worker: `w${w}`, now: NOW });
          got = r.claimed.length;
          dnc += r.dncSkipped;
        }
        lat.push(Number(process.hrtime.bigint() - s) / 1e6);
        claims += got;
        if (got === 0 && naive) break;
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort((a, b) => a - b);
  return {
    test: naive
      ? 'claim: naive one-row FOR UPDATE SKIP LOCKED (no call record)'
      : `claim: claim_contacts, all rules in SQL + call record (batch ${batch})`,
    'p99 ms / contact': naive ? +pct(lat, 99).toFixed(2) : +(pct(lat, 99) / batch).toFixed(2),
    workers,
    'claims/s': Math.round(claims / secs),
    'statements/s': Math.round(lat.length / secs),
    'p50 ms': +pct(lat, 50).toFixed(2),
    'p99 ms': +pct(lat, 99).toFixed(2),
    'dnc skipped': dnc,
    claims,
  };
}

async function audit(db: Db, cid: number): Promise<Row> {
  const r = await db.query<{
    calls: number;
    distinct_contacts: number;
    dnc: number;
    closed_zone: number;
    in_call: number;
  }>(
    `select (select count(*) from calls where campaign_id = $1)::int as calls,
            (select count(distinct contact_id) from calls where campaign_id = $1)::int as distinct_contacts,
            (select count(*) from contacts c where c.campaign_id = $1 and c.status = 'in_call'
               and exists (select 1 from dnc d where d.phone = c.phone))::int as dnc,
            (select count(*) from contacts c join campaigns k on k.id = c.campaign_id where c.campaign_id = $1 and c.status = 'in_call'
               and not ((($2::timestamptz at time zone coalesce(c.timezone, k.timezone))::time >= k.window_start)
                    and (($2::timestamptz at time zone coalesce(c.timezone, k.timezone))::time < k.window_end)))::int as closed_zone,
            (select count(*) from contacts where campaign_id = $1 and status = 'in_call')::int as in_call`,
    [cid, NOW],
  );
  const x = r.rows[0];
  return {
    test: 'audit after all claim runs',
    workers: '-',
    'claims/s': '-',
    'statements/s': '-',
    'p50 ms': '-',
    'p99 ms': '-',
    'dnc skipped': '-',
    claims: x.in_call,
    'double claims': x.calls - x.distinct_contacts,
    'DNC violations': x.dnc,
    'window violations': x.closed_zone,
  };
}

async function pacing(
  db: Db,
  cps: number,
  opts: { managers?: number; globalCps?: number; label: string },
): Promise<Row> {
  const n = opts.managers ?? 1;
  const r = await db.query<{ id: number }>(
    `insert into campaigns (name, status, timezone, window_start, window_end, calls_per_second, max_concurrent, max_attempts)
     values ('pace', 'draft', 'UTC', '00:00', '23:59:59.999999', $1, 100000, 3) returning id`,
    [cps],
  );
  const cid = r.rows[0].id;
  await db.query(`insert into phone_numbers (campaign_id, number) values ($1, '+12125550199')`, [cid]);
  const need = Math.ceil(cps * PACE_SECONDS * 1.5) + 100;
  await db.query(
    `insert into contacts (campaign_id, phone) select $1, '+1777' || lpad(g::text, 7, '0') from generate_series(1, $2::int) g`,
    [cid, need],
  );
  if (opts.globalCps) await db.query(`delete from rate_limits where key = 'global'`);
  const mgrs = Array.from(
    { length: n },
    (_, i) => new CampaignManager({ db, worker: `pace${i}`, globalCps: opts.globalCps, progressIntervalMs: 5000 }),
  );
  let placed = 0;
  let first = 0;
  for (const m of mgrs) {
    m.on('call', (c: { id: number }) => {
      if (!first) first = Date.now();
      placed++;
      // the call ends at once: the slot is freed (outcomes on the hot path too)
      void m.handleOutcome({ id: c.id, outcome: 'completed' }).catch(() => undefined);
    });
  }
  const start = Date.now();
  await Promise.all(mgrs.map((m) => m.start(cid)));
  await new Promise((res) => setTimeout(res, PACE_SECONDS * 1000));
  const elapsed = (Date.now() - start) / 1000;
  const count = placed;
  await Promise.all(mgrs.map((m) => m.close()));
  const target = opts.globalCps ?? cps;
  const achieved = count / elapsed;
  return {
    test: opts.label,
    managers: n,
    'configured cps': cps,
    'global cap': opts.globalCps ?? '-',
    seconds: +elapsed.toFixed(1),
    calls: count,
    'achieved cps': +achieved.toFixed(2),
    'error %': +(((achieved - target) / target) * 100).toFixed(2),
  };
}

export async function run(): Promise<Row[]> {
  const name = `aid_bench_campaign_${process.pid}`;
  await withAdmin((c) => c.query(`drop database if exists ${name}`).then(() => c.query(`create database ${name}`)));
  const url = new URL(BASE);
  url.pathname = `/${name}`;
  const rows: Row[] = [];
  process.stderr.write(
    `load average before: ${os
      .loadavg()
      .map((x: number) => x.toFixed(2))
      .join(' ')} (2 cores shared)\n`,
  );
  const db = await openDb({ url: url.toString(), poolSize: 8 });
  try {
    const t = Date.now();
    const cid = await seed(db, 1_000_000);
    process.stderr.write(`seeded 1,000,000 contacts + 100,000 DNC in ${((Date.now() - t) / 1000).toFixed(1)} s\n`);
    for (const [workers, b, naive] of [
      [1, 1, true],
      [4, 1, true],
      [1, 1, false],
      [1, 8, false],
      [1, 16, false],
      [4, 4, false],
      [4, 8, false],
      [4, 16, false],
    ] as Array<[number, number, boolean]>) {
      const r = await claimRun(db, cid, workers, b, naive);
      rows.push(r);
      process.stderr.write(JSON.stringify(r) + '\n');
    }
    rows.push(await audit(db, cid));
    process.stderr.write(JSON.stringify(rows[rows.length - 1]) + '\n');
    // both pacing runs at once (separate buckets), so the bench stays near two minutes
    const pace =
      process.env.BENCH_PACING === '0'
        ? []
        : [
            pacing(db, 20, { label: 'pacing: one campaign, per-campaign rate' }),
            pacing(db, 50, {
              managers: 2,
              globalCps: 30,
              label: 'pacing: two workers, global cap below campaign rate',
            }),
          ];
    for (const p of await Promise.all(pace)) {
      rows.push(p);
      process.stderr.write(JSON.stringify(p) + '\n');
    }
  } finally {
    await db.close();
    await withAdmin((c) => c.query(`drop database if exists ${name} with (force)`));
  }
  return rows;
}

if (require.main === module) {
  run()
    .then((rows) => {
      console.table(rows);
    })
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}
