import type { Db } from '../../src/store/db';
import { claimContacts } from '../../src/store/claim';
import { dbTargets, describeOnDbs } from '../helpers/db';
import { makeCampaign, makeContacts, addDnc } from '../campaign/fixtures';

describe.each(dbTargets().map((t) => [t().name, t] as const))('atomic claim on %s', (_name, make) => {
  const target = make();
  let db: Db;
  beforeAll(async () => {
    db = await target.open({ poolSize: 12 });
  });
  afterAll(async () => {
    await db?.close();
    await target.cleanup();
  });

  test('8 concurrent claimers over 1,000 contacts claim each exactly once', async () => {
    const cid = await makeCampaign(db, { numbers: ['+12125550100', '+12125550101'] });
    await makeContacts(db, cid, 1000);
    const seen: number[][] = [];
    const claimer = async (w: number) => {
      const mine: number[] = [];
      for (;;) {
        const r = await claimContacts(db, { campaignId: cid, limit: 1 + (mine.length % 7), worker: `w${w}` });
        if (r.claimed.length === 0) break;
        for (const c of r.claimed) mine.push(c.contactId);
      }
      seen[w] = mine;
    };
    await Promise.all(Array.from({ length: 8 }, (_, w) => claimer(w)));
    const all = seen.flat();
    expect(all.length).toBe(1000);
    expect(new Set(all).size).toBe(1000);
    const calls = await db.query<{ n: number; d: number }>(
      `select count(*)::int as n, count(distinct contact_id)::int as d from calls where campaign_id = $1 and status = 'initiated'`,
      [cid],
    );
    expect(calls.rows[0]).toEqual({ n: 1000, d: 1000 });
    const contacts = await db.query<{ status: string; attempts: number; n: number }>(
      `select status, attempts, count(*)::int as n from contacts where campaign_id = $1 group by 1, 2`,
      [cid],
    );
    expect(contacts.rows).toEqual([{ status: 'in_call', attempts: 1, n: 1000 }]);
    if (db.kind === 'pg') {
      // several workers really took part
      expect(seen.filter((s) => s.length > 0).length).toBeGreaterThan(1);
    }
  });

  test('the claim creates the call record and carries the contact, caller ID and attempt', async () => {
    const cid = await makeCampaign(db, { numbers: ['+13125550100'] });
    await db.query(
      `insert into contacts (campaign_id, phone, name, timezone, fields) values ($1, '+13125551234', 'Ann', 'America/Chicago', '{"plan":"gold"}')`,
      [cid],
    );
    const r = await claimContacts(db, { campaignId: cid, limit: 5, worker: 'w1' });
    expect(r.claimed).toHaveLength(1);
    const c = r.claimed[0];
    expect(c).toMatchObject({
      phone: '+13125551234',
      name: 'Ann',
      timezone: 'America/Chicago',
      effectiveTimezone: 'America/Chicago',
      attempt: 1,
      callerId: '+13125550100',
      fields: { plan: 'gold' },
      amdEnabled: false,
    });
    const call = await db.query(
      'select status, attempt, caller_id, worker, contact_id, phone from calls where id = $1',
      [c.callId],
    );
    expect(call.rows[0]).toEqual({
      status: 'initiated',
      attempt: 1,
      caller_id: '+13125550100',
      worker: 'w1',
      contact_id: c.contactId,
      phone: '+13125551234',
    });
    const ct = await db.query('select status, last_call_id, claimed_by from contacts where id = $1', [c.contactId]);
    expect(ct.rows[0]).toEqual({ status: 'in_call', last_call_id: c.callId, claimed_by: 'w1' });
    expect((await claimContacts(db, { campaignId: cid, limit: 5 })).claimed).toHaveLength(0);
  });

  test('listed numbers are never claimed: swept to dnc when listed, on insert, and when they would be pending again; no caller ID or a stopped campaign claims nothing', async () => {
    const cid = await makeCampaign(db);
    await makeContacts(db, cid, 10, { prefix: '+1666' });
    await addDnc(db, '+16660000001');
    await addDnc(db, '+16660000002', cid);
    const other = await makeCampaign(db);
    await addDnc(db, '+16660000003', other); // another campaign's list does not apply
    // listed before the contact exists: closed on insert
    await db.query(`insert into dnc (phone) values ('+16660000099')`);
    await db.query(`insert into contacts (campaign_id, phone) values ($1, '+16660000099')`, [cid]);
    const st = await db.query<{ phone: string }>(
      `select phone from contacts where campaign_id = $1 and status = 'dnc' and last_outcome = 'dnc' order by phone`,
      [cid],
    );
    expect(st.rows.map((x) => x.phone)).toEqual(['+16660000001', '+16660000002', '+16660000099']);
    const r = await claimContacts(db, { campaignId: cid, limit: 100 });
    expect(r.dncSkipped).toBe(0);
    expect(r.claimed).toHaveLength(8);
    expect(r.claimed.map((c) => c.phone)).not.toContain('+16660000001');
    // listed while in a call: its retry closes it instead of queueing it again
    const inCall = r.claimed.find((c) => c.phone === '+16660000004')!;
    await db.query(`insert into dnc (phone, campaign_id) values ('+16660000004', $1)`, [cid]);
    await db.query(
      `update contacts set status = 'pending', next_attempt_at = now() - interval '1 minute' where id = $1`,
      [inCall.contactId],
    );
    const back = await db.query<{ status: string }>('select status from contacts where id = $1', [inCall.contactId]);
    expect(back.rows[0].status).toBe('dnc');
    // an entry changed to cover a queued contact: its new number, then its campaign
    await makeContacts(db, cid, 1, { prefix: '+1666', start: 10 });
    const status = async () =>
      (
        await db.query<{ status: string }>(
          `select status from contacts where campaign_id = $1 and phone = '+16660000011'`,
          [cid],
        )
      ).rows[0].status;
    await db.query(`update dnc set phone = '+16660000011' where phone = '+16660000003'`);
    expect(await status()).toBe('pending'); // still another campaign's list
    await db.query(`update dnc set campaign_id = $1 where phone = '+16660000011'`, [cid]);
    expect(await status()).toBe('dnc');

    const bare = await makeCampaign(db, { numbers: [], inactiveNumbers: ['+12125550999'] });
    await makeContacts(db, bare, 3, { prefix: '+1667' });
    expect((await claimContacts(db, { campaignId: bare, limit: 10 })).claimed).toHaveLength(0);
    const stopped = await makeCampaign(db, { status: 'paused' });
    await makeContacts(db, stopped, 3, { prefix: '+1668' });
    expect((await claimContacts(db, { campaignId: stopped, limit: 10 })).claimed).toHaveLength(0);
  });

  test('an invalid time zone is refused at insert (it could never be checked against a window)', async () => {
    const cid = await makeCampaign(db);
    await expect(
      db.query(`insert into contacts (campaign_id, phone, timezone) values ($1, '+15550001111', 'Mars/Olympus')`, [
        cid,
      ]),
    ).rejects.toThrow(/time zone/);
    await db.query(`insert into contacts (campaign_id, phone) values ($1, '+15550001111')`, [cid]);
    await expect(
      db.query(`update contacts set timezone = 'Nowhere/Land' where campaign_id = $1`, [cid]),
    ).rejects.toThrow(/time zone/);
  });
});

