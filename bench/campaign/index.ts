/**
 * Campaign queue benchmark on the PostgreSQL server (DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/test). Creates its own databases and drops them afterwards.
 *
 *  1. Claims, like for like (docs/contributing/benchmarks.md): 1,000,000 contacts, 100,000 global and
 *     20,000 campaign do-not-call numbers (half of each on contacts' numbers), some contacts not yet
 *     due and some out of attempts, in several zone layouts. The data is seeded once per layout into a
 *     template database; every contender gets its own copy. Contenders: ours (claim_contacts, every
 *     rule in the statement, default `concurrency_scope: campaign`, call record, caller ID) and the
 *     per-zone peer (bench/campaign/peer-claim.ts). Each run is a separate process
 *     (bench/campaign/claimer.ts), rounds interleaved (the order alternates), per-statement claims/s and
 *     latency (never divided by the batch), min / median / max over rounds and the paired ratio
 *     ours / peer per round. Afterwards every claimed contact is audited (double claims, DNC, window,
 *     due time, attempts) in each contender's database.
 *  2. Pacing: a CampaignManager at a configured calls/s, achieved rate over 60 s (BENCH_QUICK=1: 10 s);
 *     and two managers under a lower global cap (GLOBAL_CPS bucket).
 *
 *     With BENCH_BEFORE=<another build's dist folder> (e.g. a worktree of main after `npm run build`), a third
 *     contender, **before**: that build's claimer on a template seeded by that build (its migrations, its
 *     seed), in the same interleaved rounds, with the ratios ours / before paired per round.
 *     WAL per claimed contact (records, bytes, full-page image bytes) is read with pg_walinspect over each
 *     run and kept to the records touching the contender's own database, so the other databases on the
 *     server do not count.
 *
 * Knobs: BENCH_QUICK=1 (200k contacts, one layout, 2 rounds), BENCH_ROUNDS, BENCH_CLAIM_SECONDS,
 * BENCH_LAYOUTS (comma list of uniform20, skewed20, single), BENCH_CONFIGS (default "1x1,4x1,4x8,4x8@5000":
 * workers x batch, `@N` paced at N contacts/s over all workers, latency from each statement's due time; the
 * unpaced runs claim back to back, so their p99 is the latency at the machine's limit), BENCH_PACING=0,
 * BENCH_BEFORE (its claimer is paced only if that build's claimer knows `rate`).
 */
import os from 'os';
import path from 'path';
import { execFile } from 'child_process';
import { Client } from 'pg';
import { openDb, type Db } from '../../src/store/db';
import { PEER_PREPARE_SQL } from './peer-claim';
import { dbUrl, withAdmin } from './admin';
import { CampaignManager } from '../../src/campaign/manager';

type Row = Record<string, string | number>;

const QUICK = process.env.BENCH_QUICK === '1';
const CLAIM_SECONDS = Number(process.env.BENCH_CLAIM_SECONDS || 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS || (QUICK ? 2 : 3));
const CONTACTS = QUICK ? 200_000 : 1_000_000;
const PACE_SECONDS = QUICK ? 10 : 60;
const LAYOUTS = (process.env.BENCH_LAYOUTS || (QUICK ? 'uniform20' : 'uniform20,skewed20,single')).split(',');
/** `workers x batch`, `@rate` = paced at that many contacts/s over all workers (bench/campaign/claimer.ts). */
const CONFIGS = (process.env.BENCH_CONFIGS || '1x1,4x1,4x8,4x8@5000').split(',').map((c) => {
  const [wb, rate] = c.split('@');
  const [workers, batch] = wb.split('x').map(Number);
  return { workers, batch, rate: rate ? Number(rate) : 0, label: c };
});
/** Another build's dist folder: its claimer and its schema run as the contender `before`. */
const BEFORE = process.env.BENCH_BEFORE ? path.resolve(process.env.BENCH_BEFORE) : '';
/** The bench's clock for eligibility: 2026-06-15 18:00Z (14:00 New York, 11:00 Los Angeles, 03:00 Tokyo: closed). */
export const NOW = new Date('2026-06-15T18:00:00Z');
/** 20 zones; at NOW with a 09:00-20:00 window, 11 are open and 9 closed. */
const ZONES = [
  'America/New_York',
  'America/Chicago',
  'America/Denver',
  'America/Phoenix',
  'America/Los_Angeles',
  'America/Anchorage',
  'Pacific/Honolulu',
  'America/Puerto_Rico',
  'America/Halifax',
  'America/Sao_Paulo',
  'Atlantic/Azores',
  'Europe/London',
  'Europe/Berlin',
  'Europe/Moscow',
  'Asia/Dubai',
  'Asia/Kolkata',
  'Asia/Shanghai',
  'Asia/Tokyo',
  'Australia/Sydney',
  'Pacific/Auckland',
];
const LAYOUT_SQL: Record<string, string> = {
  // every zone equally; every 13th contact in the campaign's zone (timezone null)
  uniform20: `case when g % 13 = 0 then null else ($3::text[])[1 + g % 20] end`,
  // 80% in New York, the rest over the 20 zones
  skewed20: `case when g % 13 = 0 then null when g % 5 <> 0 then 'America/New_York' else ($3::text[])[1 + (g / 5) % 20] end`,
  // one zone
  single: `($3::text[])[1]`,
};

