/** schedule_callback: a completed call whose callee asked for a callback reschedules the contact instead of closing it. */
import type { Db } from '../../src/store/db';
import { claimContacts } from '../../src/store/claim';
import { addToDnc, recordOutcome, requestCallback } from '../../src/store/campaigns';
import { dbTargets } from '../helpers/db';
import { makeCampaign, makeContacts } from './fixtures';

describe.each(dbTargets().map((t) => [t().name, t] as const))('callbacks on %s', (_name, make) => {
  const target = make();
  let db: Db;
  beforeAll(async () => {
    db = await target.open();
  });
  afterAll(async () => {
    await db.close();
    await target.cleanup();
  });

  test('completed + callback -> pending at the asked time, the attempt not counted; completed alone -> done', async () => {
    const campaignId = await makeCampaign(db, { maxAttempts: 1 });
    await makeContacts(db, campaignId, 2);
    const { claimed } = await claimContacts(db, { campaignId, limit: 2, worker: 'w' });
    expect(claimed).toHaveLength(2);
    const at = new Date(Date.now() + 3 * 3600_000);
    const when = await requestCallback(db, claimed[0].callId, at.toISOString(), 'tomorrow afternoon');
    expect(when.toISOString()).toBe(at.toISOString());
    const a = await recordOutcome(db, { callId: claimed[0].callId, outcome: 'completed' });
    const b = await recordOutcome(db, { callId: claimed[1].callId, outcome: 'completed' });
    expect(a.contact).toMatchObject({ status: 'pending', attempts: 0 });
    expect(new Date(a.contact!.nextAttemptAt!).toISOString()).toBe(at.toISOString());
    expect(b.contact).toMatchObject({ status: 'done', attempts: 1 });
    const row = await db.query<{ last_outcome: string }>('select last_outcome from contacts where id = $1', [
      claimed[0].contactId,
    ]);
    expect(row.rows[0].last_outcome).toBe('callback');
    // not due yet: nothing to claim now
    expect((await claimContacts(db, { campaignId, limit: 2, worker: 'w' })).claimed).toHaveLength(0);
  });

  test('a time in the past or unreadable falls back to 24 hours; an unknown call is an error', async () => {
    const campaignId = await makeCampaign(db);
    await makeContacts(db, campaignId, 1, { start: 100 });
    const { claimed } = await claimContacts(db, { campaignId, limit: 1, worker: 'w' });
    const when = await requestCallback(db, claimed[0].callId, 'not a date');
    expect(Math.abs(when.getTime() - (Date.now() + 24 * 3600_000))).toBeLessThan(60_000);
    await expect(requestCallback(db, 99999999, null)).rejects.toThrow('no call 99999999');
  });

  test('a callback request that arrives after the completed outcome still reschedules the contact', async () => {
    const campaignId = await makeCampaign(db);
    await makeContacts(db, campaignId, 1, { start: 200 });
    const { claimed } = await claimContacts(db, { campaignId, limit: 1, worker: 'w' });
    const done = await recordOutcome(db, { callId: claimed[0].callId, outcome: 'completed' });
    expect(done.contact).toMatchObject({ status: 'done' });
    const at = new Date(Date.now() + 2 * 3600_000);
    await requestCallback(db, claimed[0].callId, at);
    const c = await db.query<{ status: string; attempts: number; next_attempt_at: Date }>(
      'select status, attempts, next_attempt_at from contacts where id = $1',
      [claimed[0].contactId],
    );
    expect(c.rows[0]).toMatchObject({ status: 'pending', attempts: 0 });
    expect(new Date(c.rows[0].next_attempt_at).toISOString()).toBe(at.toISOString());
  });

  test('a do-not-call request that arrives after the completed outcome still closes the contact as dnc', async () => {
    const campaignId = await makeCampaign(db);
    await makeContacts(db, campaignId, 1, { start: 300 });
    const { claimed } = await claimContacts(db, { campaignId, limit: 1, worker: 'w' });
    await recordOutcome(db, { callId: claimed[0].callId, outcome: 'completed' });
    expect(await addToDnc(db, claimed[0].phone, { campaignId: null })).toBe(1);
    const c = await db.query<{ status: string }>('select status from contacts where id = $1', [claimed[0].contactId]);
    expect(c.rows[0].status).toBe('dnc');
  });
});