describeOnDbs("the caller IDs' use", { poolSize: 1 }, (dbOf) => {
  // migration 36 moved this bookkeeping out of the claim's statement: every claimed contact still counts once on
  // the number it was given, and stamps its last use
  test('every claimed contact counts once on its caller ID, at batch 1 and batch 8', async () => {
    const cid = await makeCampaign(dbOf(), { numbers: ['+12125550100', '+12125550101', '+12125550102'] });
    await makeContacts(dbOf(), cid, 20);
    const given = new Map<string, number>();
    for (const limit of [1, 1, 1, 8, 8]) {
      for (const c of (await claimContacts(dbOf(), { campaignId: cid, limit })).claimed)
        given.set(c.callerId, (given.get(c.callerId) ?? 0) + 1);
    }
    const r = await dbOf().query<{ number: string; use_count: number; used: boolean }>(
      `select number, use_count, last_used_at is not null as used from phone_numbers where campaign_id = $1 order by number`,
      [cid],
    );
    expect(r.rows).toEqual(
      ['+12125550100', '+12125550101', '+12125550102'].map((n) => ({
        number: n,
        use_count: given.get(n) ?? 0,
        used: (given.get(n) ?? 0) > 0,
      })),
    );
    expect([...given.values()].reduce((a, b) => a + b, 0)).toBe(19);
  });
});