function stats(xs: number[]): { min: number; med: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0] ?? 0, med: s.length ? s[Math.floor((s.length - 1) / 2)] : 0, max: s[s.length - 1] ?? 0 };
}

/** Seeds one layout (see the module comment); returns the campaign id. */
export async function seed(db: Db, n: number, layout: string): Promise<number> {
  const r = await db.query<{ id: number }>(
    `insert into campaigns (name, status, timezone, window_start, window_end, max_attempts, caller_id_strategy, calls_per_second, max_concurrent)
     values ('bench', 'running', 'America/New_York', '09:00', '20:00', 3, 'round_robin', 1000, 1000000) returning id`,
  );
  const cid = r.rows[0].id;
  await db.query(
    `insert into phone_numbers (campaign_id, number) select $1, '+1' || (200 + g * 37) || '5550100' from generate_series(1, 20) g`,
    [cid],
  );
  // every 17th contact is due in an hour, every 19th has used all its attempts
  await db.query(
    `insert into contacts (campaign_id, phone, name, timezone, fields, next_attempt_at, attempts)
     select $1, '+1' || (200 + g % 800) || lpad(g::text, 7, '0'), 'Contact ' || g, ${LAYOUT_SQL[layout]},
            jsonb_build_object('n', g),
            case when g % 17 = 0 then $4::timestamptz + interval '1 hour' else $4::timestamptz - make_interval(secs => (g % 86400)) end,
            case when g % 19 = 0 then 3 else 0 end
       from generate_series(1, $2::int) g`,
    [cid, n, ZONES, NOW],
  );
  // 100k global DNC (every 20th contact's number, the rest elsewhere), 20k of the campaign's own
  const onContacts = Math.min(50_000, Math.floor(n / 20));
  await db.query(
    `insert into dnc (phone, campaign_id)
     select '+1' || (200 + g % 800) || lpad(g::text, 7, '0'), null from generate_series(20, $1::int * 20, 20) g`,
    [onContacts],
  );
  await db.query(
    `insert into dnc (phone, campaign_id) select '+1999' || lpad(g::text, 7, '0'), null from generate_series(1, $1::int) g`,
    [100_000 - onContacts],
  );
  await db.query(
    `insert into dnc (phone, campaign_id)
     select '+1' || (200 + g % 800) || lpad(g::text, 7, '0'), $1 from generate_series(10, 200000, 20) g`,
    [cid],
  );
  await db.query(
    `insert into dnc (phone, campaign_id) select '+1998' || lpad(g::text, 7, '0'), $1 from generate_series(1, 10000) g`,
    [cid],
  );
  await db.query('vacuum analyze');
  return cid;
}

