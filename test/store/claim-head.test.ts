/**
 * The due contacts' queue head (migration 34): a claim's zone scan starts at the zone's low-water mark, so the
 * entries earlier claims left at the head of contact_queue_due (deleted queue rows, contacts out of attempts) are
 * never read again: the index pages one claim reads stay flat however many claims came before, on one zone.
 * Counted by PostgreSQL itself (pg_stat_get_xact_blocks_fetched of the index inside the claim's transaction: no
 * clock, no statistics flush; read before and after the claim). And the mark never hides a contact: rows entering the queue below it (import,
 * retry, a raised max_attempts) and a claim rolled back while another raised the mark are claimed first.
 */
import type { Db, Queryable } from '../../src/store/db';
import { claimContacts } from '../../src/store/claim';
import { dbTargets } from '../helpers/db';
import { makeCampaign } from '../campaign/fixtures';

/** `n` contacts of the campaign's zone, due one second apart from `from` seconds ago; every 10th out of attempts. */
async function seedDue(db: Db, cid: number, n: number, from: number, start = 0): Promise<void> {
  await db.query(
    `insert into contacts (campaign_id, phone, attempts, next_attempt_at)
     select $1, '+1555' || lpad((g + $4)::text, 7, '0'), case when g % 10 = 0 then 3 else 0 end,
            now() - make_interval(secs => $3 - g)
       from generate_series(1, $2::int) g`,
    [cid, n, from, start],
  );
}

const phones = (r: { claimed: Array<{ phone: string }> }): string[] => r.claimed.map((c) => c.phone);

