import type { Db } from '../../src/store/db';
import { claimContacts } from '../../src/store/claim';
import { dbTargets } from '../helpers/db';
import { makeCampaign, makeContacts } from '../campaign/fixtures';

/** The maintained open-call counter (migration 18) against a count of the open calls. */
async function counted(db: Db, cid: number): Promise<{ used: number; open: number }> {
  const r = await db.query<{ used: number; open: number }>(
    `select (select coalesce(sum(used), 0)::int from campaign_slots where campaign_id = $1) as used,
            (select count(*)::int from calls where campaign_id = $1 and status in ('initiated','ringing','in_progress')) as open`,
    [cid],
  );
  return r.rows[0];
}

describe.each(dbTargets().map((t) => [t().name, t] as const))('claim slots on %s', (_name, make) => {
  const target = make();
  let db: Db;
  beforeAll(async () => {
    db = await target.open({ poolSize: 12 });
  });
  afterAll(async () => {
    await db?.close();
    await target.cleanup();
  });

  test('max_concurrent holds across concurrent claimers (default scope) and frees as calls end', async () => {
    const cid = await makeCampaign(db, { maxConcurrent: 5 });
    await makeContacts(db, cid, 100);
    const got = await Promise.all(
      Array.from({ length: 8 }, (_, w) => claimContacts(db, { campaignId: cid, limit: 3, worker: `w${w}` })),
    );
    const first = got.reduce((n, r) => n + r.claimed.length, 0);
    expect(first).toBeLessThanOrEqual(5);
    // whatever the interleaving, the cap is reached and never passed
    for (;;) {
      const r = await claimContacts(db, { campaignId: cid, limit: 8, worker: 'x' });
      if (!r.claimed.length) break;
    }
    expect(await counted(db, cid)).toEqual({ used: 5, open: 5 });
    const open = await db.query<{ id: number }>(
      `select id from calls where campaign_id = $1 and status = 'initiated' order by id limit 2`,
      [cid],
    );
    await db.query(`update calls set status = 'completed' where id = $1`, [open.rows[0].id]);
    await db.query(`update calls set status = 'ringing' where id = $1`, [open.rows[1].id]);
    expect(await counted(db, cid)).toEqual({ used: 4, open: 4 });
    const r = await claimContacts(db, { campaignId: cid, limit: 8, worker: 'y' });
    expect(r.claimed).toHaveLength(1);
    expect(await counted(db, cid)).toEqual({ used: 5, open: 5 });
  });

  test('open calls written outside the claim count too (insert, reopen, move, delete)', async () => {
    const cid = await makeCampaign(db, { maxConcurrent: 3 });
    const other = await makeCampaign(db, { maxConcurrent: 3 });
    await makeContacts(db, cid, 10);
    const ins = await db.query<{ id: number }>(
      `insert into calls (campaign_id, phone, status) select $1, '+1555000000' || g, 'in_progress' from generate_series(1, 2) g returning id`,
      [cid],
    );
    expect(await counted(db, cid)).toEqual({ used: 2, open: 2 });
    let r = await claimContacts(db, { campaignId: cid, limit: 5, worker: 'w' });
    expect(r.claimed).toHaveLength(1);
    await db.query(`update calls set status = 'failed' where id = $1`, [ins.rows[0].id]);
    expect(await counted(db, cid)).toEqual({ used: 2, open: 2 });
    await db.query(`update calls set campaign_id = $2 where id = $1`, [ins.rows[1].id, other]);
    expect(await counted(db, cid)).toEqual({ used: 1, open: 1 });
    expect(await counted(db, other)).toEqual({ used: 1, open: 1 });
    await db.query(`update calls set status = 'initiated' where id = $1`, [ins.rows[0].id]);
    expect(await counted(db, cid)).toEqual({ used: 2, open: 2 });
    await db.query(`delete from calls where id = $1`, [ins.rows[0].id]);
    expect(await counted(db, cid)).toEqual({ used: 1, open: 1 });
    r = await claimContacts(db, { campaignId: cid, limit: 5, worker: 'w' });
    expect(r.claimed).toHaveLength(2);
    expect(await counted(db, cid)).toEqual({ used: 3, open: 3 });
    // a lower cap claims nothing until enough calls end; a higher one claims at once
    await db.query(`update campaigns set max_concurrent = 2 where id = $1`, [cid]);
    expect((await claimContacts(db, { campaignId: cid, limit: 5, worker: 'w' })).claimed).toHaveLength(0);
    await db.query(`update campaigns set max_concurrent = 20 where id = $1`, [cid]);
    expect((await claimContacts(db, { campaignId: cid, limit: 5, worker: 'w' })).claimed).toHaveLength(5);
    expect(await counted(db, cid)).toEqual({ used: 8, open: 8 });
  });

  test('concurrent multi-row inserts of open calls never deadlock on the slot rows and stay counted', async () => {
    const cid = await makeCampaign(db, { maxConcurrent: 64 });
    await Promise.all(
      Array.from({ length: 6 }, (_, w) =>
        db.query(
          `insert into calls (campaign_id, phone, status) select $1, '+1556' || $2 || g, 'initiated' from generate_series(1, 10) g`,
          [cid, w],
        ),
      ),
    );
    expect(await counted(db, cid)).toEqual({ used: 60, open: 60 });
  });

  test('worker scope keeps no campaign cap but the counter stays exact', async () => {
    const cid = await makeCampaign(db, { maxConcurrent: 2, settings: { concurrency_scope: 'worker' } });
    await makeContacts(db, cid, 20);
    const got = await Promise.all(
      Array.from({ length: 4 }, (_, w) => claimContacts(db, { campaignId: cid, limit: 3, worker: `w${w}` })),
    );
    expect(got.reduce((n, r) => n + r.claimed.length, 0)).toBe(12);
    expect(await counted(db, cid)).toEqual({ used: 12, open: 12 });
  });

  test('a claim says how much room the slots gave it: none when full, the limit in worker scope, none when not running', async () => {
    const cid = await makeCampaign(db, { maxConcurrent: 3 });
    await makeContacts(db, cid, 4);
    const first = await claimContacts(db, { campaignId: cid, limit: 2 });
    expect([first.claimed.length, first.room]).toEqual([2, 2]);
    const second = await claimContacts(db, { campaignId: cid, limit: 5 });
    expect([second.claimed.length, second.room]).toEqual([1, 1]); // one slot left of three
    const full = await claimContacts(db, { campaignId: cid, limit: 5 });
    expect([full.claimed.length, full.room]).toEqual([0, 0]); // a contact is due, every slot is taken
    await db.query(`update calls set status = 'completed' where id = $1`, [first.claimed[0].callId]);
    const last = await claimContacts(db, { campaignId: cid, limit: 5 });
    expect([last.claimed.length, last.room]).toEqual([1, 1]);
    await db.query(`update calls set status = 'completed' where id = $1`, [last.claimed[0].callId]);
    const none = await claimContacts(db, { campaignId: cid, limit: 5 });
    expect([none.claimed.length, none.room]).toEqual([0, 1]); // room, and nothing left due
    const worker = await makeCampaign(db, { maxConcurrent: 1, settings: { concurrency_scope: 'worker' } });
    const w = await claimContacts(db, { campaignId: worker, limit: 4 });
    expect([w.claimed.length, w.room]).toEqual([0, 4]); // the worker's own cap is its limit
    // max_concurrent lowered below the open calls (counted beyond their slots' share): no room
    const lowered = await makeCampaign(db, { maxConcurrent: 3 });
    await makeContacts(db, lowered, 4, { prefix: '+1723' });
    expect((await claimContacts(db, { campaignId: lowered, limit: 2 })).claimed).toHaveLength(2);
    await db.query(`update campaigns set max_concurrent = 1 where id = $1`, [lowered]);
    const over = await claimContacts(db, { campaignId: lowered, limit: 5 });
    expect([over.claimed.length, over.room]).toEqual([0, 0]);
    await db.query(`update campaigns set status = 'paused' where id = $1`, [cid]);
    expect((await claimContacts(db, { campaignId: cid, limit: 5 })).room).toBe(0);
  });

  test('contacts out of attempts at the head of the queue never block the ones behind them', async () => {
    const cid = await makeCampaign(db, { maxAttempts: 2 });
    await makeContacts(db, cid, 30);
    // the 20 oldest are out of attempts (e.g. max_attempts lowered) but still pending
    await db.query(
      `update contacts set attempts = 2, next_attempt_at = now() - interval '1 day' where id in
         (select id from contacts where campaign_id = $1 order by id limit 20)`,
      [cid],
    );
    const r = await claimContacts(db, { campaignId: cid, limit: 1, worker: 'w' });
    expect(r.claimed).toHaveLength(1);
    expect(r.claimed[0].attempt).toBe(1);
  });
});
