/**
 * A claim looks the calls' id sequence up once, not once per claimed contact (migration 67). Before, each claimed
 * contact's call id was nextval(pg_get_serial_sequence('calls', 'id')): a STABLE function PostgreSQL runs for
 * every row, each run a scan of pg_depend for the column's sequence. Counted by PostgreSQL itself inside the
 * claim's transaction (pg_stat_get_xact_numscans of pg_depend's reference index: no clock, no statistics flush);
 * the call ids still come from the calls' own sequence, one per contact, in the batch's order.
 */
import type { Db, Queryable } from '../../src/store/db';
import { claimContacts } from '../../src/store/claim';
import { dbTargets } from '../helpers/db';
import { makeCampaign } from '../campaign/fixtures';

describe.each(dbTargets().map((t) => [t().name, t] as const))('claim call ids on %s', (name, make) => {
  const target = make();
  let db: Db;
  beforeAll(async () => {
    db = await target.open({ poolSize: 2 });
  });
  afterAll(async () => {
    await db?.close();
    await target.cleanup();
  });

  test('a claim of 8 scans pg_depend once, and its call ids are the sequence values it took', async () => {
    const cid = await makeCampaign(db, {});
    await db.query(
      `insert into contacts (campaign_id, phone, next_attempt_at)
       select $1, '+1555' || lpad(g::text, 7, '0'), now() - make_interval(secs => 100 - g) from generate_series(1, 40) g`,
      [cid],
    );
    await claimContacts(db, { campaignId: cid, limit: 8, worker: 'w' }); // the function compiled, its plans cached
    const { scans, ids, last } = await db.tx(async (q: Queryable) => {
      // read before and after (PGlite's single process keeps counting across transactions)
      const read = async (): Promise<number> =>
        (
          await q.query<{ n: number }>(
            `select pg_stat_get_xact_numscans('pg_depend_reference_index'::regclass)::int as n`,
          )
        ).rows[0].n;
      const before = await read();
      const r = await claimContacts(q, { campaignId: cid, limit: 8, worker: 'w' });
      const after = await read();
      const seq = await q.query<{ v: string }>(`select currval(pg_get_serial_sequence('calls', 'id'))::text as v`);
      return { scans: after - before, ids: r.claimed.map((c) => c.callId), last: Number(seq.rows[0].v) };
    });
    expect(ids).toHaveLength(8);
    // one lookup per claim; version 66 scanned once per claimed contact (8 here)
    expect(scans).toBe(1);
    // the calls' own sequence, one value per contact
    expect([...ids].sort((a, b) => a - b)).toEqual(Array.from({ length: 8 }, (_, i) => last - 7 + i));
    const calls = await db.query<{ n: number }>(
      `select count(*)::int as n from calls where id = any ($1::bigint[]) and campaign_id = $2`,
      [ids, cid],
    );
    expect(calls.rows[0].n).toBe(8);
  });
});
