/**
 * A refused or failed AGI session is not a conversation (issue 12 item 7): the call is recorded
 * `failed` with the reason and its contact is retried by the retry policy, even though ARI reports an
 * answered call ended by normal clearing (what Asterisk does when AGI() is refused).
 */
import type { Db } from '../../src/store/db';
import { AgiServer, type Refusal } from '../../src/agi/server';
import type { FastAgiSession } from '../../src/agi/session';
import { runAgiCall } from '../../src/sim/agi-client';
import { callIdOfEnv } from '../../src/agi/refusals';
import { recordRefusal } from '../../src/campaign/refusals';
import { CampaignManager, type PlaceCall } from '../../src/campaign/manager';
import { dbTargets } from '../helpers/db';
import { makeCampaign, makeContacts, waitFor } from '../campaign/fixtures';

describe.each(dbTargets().map((t) => [t().name, t] as const))('refused AGI sessions on %s', (_name, make) => {
  const target = make();
  let db: Db;
  beforeAll(async () => {
    db = await target.open();
  });
  afterAll(async () => {
    await db?.close();
    await target.cleanup();
  });

  test('over the session cap and with a wrong secret: failed with the reason, contact retried; the accepted call completes', async () => {
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 4, callsPerSecond: 1000 });
    await makeContacts(db, cid, 4, { prefix: '+1811' });
    const m = new CampaignManager({ db, worker: 'agi-refusal', tickMs: 5, idleMs: 20 });
    const calls: PlaceCall[] = [];
    m.on('call', (c: PlaceCall) => calls.push(c));
    await m.start(cid);
    await waitFor(() => calls.length === 4, 5000, 'four calls');
    await m.pause(cid);

    const refusals: Refusal[] = [];
    const held: FastAgiSession[] = [];
    const server = new AgiServer({ host: '127.0.0.1', port: 0, maxSessions: 1, secret: 's3cret-for-test' });
    server.on('session', (s: FastAgiSession) => held.push(s)); // the one conversation holds the only slot
    server.on('refused', (r: Refusal) => {
      refusals.push(r);
      void recordRefusal(db, r);
    });
    const { port } = await server.listen();
    try {
      const agi = (c: PlaceCall, secret: string) =>
        runAgiCall({
          host: '127.0.0.1',
          port,
          script: `ai-dialer?secret=${secret}`,
          channel: `Local/${c.phone}@callees-0000000${c.id % 10};1`,
          uniqueid: `aid-${c.id}-0000abcd`, // Asterisk: the channel id ari-originate chose is the uniqueid
          variables: { CALL_ID: String(c.id) },
          persona: {},
          speed: 50,
        });
      const first = agi(calls[0], 's3cret-for-test');
      await waitFor(() => held.length === 1, 5000, 'the first session');
      await agi(calls[1], 's3cret-for-test'); // over the cap
      await agi(calls[2], 's3cret-for-test'); // over the cap
      await agi(calls[3], 'wrong'); // over the cap too, but not from our Asterisk: its call is not named
      await waitFor(() => refusals.length === 3, 5000, 'three refusals');
      expect(refusals.map((r) => [r.reason, r.callId])).toEqual([
        ['too_many_sessions', calls[1].id],
        ['too_many_sessions', calls[2].id],
        ['too_many_sessions', undefined],
      ]);
      held[0].close();
      await first;
      await waitFor(() => server.sessionCount === 0, 5000, 'the slot freed');
      const wrong = await agi(calls[3], 'wrong'); // now under the cap: the secret decides
      expect(wrong.commands).toBe(0);
      await waitFor(() => refusals.length === 4, 5000, 'the bad secret refusal');
      expect(refusals[3]).toMatchObject({ reason: 'bad_secret' });
      expect(refusals[3].callId).toBeUndefined(); // a stranger cannot get a call recorded failed
      // our Asterisk, refused for a reason of ours (the cap again): named and recorded
      const hold = agi(calls[0], 's3cret-for-test');
      await waitFor(() => held.length === 2, 5000, 'a session holding the cap again');
      await agi(calls[3], 's3cret-for-test');
      await waitFor(() => refusals.length === 5, 5000, 'the fifth refusal');
      expect(refusals[4]).toMatchObject({ reason: 'too_many_sessions', callId: calls[3].id });
      held[1].close();
      await hold;
    } finally {
      await server.close();
    }
    // ARI then reports every call answered and ended by normal clearing
    for (const c of calls) await m.handleOutcome({ id: c.id, outcome: 'completed', hangupCause: 16 });
    const rows = await db.query<{
      id: number;
      status: string;
      reason: string | null;
      contact: string;
      attempts: number;
      later: boolean;
    }>(
      `select c.id, c.status, c.reason, k.status as contact, k.attempts, k.next_attempt_at > now() + interval '20 minutes' as later
         from calls c join contacts k on k.id = c.contact_id where c.id = any($1::int[]) order by c.id`,
      [calls.map((c) => c.id)],
    );
    expect(rows.rows[0]).toMatchObject({ status: 'completed', contact: 'done' });
    for (const [i, reason] of [
      [1, 'agi_refused: too_many_sessions'],
      [2, 'agi_refused: too_many_sessions'],
      [3, 'agi_refused: too_many_sessions'],
    ] as const) {
      expect(rows.rows[i]).toMatchObject({ status: 'failed', reason, contact: 'pending', attempts: 1, later: true });
    }
    // the slot of each refused call was released by its outcome
    expect(m.inFlight).toBe(0);
    await m.close();
  });

  test('the manager alone turns a refused call into failed (the refusal noted in this process, store write lost)', async () => {
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 1, callsPerSecond: 1000 });
    await makeContacts(db, cid, 1, { prefix: '+1812' });
    const m = new CampaignManager({ db, worker: 'agi-refusal-2', tickMs: 5, idleMs: 20 });
    const calls: PlaceCall[] = [];
    m.on('call', (c: PlaceCall) => calls.push(c));
    await m.start(cid);
    await waitFor(() => calls.length === 1, 5000, 'one call');
    await m.pause(cid);
    await recordRefusal(undefined, { callId: calls[0].id, reason: 'too_many_sessions' });
    const res = await m.handleOutcome({ id: calls[0].id, outcome: 'completed' });
    expect(res).toMatchObject({ closed: true, status: 'failed', contact: { status: 'pending' } });
    await m.close();
  });

  test('callIdOfEnv: CALL_ID in the AGI URL or arguments, else the aid- uniqueid; nothing for other sessions', () => {
    expect(callIdOfEnv({ network_script: 'ai-dialer?call_id=12', uniqueid: '1.1' })).toBe(12);
    expect(callIdOfEnv({ network_script: 'ai-dialer', arg_1: '13', uniqueid: '1.1' })).toBe(13);
    expect(callIdOfEnv({ network_script: 'ai-dialer', uniqueid: 'aid-14-0a0b0c0d' })).toBe(14);
    expect(callIdOfEnv({ network_script: 'ai-dialer', uniqueid: '1732486000.6' })).toBeUndefined();
    expect(callIdOfEnv({ network_script: 'ai-dialer?call_id=1;drop', uniqueid: 'x' })).toBeUndefined();
  });
});
