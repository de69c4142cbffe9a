/**
 * Outcome `machine` (issue 15 item 3): its own call status, its own retry-policy entry, counted in the
 * campaign's progress; and the campaign's AMD / recording settings on every call placed.
 */
import type { Db } from '../../src/store/db';
import { CampaignManager, type PlaceCall } from '../../src/campaign/manager';
import { claimContacts } from '../../src/store/claim';
import { campaignProgress, recordOutcome } from '../../src/store/campaigns';
import { amdArgs, AMD_DEFAULTS, parseAmdSettings } from '../../src/campaign/call-settings';
import { dbTargets } from '../helpers/db';
import { makeCampaign, makeContacts, waitFor } from './fixtures';

describe.each(dbTargets())('outcome machine on db target %#', (mk) => {
  const target = mk();
  let db: Db;
  beforeAll(async () => {
    db = await target.open();
  });
  afterAll(async () => {
    await db.close();
    await target.cleanup();
  });

  test('retried after retry_policy.machine (default 4 h), closed as failed at max attempts, counted in progress', async () => {
    const cid = await makeCampaign(db, { maxAttempts: 2, retryPolicy: { busy: 600, machine: 7200 } });
    await makeContacts(db, cid, 2, { prefix: '+1704' });
    const now = new Date('2027-06-15T15:00:00Z');
    const [c1, c2] = (await claimContacts(db, { campaignId: cid, limit: 2, now })).claimed;
    const r1 = await recordOutcome(db, { callId: c1.callId, outcome: 'machine', now });
    expect(r1).toMatchObject({ closed: true, status: 'machine', contact: { status: 'pending', attempts: 1 } });
    expect(r1.contact!.nextAttemptAt!.toISOString()).toBe('2027-06-15T17:00:00.000Z');
    const row = await db.query('select status, outcome from calls where id = $1', [c1.callId]);
    expect(row.rows[0]).toEqual({ status: 'machine', outcome: 'machine' });
    // the ARI side's "completed" a moment later changes nothing
    expect((await recordOutcome(db, { callId: c1.callId, outcome: 'completed', now })).closed).toBe(false);
    // a campaign without a machine entry: the default 4 hours
    const cid2 = await makeCampaign(db, { retryPolicy: { busy: 600 } });
    await makeContacts(db, cid2, 1, { prefix: '+1705' });
    const [d1] = (await claimContacts(db, { campaignId: cid2, limit: 1, now })).claimed;
    const rd = await recordOutcome(db, { callId: d1.callId, outcome: 'machine', now });
    expect(rd.contact!.nextAttemptAt!.toISOString()).toBe('2027-06-15T19:00:00.000Z');

    // progress counts contacts (each in one bucket): one waits for its retry after a machine, one is dialing
    const p = await campaignProgress(db, cid);
    expect(p).toMatchObject({ retrying: 1, machine: 0, busy: 0, active: 0, dialing: 1 });
    await recordOutcome(db, { callId: c2.callId, outcome: 'machine', now: new Date('2027-06-15T16:00:00Z') });
    const again = (await claimContacts(db, { campaignId: cid, limit: 5, now: new Date('2027-06-15T17:00:00Z') }))
      .claimed;
    expect(again.map((c) => c.contactId)).toEqual([c1.contactId]);
    const last = await recordOutcome(db, { callId: again[0].callId, outcome: 'machine' });
    expect(last.contact).toMatchObject({ status: 'failed', attempts: 2 });
    // c1 closed after its last attempt reached a machine; c2 waits for its retry
    expect(await campaignProgress(db, cid)).toMatchObject({ machine: 1, retrying: 1, failed: 0, total: 2 });
  });

  test("every call placed carries the campaign's AMD parameters and recording choice", async () => {
    const cid = await makeCampaign(db, {
      settings: { amd: { maxWords: 7, greetingMs: 2500 }, recording: { enabled: true, retentionDays: 7 } },
    });
    await db.query('update campaigns set amd_enabled = true where id = $1', [cid]);
    await makeContacts(db, cid, 1, { prefix: '+1706' });
    const plain = await makeCampaign(db, { settings: { amd: 'nonsense' } });
    await makeContacts(db, plain, 1, { prefix: '+1707' });
    const m = new CampaignManager({
      db,
      worker: 'w-machine',
      tickMs: 5,
      idleMs: 20,
      progressIntervalMs: 50,
      settingsRefreshMs: 100,
    });
    const placed: PlaceCall[] = [];
    m.on('call', (c: PlaceCall) => placed.push(c));
    try {
      await m.start(cid);
      await m.start(plain);
      await waitFor(() => placed.length >= 2 || undefined, 10_000, 'two calls placed');
    } finally {
      await m.close();
    }
    const a = placed.find((c) => c.campaignId === cid)!;
    expect(a).toMatchObject({ amdEnabled: true, record: true });
    expect(a.amdParams).toBe(amdArgs({ ...AMD_DEFAULTS, maxWords: 7, greetingMs: 2500 }));
    expect(a.amdParams).toBe('3500,2500,1000,5000,120,50,7,256,5000');
    // AMD off, a bad stored setting, no recording: nothing extra
    const b = placed.find((c) => c.campaignId === plain)!;
    expect(b.amdEnabled).toBe(false);
    expect(b.amdParams).toBeUndefined();
    expect(b.record).toBeUndefined();
    expect(() => parseAmdSettings({ maxWords: 0 })).toThrow(/maxWords must be an integer from 1 to 20/);
    expect(() => parseAmdSettings({ totalAnalysisMs: 1500, greetingMs: 2000 })).toThrow(/longer than/);
    expect(() => parseAmdSettings({ drop: 1 })).toThrow(/not an AMD parameter/);
  });
});