describe.each(dbTargets().map((t) => [t().name, t] as const))('claim queue head on %s', (name, make) => {
  const target = make();
  let db: Db;
  beforeAll(async () => {
    db = await target.open({ poolSize: 4 });
  });
  afterAll(async () => {
    await db?.close();
    await target.cleanup();
  });

  test('the pages of the due index a claim reads stay flat after thousands of claims on one zone', async () => {
    const cid = await makeCampaign(db, { maxAttempts: 3 });
    await seedDue(db, cid, 5000, 100_000);
    await db.query('analyze contacts');
    await db.query('analyze contact_queue');
    /**
     * index pages of contact_queue_due 8 claims of one contact each read (their scans, their deletes, and one
     * raise of the mark: a claim raises it when its call id is a multiple of 8)
     */
    const claim = async (): Promise<number> =>
      db.tx(async (q: Queryable) => {
        // read before and after (PGlite's single process keeps counting across transactions)
        const read = async (): Promise<number> =>
          (
            await q.query<{ n: number }>(
              `select pg_stat_get_xact_blocks_fetched('contact_queue_due'::regclass)::int as n`,
            )
          ).rows[0].n;
        const before = await read();
        const r = await claimContacts(q, { campaignId: cid, limit: 1, worker: 'w' });
        expect(r.claimed).toHaveLength(1);
        return (await read()) - before;
      });
    const pages = async (): Promise<number> => {
      let n = 0;
      for (let i = 0; i < 8; i++) n += await claim();
      return n;
    };
    for (let i = 0; i < 10; i++) await claimContacts(db, { campaignId: cid, limit: 5, worker: 'w' });
    const early = await pages();
    expect(early).toBeGreaterThan(0); // it counts
    // 3,000 more claimed, one batch of 5 at a time, each committed: 3,000 dead entries and ~330 contacts out of
    // attempts now lie at the zone's head (about 40 leaf pages; version 33 read them all in every claim)
    for (let i = 0; i < 600; i++) await claimContacts(db, { campaignId: cid, limit: 5, worker: 'w' });
    const late = await pages();
    // a page or two either way: where the mark and the next live entry fall against leaf boundaries (measured 34-40
    // early, 40 late); version 33's scan, without the mark: 42 early, 170 late
    expect(late).toBeLessThanOrEqual(early + 12);
  });

  test('rows entering the queue below the mark are claimed first: a retry, an import, a raised max_attempts', async () => {
    const cid = await makeCampaign(db, { maxAttempts: 3 });
    await seedDue(db, cid, 100, 10_000, 1000);
    const first = await claimContacts(db, { campaignId: cid, limit: 20, worker: 'w' });
    expect(first.claimed).toHaveLength(20);
    // a retry due before every row left (the mark is past it): claimed next
    const retry = first.claimed[0];
    await db.query(`update calls set status = 'completed', ended_at = now() where id = $1`, [retry.callId]);
    await db.query(`update contacts set status = 'pending', next_attempt_at = now() - interval '1 day' where id = $1`, [
      retry.contactId,
    ]);
    expect(phones(await claimContacts(db, { campaignId: cid, limit: 1, worker: 'w' }))).toEqual([retry.phone]);
    // an import due before every row left: claimed next
    await db.query(
      `insert into contacts (campaign_id, phone, next_attempt_at) values ($1, '+15559999999', now() - interval '2 days')`,
      [cid],
    );
    expect(phones(await claimContacts(db, { campaignId: cid, limit: 1, worker: 'w' }))).toEqual(['+15559999999']);
    // every due contact claimed: the ones out of attempts (every 10th) are left, below the mark
    while ((await claimContacts(db, { campaignId: cid, limit: 50, worker: 'w' })).claimed.length);
    expect((await claimContacts(db, { campaignId: cid, limit: 1, worker: 'w' })).claimed).toHaveLength(0);
    // max_attempts raised: they are due again, oldest first
    await db.query('update campaigns set max_attempts = 4 where id = $1', [cid]);
    const again = phones(await claimContacts(db, { campaignId: cid, limit: 50, worker: 'w' }));
    expect(again).toEqual(Array.from({ length: 10 }, (_, i) => `+1555${String(1000 + 10 * (i + 1)).padStart(7, '0')}`));
  });

  test('a claim rolled back gives its contacts back at the head', async () => {
    const cid = await makeCampaign(db, { maxAttempts: 3 });
    await seedDue(db, cid, 50, 10_000, 2000);
    await claimContacts(db, { campaignId: cid, limit: 3, worker: 'w' });
    let taken: string[] = [];
    await expect(
      db.tx(async (q) => {
        // 8 in one statement: consecutive call ids, one a multiple of 8, so this claim raises the mark
        taken = phones(await claimContacts(q, { campaignId: cid, limit: 8, worker: 'w' }));
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(taken).toHaveLength(8);
    expect(phones(await claimContacts(db, { campaignId: cid, limit: 8, worker: 'w' }))).toEqual(taken);
  });

  // two transactions at once: PostgreSQL only (PGlite runs one at a time)
  (name === 'postgres' ? test : test.skip)(
    'a claim raising the mark past rows another transaction removes and then rolls back, or while a retry is in flight: nothing hidden',
    async () => {
      const cid = await makeCampaign(db, { maxAttempts: 3 });
      await seedDue(db, cid, 60, 10_000, 3000);
      await claimContacts(db, { campaignId: cid, limit: 2, worker: 'c' });
      // A takes the 5 oldest off the queue (closed by hand, uncommitted) while B claims past them and commits,
      // raising the mark; A rolls back: they are pending again and claimed first
      const head = await db.query<{ id: number; phone: string }>(
        `select c.id, c.phone from contact_queue q join contacts c on c.id = q.contact_id
          where q.campaign_id = $1 and q.attempts < 3 order by q.next_attempt_at limit 5`,
        [cid],
      );
      const held = head.rows.map((r) => r.phone);
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let ready!: () => void;
      const started = new Promise<void>((r) => (ready = r));
      const a = db
        .tx(async (q) => {
          await q.query(`update contacts set status = 'done' where id = any ($1::int[])`, [head.rows.map((r) => r.id)]);
          ready();
          await gate;
          throw new Error('rolled back');
        })
        .catch((e: Error) => e.message);
      await started;
      // 8 in one statement: one call id a multiple of 8, so B raises the mark
      const b = phones(await claimContacts(db, { campaignId: cid, limit: 8, worker: 'b' }));
      expect(b).toHaveLength(8);
      expect(b.some((p) => held.includes(p))).toBe(false);
      release();
      expect(await a).toBe('rolled back');
      expect(phones(await claimContacts(db, { campaignId: cid, limit: 5, worker: 'c' }))).toEqual(held);
      // a retry in flight (its transaction open) due before everything while a claim runs: claimed once committed
      const done = await claimContacts(db, { campaignId: cid, limit: 1, worker: 'c' });
      await db.query(`update calls set status = 'completed', ended_at = now() where id = $1`, [done.claimed[0].callId]);
      let commit!: () => void;
      const go = new Promise<void>((r) => (commit = r));
      let queued!: () => void;
      const inFlight = new Promise<void>((r) => (queued = r));
      const retry = db.tx(async (q) => {
        await q.query(
          `update contacts set status = 'pending', next_attempt_at = now() - interval '1 day' where id = $1`,
          [done.claimed[0].contactId],
        );
        queued();
        await go;
      });
      await inFlight;
      expect((await claimContacts(db, { campaignId: cid, limit: 8, worker: 'c' })).claimed).toHaveLength(8);
      commit();
      await retry;
      expect(phones(await claimContacts(db, { campaignId: cid, limit: 1, worker: 'c' }))).toEqual([
        done.claimed[0].phone,
      ]);
    },
  );
});
