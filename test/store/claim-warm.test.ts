/**
 * Migration 35: the claim warm-up every new PostgreSQL connection runs (claim_warm(): the claim path compiled
 * and planned, everything rolled back), and the claim's trigger lookups planned on their indexes whatever the
 * tables' statistics. Counted without clocks: rows and sequence values left behind, sequential scans of
 * `calls` inside one claim's transaction (pg_stat_get_xact_numscans), the warm-up's calls per backend
 * (pg_stat_user_functions).
 */
import { Client } from 'pg';
import type { Queryable } from '../../src/store/db';
import { claimContacts } from '../../src/store/claim';
import { describeOnDbs, postgresTarget } from '../helpers/db';
import { makeCampaign } from '../campaign/fixtures';

async function seedDue(q: Queryable, cid: number, n: number, from = 0): Promise<void> {
  await q.query(
    `insert into contacts (campaign_id, phone, next_attempt_at)
     select $1, '+1555' || lpad((g + $3)::text, 7, '0'), now() - make_interval(secs => 10000 - g)
       from generate_series(1, $2::int) g`,
    [cid, n, from],
  );
}

/** Row counts of every table the claim writes, and the sequences' positions. */
async function footprint(q: Queryable): Promise<Record<string, unknown>> {
  const r = await q.query<Record<string, unknown>>(
    `select (select count(*) from campaigns)::int as campaigns, (select count(*) from contacts)::int as contacts,
       (select count(*) from calls)::int as calls, (select count(*) from phone_numbers)::int as numbers,
       (select count(*) from campaign_slots)::int as slots, (select count(*) from campaign_zones)::int as zones,
       (select count(*) from contact_queue)::int as queue, (select count(*) from contact_queue_head)::int as heads,
       (select sum(used) from campaign_slots)::int as used,
       (select last_value::text || is_called::text from calls_id_seq) as calls_seq,
       (select last_value::text || is_called::text from caller_id_rr) as rr_seq,
       (select last_value::text || is_called::text from campaigns_id_seq) as campaigns_seq,
       (select last_value::text || is_called::text from contacts_id_seq) as contacts_seq`,
  );
  return r.rows[0];
}

describeOnDbs('claim warm-up', { poolSize: 1 }, (dbOf, name) => {
  test('with calls empty when the claim was first planned, a claim reads no call row by a sequential scan', async () => {
    // first: calls empty and analyzed so (a new install; a server with autovacuum off keeps it so)
    await dbOf().query('analyze calls');
    const cid = await makeCampaign(dbOf());
    await seedDue(dbOf(), cid, 3000);
    await dbOf().query('analyze contacts');
    // this connection's first claims plan the trigger's lookup (5 custom plans, then the cached generic one)
    for (let i = 0; i < 3; i++)
      expect((await claimContacts(dbOf(), { campaignId: cid, limit: 8 })).claimed).toHaveLength(8);
    // 2,000 calls more (closed), so a sequential scan has something to read
    await dbOf().query(
      `insert into calls (campaign_id, contact_id, direction, phone, status)
       select $1, c.id, 'outbound', c.phone, 'completed' from contacts c where c.campaign_id = $1 and c.status = 'pending'
        order by c.id limit 2000`,
      [cid],
    );
    const scans = await dbOf().tx(async (q) => {
      const read = async (): Promise<number> =>
        (await q.query<{ n: number }>(`select pg_stat_get_xact_numscans('calls'::regclass)::int as n`)).rows[0].n;
      const before = await read();
      expect((await claimContacts(q, { campaignId: cid, limit: 8 })).claimed).toHaveLength(8);
      return (await read()) - before;
    });
    // before migration 35: 8 (one scan of every call per contact claimed)
    expect(scans).toBe(0);
  });

  test('claim_warm() runs to its end and leaves nothing: no row, no sequence value, the next claim as before', async () => {
    const cid = await makeCampaign(dbOf(), { numbers: ['+12125550100', '+12125550101', '+12125550102'] });
    await seedDue(dbOf(), cid, 20, 100_000);
    const before = await footprint(dbOf());
    for (let i = 0; i < 3; i++) {
      const r = await dbOf().query<{ err: string | null }>('select claim_warm() as err');
      expect(r.rows[0].err).toBeNull(); // null: every statement of the warm-up ran (an error comes back as its message)
    }
    expect(await footprint(dbOf())).toEqual(before);
    const r = await claimContacts(dbOf(), { campaignId: cid, limit: 2 });
    expect(r.claimed.map((c) => c.phone)).toEqual(['+15550100001', '+15550100002']);
  });

  if (name === 'postgres') {
    test('every new connection of the pool runs the warm-up once, before it serves a statement', async () => {
      const other = postgresTarget(process.env.DATABASE_URL!);
      const admin = new Client({ connectionString: other.options().url });
      try {
        const first = await other.open({ poolSize: 1 }); // creates and migrates the database
        await first.close();
        await admin.connect();
        const dbName = (await admin.query<{ d: string }>('select current_database() as d')).rows[0].d;
        await admin.query(`alter database ${dbName} set track_functions = 'pl'`);
        const pooled = await other.open({ poolSize: 3 });
        // 3 statements at once: 3 connections
        await Promise.all([1, 2, 3].map(() => pooled.query('select pg_sleep(0.1)')));
        await pooled.close(); // the backends exit and report their function calls
        let calls = 0;
        for (let i = 0; i < 50 && calls < 3; i++) {
          await new Promise((res) => setTimeout(res, 100));
          await admin.query('select pg_stat_clear_snapshot()');
          const r = await admin.query<{ n: number }>(
            `select coalesce(sum(calls), 0)::int as n from pg_stat_user_functions where funcname = 'claim_warm'`,
          );
          calls = r.rows[0].n;
        }
        expect(calls).toBe(3);
      } finally {
        await admin.end().catch(() => undefined);
        await other.cleanup();
      }
    });
  } else {
    test.skip('every new connection of the pool runs the warm-up (PostgreSQL only)', () => undefined);
  }
});

