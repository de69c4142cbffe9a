/**
 * What a claim reads, counted by PostgreSQL itself (issue #17): a pending contact out of attempts is passed over
 * on the due index's entry (migration 32; since migration 33 the index of the due contacts' queue,
 * contact_queue_due), so contacts out of attempts at the head of a zone cost the claims behind them no heap reads. Counted inside one transaction with pg_stat_get_xact_tuples_fetched / _returned (rows
 * read through the contacts' indexes or by a sequential scan), which needs no statistics flush and no clock.
 */
import type { Db } from '../../src/store/db';
import { claimContacts } from '../../src/store/claim';
import { dbTargets } from '../helpers/db';
import { describeWith } from '../helpers/tools';
import { makeCampaign } from '../campaign/fixtures';

const servers = dbTargets().slice(1);

describeWith(
  'PostgreSQL',
  servers.length > 0,
  'set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test',
)('claim work on postgres', () => {
  const target = servers[0]?.();
  let db: Db;
  beforeAll(async () => {
    db = await target.open({ poolSize: 2 });
  });
  afterAll(async () => {
    await db?.close();
    await target.cleanup();
  });

  test('contacts out of attempts ahead of the due ones cost no heap read per claim', async () => {
    const cid = await makeCampaign(db, { maxAttempts: 3 });
    // 200 out of attempts, due first; then 10 due ones; then 20,000 due tomorrow (a table the size of a real
    // campaign's, so the plan is the one production gets); all in the campaign's zone
    await db.query(
      `insert into contacts (campaign_id, phone, attempts, next_attempt_at)
       select $1, '+1555' || lpad(g::text, 7, '0'), case when g <= 200 then 3 else 0 end,
              now() + case when g <= 210 then interval '-2 hours' else interval '1 day' end + make_interval(secs => g)
         from generate_series(1, 20210) g`,
      [cid],
    );
    await db.query('analyze contacts');
    const { claimed, fetched } = await db.tx(async (q) => {
      const got: string[] = [];
      for (let i = 0; i < 10; i++) {
        const r = await claimContacts(q, { campaignId: cid, limit: 1, worker: 'w' });
        got.push(...r.claimed.map((c) => c.phone));
      }
      // rows read: fetched through the indexes of contacts and of the due contacts' queue, plus returned by
      // sequential scans of either table
      const f = await q.query<{ n: number }>(
        `select (select sum(pg_stat_get_xact_tuples_fetched(i.indexrelid)) from pg_index i
                  where i.indrelid in ('contacts'::regclass, 'contact_queue'::regclass))::int
                + pg_stat_get_xact_tuples_returned('contacts'::regclass)::int
                + pg_stat_get_xact_tuples_returned('contact_queue'::regclass)::int as n`,
      );
      return { claimed: got, fetched: f.rows[0].n };
    });
    expect(claimed).toEqual(Array.from({ length: 10 }, (_, i) => `+1555${String(201 + i).padStart(7, '0')}`));
    // per claim: the claimed queue row through the due index, the contact by its key, its update's and the
    // call's foreign key lookups, the queue row's delete, and (migration 34) the zone's oldest row left, its new
    // low-water mark; before migration 32 every claim also fetched the 200 contacts out of attempts (2,000 and more)
    expect(fetched).toBeLessThanOrEqual(10 * 6);
  });
});
