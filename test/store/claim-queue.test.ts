/**
 * The due contacts' queue (migration 33): contact_queue holds exactly the `pending` contacts, with their
 * campaign, zone key, due time and attempts, whoever writes the contact; a database upgraded from version 32 with
 * contacts in every state gets the same queue; and the claim's update of the contact is HOT (no index entry
 * written on contacts), counted by PostgreSQL itself inside the transaction.
 */
import type { Db } from '../../src/store/db';
import { claimContacts } from '../../src/store/claim';
import { runMigrations } from '../../src/store/migrate';
import { migrations } from '../../src/store/migrations';
import { dbTargets } from '../helpers/db';
import { addDnc, makeCampaign, makeContacts } from '../campaign/fixtures';

/** Rows in the queue and not pending, or pending and not in the queue (with the same keys): both lists empty. */
async function drift(db: Db): Promise<{ extra: number; missing: number; pending: number }> {
  const r = await db.query<{ extra: number; missing: number; pending: number }>(
    `with p as (select c.campaign_id, coalesce(c.timezone, '') as zone, c.next_attempt_at, c.id as contact_id, c.attempts
                  from contacts c where c.status = 'pending'),
          q as (select campaign_id, zone, next_attempt_at, contact_id, attempts from contact_queue)
     select (select count(*) from (select * from q except all select * from p) x)::int as extra,
            (select count(*) from (select * from p except all select * from q) x)::int as missing,
            (select count(*) from p)::int as pending`,
  );
  return r.rows[0];
}

describe.each(dbTargets().map((t) => [t().name, t] as const))('contact queue on %s', (_name, make) => {
  const target = make();
  let db: Db;
  beforeAll(async () => {
    db = await target.open({ poolSize: 4 });
  });
  afterAll(async () => {
    await db?.close();
    await target.cleanup();
  });

  test('follows every writer: import, listing, claim, retry, zone and due changes, delete, truncate', async () => {
    const cid = await makeCampaign(db, { maxAttempts: 3 });
    await addDnc(db, '+15550000003'); // listed before the import: never pending
    await makeContacts(db, cid, 40);
    await makeContacts(db, cid, 10, { tz: 'Europe/Berlin', start: 100 });
    expect(await drift(db)).toEqual({ extra: 0, missing: 0, pending: 49 });
    await addDnc(db, '+15550000004', cid); // listed after: swept off the queue
    expect(await drift(db)).toEqual({ extra: 0, missing: 0, pending: 48 });
    const r = await claimContacts(db, { campaignId: cid, limit: 5, worker: 'w' });
    expect(r.claimed).toHaveLength(5);
    expect(await drift(db)).toEqual({ extra: 0, missing: 0, pending: 43 });
    // a retry: the contact pending again, due later, with one attempt used
    const ids = r.claimed.map((c) => c.contactId);
    await db.query(`update calls set status = 'completed', ended_at = now() where contact_id = any ($1::int[])`, [ids]);
    await db.query(
      `update contacts set status = 'pending', next_attempt_at = now() + interval '1 hour' where id = any ($1::int[])`,
      [ids.slice(0, 3)],
    );
    await db.query(`update contacts set status = 'done' where id = any ($1::int[])`, [ids.slice(3)]);
    expect(await drift(db)).toEqual({ extra: 0, missing: 0, pending: 46 });
    await db.query(
      `update contacts set timezone = 'Asia/Tokyo' where campaign_id = $1 and timezone is null and id % 2 = 0`,
      [cid],
    );
    await db.query(`update contacts set next_attempt_at = now() - interval '1 day', attempts = 1 where id % 3 = 0`);
    await db.query(`delete from contacts where id % 5 = 0`);
    const d = await drift(db);
    expect({ extra: d.extra, missing: d.missing }).toEqual({ extra: 0, missing: 0 });
    expect(d.pending).toBeGreaterThan(30);
    // the queue only indexes: a claim still takes exactly the due pending contacts
    for (;;) if (!(await claimContacts(db, { campaignId: cid, limit: 8, worker: 'w' })).claimed.length) break;
    const left = await db.query<{ n: number }>(
      `select count(*)::int as n from contacts where status = 'pending' and next_attempt_at <= now() and attempts < 3`,
    );
    expect(left.rows[0].n).toBe(0);
    expect((await drift(db)).extra).toBe(0);
    // a campaign deleted: its contacts go by the cascade, one statement, and their queue rows with them
    const other = await makeCampaign(db, { name: 'gone' });
    await makeContacts(db, other, 30, { start: 9000 });
    await db.query('delete from campaigns where id = $1', [other]);
    expect((await drift(db)).extra).toBe(0);
    await db.query('truncate contacts cascade');
    expect(await drift(db)).toEqual({ extra: 0, missing: 0, pending: 0 });
  });

  test("the claim's update of the contact is HOT: no index entry written on contacts", async () => {
    const cid = await makeCampaign(db);
    await makeContacts(db, cid, 200, { start: 5000 });
    const hot = await db.tx(async (q) => {
      // counted before and after the claim: the backend's not yet flushed counters also hold the earlier
      // statements of this pooled connection (PostgreSQL 15 flushes them at most once a second)
      const stats = async () =>
        (
          await q.query<{ upd: number; hot: number }>(
            `select pg_stat_get_xact_tuples_updated('contacts'::regclass)::int as upd,
                    pg_stat_get_xact_tuples_hot_updated('contacts'::regclass)::int as hot`,
          )
        ).rows[0];
      const s0 = await stats();
      const got = await claimContacts(q, { campaignId: cid, limit: 8, worker: 'w' });
      const s1 = await stats();
      return { claimed: got.claimed.length, upd: s1.upd - s0.upd, hot: s1.hot - s0.hot };
    });
    expect(hot).toEqual({ claimed: 8, upd: 8, hot: 8 });
  });
});