async function audit(db: Db, cid: number): Promise<Record<string, number>> {
  const r = await db.query<Record<string, number>>(
    `with cl as (
       select c.*, k.timezone as ktz, k.window_start, k.window_end, k.max_attempts
       from calls x join contacts c on c.id = x.contact_id join campaigns k on k.id = c.campaign_id
       where x.campaign_id = $1)
     select (select count(*) from calls where campaign_id = $1)::int as calls,
       (select count(*) - count(distinct contact_id) from calls where campaign_id = $1)::int as double_claims,
       (select count(*) from cl where exists (select 1 from dnc d where d.phone = cl.phone
          and (d.campaign_id is null or d.campaign_id = cl.campaign_id)))::int as dnc,
       (select count(*) from cl where not (($2::timestamptz at time zone coalesce(cl.timezone, cl.ktz))::time >= cl.window_start
          and ($2::timestamptz at time zone coalesce(cl.timezone, cl.ktz))::time < cl.window_end))::int as "window",
       (select count(*) from cl where cl.next_attempt_at > $2::timestamptz)::int as due,
       (select count(*) from cl where cl.attempts > cl.max_attempts)::int as attempts`,
    [cid, NOW],
  );
  return r.rows[0];
}

interface Counters {
  blocks: number;
  entries: number;
  /** WAL position (server-wide), for the run's records of this database (walUse) */
  lsn: string;
}

interface WalUse {
  records: number;
  bytes: number;
  fpi: number;
}

/**
 * WAL written between two positions by records touching database `name`'s relations (pg_walinspect, read
 * from the admin database); undefined when the WAL is no longer there (a checkpoint recycled it) or
 * pg_walinspect is missing.
 */
async function walUse(name: string, from: string, to: string): Promise<WalUse | undefined> {
  try {
    return await withAdmin(async (c) => {
      await c.query('create extension if not exists pg_walinspect');
      const r = await c.query<{ records: string; bytes: string; fpi: string }>(
        `select count(*) as records, coalesce(sum(record_length), 0) as bytes, coalesce(sum(fpi_length), 0) as fpi
           from pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
          where block_ref ~ ('rel [0-9]+/' || (select oid from pg_database where datname = $3) || '/')`,
        [from, to, name],
      );
      return { records: Number(r.rows[0].records), bytes: Number(r.rows[0].bytes), fpi: Number(r.rows[0].fpi) };
    });
  } catch {
    return undefined;
  }
}

/**
 * Work counters of one contender's database, which nothing else uses: shared buffers hit + read, and
 * index entries read on contacts (the claim's scan, its update's lookup, the foreign key check). Read
 * once the claimer's connections are gone (a backend flushes its statistics when it exits).
 */
async function counters(url: string): Promise<Counters> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    for (;;) {
      const busy = await c.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`,
      );
      if (busy.rows[0].n === 0) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    await c.query('select pg_stat_clear_snapshot()');
    const r = await c.query<{ blocks: string; entries: string; lsn: string }>(
      `select (select blks_hit + blks_read from pg_stat_database where datname = current_database()) as blocks,
         (select coalesce(sum(idx_tup_read), 0) from pg_stat_user_indexes
           where relname in ('contacts', 'contact_queue')) as entries,
         pg_current_wal_lsn()::text as lsn`,
    );
    return { blocks: Number(r.rows[0].blocks), entries: Number(r.rows[0].entries), lsn: r.rows[0].lsn };
  } finally {
    await c.end();
  }
}

function runClaimer(
  script: string,
  args: Record<string, unknown>,
): Promise<{
  contacts: number;
  statements: number;
  secs: number;
  p50: number;
  p99: number;
}> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, JSON.stringify(args)], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`claimer failed: ${err.message} ${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop() as string));
    });
  });
}

type Contender = 'ours' | 'peer' | 'before';

interface RoundResult {
  cps: number;
  p50: number;
  p99: number;
  blocks: number;
  entries: number;
  wal?: WalUse;
}

const LABEL: Record<Contender, string> = {
  ours: 'ours (claim_contacts, scope campaign)',
  peer: 'peer (per-zone design)',
  before: 'before (BENCH_BEFORE build, scope campaign)',
};

