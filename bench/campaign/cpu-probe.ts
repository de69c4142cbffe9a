/**
 * Per-claim work of ours against the peer, measured so the machine's load hardly moves it: each contender
 * on one connection of its own (its own copy of one seeded template), claiming in blocks that alternate
 * between the contenders (the order alternating too), with the backend's CPU time read from
 * /proc/<backend pid>/schedstat around each block (the server must be on this machine) and the shared
 * buffers of one claim in ten from EXPLAIN (ANALYZE, BUFFERS). Prints one JSON line per block and a summary:
 * CPU µs per claimed contact (min / median / max over blocks) and the ratio peer / ours paired per block
 * (above 1: ours cheaper).
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> PROBE_LAYOUT=uniform20 PROBE_CONTACTS=200000 \
 *     PROBE_BLOCKS=8 PROBE_BLOCK=300 PROBE_BATCH=1 node dist/bench/campaign/cpu-probe.js
 *
 * PROBE_SIDES=peer,ours,ours=<sql file>: the contenders (ratios to the first); `ours=<file>` is ours with that SQL
 * run on its copy after the migrations (e.g. an older claim_contacts: before vs after on one template). Since
 * migration 66 the function returns four columns (o_room last): a variant drops it first
 * (`drop function claim_contacts(int, int, timestamptz, text, int);`) and keeps the four, as claimContacts reads
 * o_room.
 * PROBE_TEMPLATE=<name>: reuse (or create and keep) that seeded template instead of seeding a throwaway one.
 * PROBE_PEER_PREPARED=1: the peer as a named prepared statement (the bench sends it unnamed, planned each time).
 * PROBE_OURS_DIST=<another build's dist>: that build's claimContacts / openDb for ours (before vs after on one
 * template seeded by that build).
 */
import fs from 'fs';
import path from 'path';
import { Client } from 'pg';
import { claimContacts as ourClaim } from '../../src/store/claim';
import { openDb as ourOpen, type Db } from '../../src/store/db';
import { seed, NOW } from './index';
import { PEER_CLAIM_SQL, PEER_PREPARE_SQL } from './peer-claim';
import { dbUrl, withAdmin } from './admin';

const LAYOUT = process.env.PROBE_LAYOUT || 'uniform20';
const CONTACTS = Number(process.env.PROBE_CONTACTS || 200_000);
const BLOCKS = Number(process.env.PROBE_BLOCKS || 8);
const BLOCK = Number(process.env.PROBE_BLOCK || 300);
const BATCH = Number(process.env.PROBE_BATCH || 1);
const TEMPLATE = process.env.PROBE_TEMPLATE || '';
const PEER_PREPARED = process.env.PROBE_PEER_PREPARED === '1';
/** the contenders: `ours`, `peer`, or `ours=<sql file>` (ours with that SQL applied to its copy); ratios are to the first */
const SIDES = (process.env.PROBE_SIDES || 'peer,ours').split(',');
const OURS_DIST = process.env.PROBE_OURS_DIST ? path.resolve(process.env.PROBE_OURS_DIST) : '';

function load<T>(file: string): T {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(path.join(OURS_DIST, file)) as T;
}
const openDb: typeof ourOpen = OURS_DIST ? load<{ openDb: typeof ourOpen }>('src/store/db.js').openDb : ourOpen;
const claimContacts: typeof ourClaim = OURS_DIST
  ? load<{ claimContacts: typeof ourClaim }>('src/store/claim.js').claimContacts
  : ourClaim;

function cpuNs(pid: number): number {
  return Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
}

/** user and system CPU seconds of a process so far (/proc/<pid>/stat, clock ticks of 10 ms) */
function userSys(pid: number): [number, number] {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return [Number(f[11]) / 100, Number(f[12]) / 100];
}

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const f = (v: number) => (Math.round(v * 100) / 100).toString();
  return `${f(s[0])} / ${f(s[Math.floor((s.length - 1) / 2)])} / ${f(s[s.length - 1])}`;
}