describeOnDbs('do-not-call sweep of inserts', { poolSize: 1 }, (dbOf) => {
  // one connection (poolSize 1): the plan the first insert leaves is the one reused
  test("a connection's first insert of one contact does not make its later imports probe every pair", async () => {
    const cid = await makeCampaign(dbOf());
    await dbOf().query(
      `insert into dnc (phone) select '+1999' || lpad(g::text, 7, '0') from generate_series(1, 2000) g`,
    );
    await dbOf().query('analyze dnc');
    // the first insert on this connection: one row (contacts never analyzed, as in a new database)
    await dbOf().query(`insert into contacts (campaign_id, phone) values ($1, '+15559999999')`, [cid]);
    const probes = await dbOf().tx(async (q) => {
      const read = async (): Promise<number> =>
        (await q.query<{ n: number }>(`select pg_stat_get_xact_blocks_fetched('dnc_unique'::regclass)::int as n`))
          .rows[0].n;
      const before = await read();
      // 300 contacts, every 10th listed
      await q.query(
        `insert into contacts (campaign_id, phone)
         select $1, case when g % 10 = 0 then '+1999' || lpad(g::text, 7, '0') else '+1555' || lpad(g::text, 7, '0') end
           from generate_series(1, 300) g`,
        [cid],
      );
      return (await read()) - before;
    });
    const r = await dbOf().query<{ status: string; n: number }>(
      `select status, count(*)::int as n from contacts where campaign_id = $1 group by 1 order by 1`,
      [cid],
    );
    expect(r.rows).toEqual([
      { status: 'dnc', n: 30 },
      { status: 'pending', n: 271 },
    ]);
    // a few index pages per new contact (its own probe); the plan kept from the one-row insert probed every
    // (contact, new row) pair: 300 x 301 probes, some 180,000 pages
    expect(probes).toBeLessThan(300 * 8);
  }, 120_000);
});

describeOnDbs('do-not-call sweep of list additions', { poolSize: 1 }, (dbOf) => {
  // one connection (poolSize 1): the plans its first list addition leaves are the ones reused
  test("a connection's first list addition of one number does not make a later list of 3,000 read every pair", async () => {
    const cid = await makeCampaign(dbOf());
    // a new database's few contacts (never analyzed) when this connection first adds a number to the list
    await seedDue(dbOf(), cid, 10, 900_000);
    await dbOf().query(`insert into dnc (phone) values ('+17770000001')`);
    // then an import: 5,000 contacts
    await seedDue(dbOf(), cid, 5000);
    const blocks = await dbOf().tx(async (q) => {
      const read = async (): Promise<number> =>
        (
          await q.query<{ n: number }>(
            `select sum(pg_stat_get_xact_blocks_fetched(c.oid))::int as n from pg_class c
              where c.oid in ('contacts'::regclass, 'dnc'::regclass)
                 or c.oid in (select i.indexrelid from pg_index i where i.indrelid in ('contacts'::regclass, 'dnc'::regclass))`,
          )
        ).rows[0].n;
      const before = await read();
      // 3,000 numbers in one statement: every 5th contact's (1,000), and 2,000 on no contact
      await q.query(
        `insert into dnc (phone)
         select case when g <= 1000 then '+1555' || lpad((g * 5)::text, 7, '0') else '+1888' || lpad(g::text, 7, '0') end
           from generate_series(1, 3000) g`,
      );
      return (await read()) - before;
    });
    const r = await dbOf().query<{ status: string; n: number }>(
      `select status, count(*)::int as n from contacts where campaign_id = $1 group by 1 order by 1`,
      [cid],
    );
    expect(r.rows).toEqual([
      { status: 'dnc', n: 1000 },
      { status: 'pending', n: 4010 },
    ]);
    // the sweep: a few index pages per number added and per contact swept (or a few scans of contacts); a plan
    // kept from the one-number addition that paired every contact with every new number would read millions
    expect(blocks).toBeLessThan(3000 * 12 + 1000 * 12);
  }, 120_000);
});