/** Seeds `layout` into a new database `name` with the build whose store is `storeDir` (its migrations). */
async function seedTemplate(name: string, layout: string, storeDir?: string): Promise<number> {
  await withAdmin((c) => c.query(`create database ${name}`));
  const t = Date.now();
  // another build's modules, loaded by path at run time
  const load = <T>(file: string): T => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(path.join(storeDir as string, file)) as T;
  };
  const other = storeDir ? load<{ openDb: typeof openDb }>('src/store/db.js') : undefined;
  const seeder = storeDir ? load<{ seed: typeof seed }>('bench/campaign/index.js') : undefined;
  const sdb = await (other?.openDb ?? openDb)({ url: dbUrl(name), poolSize: 2 });
  try {
    const cid = await (seeder?.seed ?? seed)(sdb, CONTACTS, layout);
    process.stderr.write(
      `[${layout}] ${storeDir ? 'before build: ' : ''}seeded ${CONTACTS} contacts + 120,000 DNC in ${((Date.now() - t) / 1000).toFixed(1)} s\n`,
    );
    return cid;
  } finally {
    await sdb.close();
  }
}

async function claims(rows: Row[]): Promise<void> {
  const tag = `aid_bench_claim_${process.pid}`;
  const contenders: Contender[] = BEFORE ? ['ours', 'peer', 'before'] : ['ours', 'peer'];
  const script: Record<Contender, string> = {
    ours: path.join(__dirname, 'claimer.js'),
    peer: path.join(__dirname, 'claimer.js'),
    before: path.join(BEFORE, 'bench/campaign/claimer.js'),
  };
  for (const layout of LAYOUTS) {
    const tpl = `${tag}_${layout}_tpl`;
    const btpl = `${tag}_${layout}_btpl`;
    const dbs: string[] = [tpl];
    try {
      const cid = await seedTemplate(tpl, layout);
      if (BEFORE) {
        dbs.push(btpl);
        const bcid = await seedTemplate(btpl, layout, BEFORE);
        if (bcid !== cid) throw new Error(`the before build seeded campaign ${bcid}, ours ${cid}`);
      }
      const urls: Record<string, string> = {};
      const names: Record<string, string> = {};
      for (const who of contenders) {
        const name = `${tag}_${layout}_${who}`;
        await withAdmin((c) => c.query(`create database ${name} template ${who === 'before' ? btpl : tpl}`));
        dbs.push(name);
        names[who] = name;
        urls[who] = dbUrl(name);
        if (who === 'peer') {
          const pdb = await openDb({ url: urls[who], poolSize: 1 });
          try {
            for (const sql of PEER_PREPARE_SQL) await pdb.query(sql);
          } finally {
            await pdb.close();
          }
        }
      }
      // a checkpoint once every copy is ready: the peer's preparation rewrote most of its pages, so until
      // the next checkpoint its claims would write no full-page images while ours write one for every page
      // touched first (about 10 KB of WAL per claim against 1 KB); from here all pay alike
      await withAdmin((c) => c.query('checkpoint'));
      for (const { workers, batch, rate, label } of CONFIGS) {
        const res: Record<string, RoundResult[]> = { ours: [], peer: [], before: [] };
        for (let round = 0; round < ROUNDS; round++) {
          // the order rotates round by round, so each contender runs first, middle and last alike
          const order = contenders.map((_, i) => contenders[(i + round) % contenders.length]);
          for (const who of order) {
            const before = await counters(urls[who]);
            const r = await runClaimer(script[who], {
              url: urls[who],
              contender: who === 'peer' ? 'peer' : 'ours',
              campaignId: cid,
              workers,
              batch,
              seconds: CLAIM_SECONDS,
              now: NOW.toISOString(),
              rate: rate || undefined,
            });
            const after = await counters(urls[who]);
            const per = (k: 'blocks' | 'entries'): number => (r.contacts ? (after[k] - before[k]) / r.contacts : 0);
            const wal = await walUse(names[who], before.lsn, after.lsn);
            res[who].push({
              cps: r.contacts / r.secs,
              p50: r.p50,
              p99: r.p99,
              blocks: per('blocks'),
              entries: per('entries'),
              wal:
                wal && r.contacts
                  ? { records: wal.records / r.contacts, bytes: wal.bytes / r.contacts, fpi: wal.fpi / r.contacts }
                  : undefined,
            });
            process.stderr.write(
              `[${layout}] ${label} round ${round + 1} ${who}: ${JSON.stringify({ ...r, wal: res[who][res[who].length - 1].wal })}\n`,
            );
          }
        }
        const walMed = (who: string, k: keyof WalUse): number | string => {
          const xs = res[who].filter((x) => x.wal).map((x) => (x.wal as WalUse)[k]);
          return xs.length ? +stats(xs).med.toFixed(k === 'records' ? 1 : 0) : '-';
        };
        for (const who of contenders) {
          const c = stats(res[who].map((x) => x.cps));
          const p50 = stats(res[who].map((x) => x.p50));
          const p99 = stats(res[who].map((x) => x.p99));
          rows.push({
            test: `claim ${layout}: ${LABEL[who]}`,
            workers,
            batch,
            'paced /s': rate || '-',
            'contacts/s min': Math.round(c.min),
            'contacts/s med': Math.round(c.med),
            'contacts/s max': Math.round(c.max),
            'stmt p50 ms med': +p50.med.toFixed(2),
            'stmt p99 ms med': +p99.med.toFixed(2),
            'stmt p99 ms max': +p99.max.toFixed(2),
            'buffers/contact med': +stats(res[who].map((x) => x.blocks)).med.toFixed(1),
            'contacts index entries/contact med': +stats(res[who].map((x) => x.entries)).med.toFixed(1),
            'WAL records/contact med': walMed(who, 'records'),
            'WAL bytes/contact med': walMed(who, 'bytes'),
            'FPI bytes/contact med': walMed(who, 'fpi'),
          });
        }
        const pairs: Array<[Contender, Contender]> = [['ours', 'peer']];
        if (BEFORE) pairs.push(['before', 'peer'], ['ours', 'before']);
        for (const [a, b] of pairs) {
          const ratio = stats(res[a].map((o, i) => o.cps / res[b][i].cps));
          const p99r = stats(res[a].map((o, i) => o.p99 / res[b][i].p99));
          rows.push({
            test: `claim ${layout}: ${a} / ${b} (paired per round)`,
            workers,
            batch,
            'paced /s': rate || '-',
            'contacts/s min': +ratio.min.toFixed(2),
            'contacts/s med': +ratio.med.toFixed(2),
            'contacts/s max': +ratio.max.toFixed(2),
            'stmt p99 ms med': +p99r.med.toFixed(2),
            'stmt p99 ms max': +p99r.max.toFixed(2),
          });
          process.stderr.write(JSON.stringify(rows[rows.length - 1]) + '\n');
        }
      }
      for (const who of contenders) {
        const adb = await openDb({ url: urls[who], poolSize: 1, migrate: false });
        try {
          const a = await audit(adb, cid);
          rows.push({
            test: `audit ${layout}: ${who}`,
            'claimed (calls)': a.calls,
            'double claims': a.double_claims,
            'DNC violations': a.dnc,
            'window violations': a.window,
            'not due': a.due,
            'over attempts': a.attempts,
          });
          process.stderr.write(JSON.stringify(rows[rows.length - 1]) + '\n');
        } finally {
          await adb.close();
        }
      }
    } finally {
      for (const name of dbs.reverse()) await withAdmin((c) => c.query(`drop database if exists ${name} with (force)`));
    }
  }
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
  const rows: Row[] = [];
  process.stderr.write(
    `load average before: ${os
      .loadavg()
      .map((x: number) => x.toFixed(2))
      .join(' ')} (2 cores shared)\n`,
  );
  if (process.env.BENCH_CLAIMS !== '0') await claims(rows);
  if (process.env.BENCH_PACING === '0') return rows;
  const name = `aid_bench_campaign_${process.pid}`;
  await withAdmin((c) => c.query(`drop database if exists ${name}`).then(() => c.query(`create database ${name}`)));
  const db = await openDb({ url: dbUrl(name), poolSize: 8 });
  try {
    // both pacing runs at once (separate buckets), so the bench stays near one minute
    const pace = [
      pacing(db, 20, { label: 'pacing: one campaign, per-campaign rate' }),
      pacing(db, 50, { managers: 2, globalCps: 30, label: 'pacing: two workers, global cap below campaign rate' }),
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