describe.each(dbTargets().map((t) => [t().name, t] as const))('contact queue upgrade on %s', (_name, make) => {
  const target = make();
  afterAll(() => target.cleanup());

  test('a database at version 32 with contacts in every state gets exactly its pending contacts queued, then claims', async () => {
    const db = await target.open({ migrate: false });
    try {
      await runMigrations(
        db,
        migrations.filter((m) => m.version <= 32),
      );
      const cid = await makeCampaign(db, { maxAttempts: 3 });
      await makeContacts(db, cid, 30);
      await makeContacts(db, cid, 10, { tz: 'Europe/Berlin', start: 100 });
      await db.query(`update contacts set status = 'done' where id % 7 = 0`);
      await db.query(`update contacts set next_attempt_at = now() + interval '1 day' where id % 5 = 0`);
      await db.query(`update contacts set attempts = 3 where id % 11 = 0`);
      await addDnc(db, '+15550000002');
      // the claim of that version (its own output columns: claimContacts reads the newest ones)
      const before = await db.query<{ o_claimed: unknown[] | string }>(
        `select o_claimed from claim_contacts($1::int, 3, null, 'old', 5)`,
        [cid],
      );
      const old = before.rows[0].o_claimed;
      expect((typeof old === 'string' ? (JSON.parse(old) as unknown[]) : old).length).toBe(3);
      const up = await runMigrations(db);
      expect(up.applied).toEqual(migrations.filter((m) => m.version > 32).map((m) => m.version));
      const d = await drift(db);
      expect({ extra: d.extra, missing: d.missing }).toEqual({ extra: 0, missing: 0 });
      expect(d.pending).toBeGreaterThan(20);
      const due = await db.query<{ n: number }>(
        `select count(*)::int as n from contacts where status = 'pending' and next_attempt_at <= now() and attempts < 3`,
      );
      let claimed = 0;
      for (;;) {
        const r = await claimContacts(db, { campaignId: cid, limit: 4, worker: 'new' });
        if (!r.claimed.length) break;
        claimed += r.claimed.length;
      }
      expect(claimed).toBe(due.rows[0].n);
      const calls = await db.query<{ n: number; d: number }>(
        `select count(*)::int as n, count(distinct contact_id)::int as d from calls where campaign_id = $1`,
        [cid],
      );
      expect(calls.rows[0]).toEqual({ n: claimed + 3, d: claimed + 3 });
    } finally {
      await db.close();
    }
  });
});