interface Side {
  name: string;
  /** one claim: contacts claimed */
  claim: () => Promise<number>;
  /** the same claim under EXPLAIN (ANALYZE, BUFFERS): shared buffers hit + read, contacts claimed */
  explain: () => Promise<{ buffers: number; got: number }>;
  /** the backend's pid, asked again before each block (the store's pool closes a connection idle for 10 s) */
  pid: () => Promise<number>;
  close: () => Promise<void>;
}

async function main(): Promise<void> {
  const tag = `aid_probe_${process.pid}`;
  const tpl = TEMPLATE || `${tag}_tpl`;
  const dbs: string[] = TEMPLATE ? [] : [tpl];
  let cid: number;
  const exists = await withAdmin(
    async (c) => (await c.query('select 1 from pg_database where datname = $1', [tpl])).rowCount,
  );
  if (!exists) {
    await withAdmin((c) => c.query(`create database ${tpl}`));
    const t = Date.now();
    const sdb = await openDb({ url: dbUrl(tpl), poolSize: 2 });
    try {
      cid = await seed(sdb, CONTACTS, LAYOUT);
    } finally {
      await sdb.close();
    }
    process.stderr.write(`seeded ${CONTACTS} ${LAYOUT} into ${tpl} in ${(Date.now() - t) / 1000} s\n`);
  } else {
    const c = new Client({ connectionString: dbUrl(tpl) });
    await c.connect();
    cid = (await c.query<{ id: number }>(`select id from campaigns where name = 'bench'`)).rows[0].id;
    await c.end();
  }
  const sides: Side[] = [];
  try {
    for (const [k, spec] of SIDES.entries()) {
      const [who, sqlFile] = spec.split('=');
      const name = `${tag}_${k}`;
      await withAdmin((c) => c.query(`create database ${name} template ${tpl}`));
      dbs.push(name);
      const url = dbUrl(name);
      if (who === 'peer') {
        const c = new Client({ connectionString: url });
        await c.connect();
        for (const sql of PEER_PREPARE_SQL) await c.query(sql);
        await c.end();
      }
      if (who === 'ours') {
        // the store's pool of one: the claim as the campaign manager sends it (named, warmed connection)
        const db: Db = await openDb({ url, poolSize: 1 });
        if (sqlFile) {
          // a variant of ours: that SQL applied to its copy once migrated (e.g. an older claim_contacts), then the
          // connection warmed again
          await db.query(fs.readFileSync(sqlFile, 'utf8'));
          await db.query('select claim_warm()');
        }
        const pid = async () => (await db.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
        const args = [cid, BATCH, NOW.toISOString(), 'w0', 2];
        sides.push({
          name: spec,
          pid,
          claim: async () =>
            (await claimContacts(db, { campaignId: cid, limit: BATCH, worker: 'w0', now: NOW, concurrency: 1 })).claimed
              .length,
          explain: async () => {
            const r = await db.query<{ 'QUERY PLAN': unknown }>(
              `explain (analyze, buffers, format json) select * from claim_contacts($1::int, $2::int, $3::timestamptz, $4::text, $5::int)`,
              args,
            );
            const plan = (r.rows[0]['QUERY PLAN'] as { Plan: Record<string, number> }[])[0].Plan;
            const got = await db.query<{ n: number }>(`select count(*)::int as n from calls where campaign_id = $1`, [
              cid,
            ]);
            return { buffers: plan['Shared Hit Blocks'] + plan['Shared Read Blocks'], got: got.rows[0].n };
          },
          close: () => db.close(),
        });
      } else {
        const c = new Client({ connectionString: url });
        await c.connect();
        const pid = async () => (await c.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
        const vals = [cid, BATCH, NOW, 'w0'];
        sides.push({
          name: spec,
          pid,
          claim: async () =>
            (PEER_PREPARED
              ? await c.query({ name: 'peer', text: PEER_CLAIM_SQL, values: vals })
              : await c.query(PEER_CLAIM_SQL, vals)
            ).rowCount ?? 0,
          explain: async () => {
            const r = await c.query(`explain (analyze, buffers, format json) ${PEER_CLAIM_SQL}`, vals);
            const plan = (r.rows[0]['QUERY PLAN'] as { Plan: Record<string, number> }[])[0].Plan;
            const got = await c.query<{ n: number }>(`select count(*)::int as n from calls where campaign_id = $1`, [
              cid,
            ]);
            return { buffers: plan['Shared Hit Blocks'] + plan['Shared Read Blocks'], got: got.rows[0].n };
          },
          close: () => c.end(),
        });
      }
    }
    await withAdmin((c) => c.query('checkpoint'));
    process.stderr.write(
      `backends: ${(await Promise.all(sides.map(async (s) => `${s.name} ${await s.pid()}`))).join(', ')}\n`,
    );
    // warm both: 50 claims each
    for (const s of sides) for (let i = 0; i < 50; i++) await s.claim();
    const per: Record<string, number[]> = {};
    const bufs: Record<string, number[]> = {};
    const user: Record<string, number[]> = {};
    const sys: Record<string, number[]> = {};
    const ratios: Record<string, number[]> = {};
    for (const s of sides) {
      per[s.name] = [];
      bufs[s.name] = [];
      user[s.name] = [];
      sys[s.name] = [];
      ratios[s.name] = [];
    }
    for (let b = 0; b < BLOCKS; b++) {
      const order = b % 2 ? [...sides].reverse() : sides;
      const blk: Record<string, number> = {};
      for (const s of order) {
        const pid = await s.pid();
        const c0 = cpuNs(pid);
        const [u0, s0] = userSys(pid);
        let got = 0;
        for (let i = 0; i < BLOCK; i++) got += await s.claim();
        const us = (cpuNs(pid) - c0) / 1000 / Math.max(1, got);
        const [u1, s1] = userSys(pid);
        per[s.name].push(us);
        blk[s.name] = us;
        user[s.name].push(((u1 - u0) * 1e6) / Math.max(1, got));
        sys[s.name].push(((s1 - s0) * 1e6) / Math.max(1, got));
        if (got < BLOCK * BATCH) process.stderr.write(`${s.name}: ${got} contacts in ${BLOCK} claims\n`);
      }
      for (const s of sides) {
        // buffers: EXPLAIN of 10 claims (each checked to have claimed, from the calls it inserted)
        let b0 = (await s.explain()).got;
        let sum = 0;
        for (let i = 0; i < 10; i++) {
          const e = await s.explain();
          sum += e.buffers;
          if (e.got === b0) process.stderr.write(`${s.name}: an empty claim under explain\n`);
          b0 = e.got;
        }
        bufs[s.name].push(sum / 10 / BATCH);
        ratios[s.name].push(blk[s.name] / blk[sides[0].name]);
      }
      process.stdout.write(JSON.stringify({ block: b, cpu_us_per_contact: blk }) + '\n');
    }
    const summary: Record<string, unknown> = {
      layout: LAYOUT,
      contacts: CONTACTS,
      batch: BATCH,
      blocks: BLOCKS,
      block: BLOCK,
    };
    for (const s of sides)
      summary[s.name] = {
        cpu_us_per_contact: stats(per[s.name]),
        user_us: stats(user[s.name]),
        sys_us: stats(sys[s.name]),
        over_first: stats(ratios[s.name]),
        buffers_per_contact: stats(bufs[s.name]),
      };
    process.stdout.write(JSON.stringify(summary) + '\n');
  } finally {
    for (const s of sides) await s.close().catch(() => undefined);
    for (const name of dbs.reverse())
      await withAdmin((c) => c.query(`drop database if exists ${name}`)).catch(() => undefined);
  }
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
});
