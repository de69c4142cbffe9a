/**
 * Campaign leases and reconciliation against Asterisk (issue 12 items 1 and 2): a running campaign is
 * picked up without anyone pressing Start, a dead owner's campaign is taken over once its lease
 * expires, and the calls it left open are closed only after Asterisk (the simulator) confirms their
 * channels are gone; a contact is never dialed while a channel for it may still be up.
 */
import type { Db } from '../../src/store/db';
import { CampaignManager, type PlaceCall } from '../../src/campaign/manager';
import { ariView, callIdOfChannel, type AsteriskView } from '../../src/campaign/reconcile';
import { claimContacts } from '../../src/store/claim';
import { leaseInfo } from '../../src/store/leases';
import { AriConnection } from '../../src/ari/client';
import { startSimulator, type SimulatorHandle } from '../../src/sim/index';
import { dbTargets } from '../helpers/db';
import { makeCampaign, makeContacts, waitFor } from './fixtures';

const fast = { tickMs: 5, idleMs: 20, progressIntervalMs: 50, settingsRefreshMs: 100 };
// short for the test, with room for a loaded machine (heartbeats every TTL / 3)
const TTL = 2000;

describe.each(dbTargets().map((t) => [t().name, t] as const))('campaign leases on %s', (_name, make) => {
  const target = make();
  let db: Db;
  let db2: Db;
  let sim: SimulatorHandle;
  let conn: AriConnection;
  const managers: CampaignManager[] = [];
  const manager = (o: Partial<ConstructorParameters<typeof CampaignManager>[0]> = {}) => {
    const m = new CampaignManager({ db, worker: `w${managers.length}`, leaseTtlMs: TTL, pickupMs: 100, ...fast, ...o });
    managers.push(m);
    return m;
  };
  const simChannels = () => sim.channels() as unknown as Array<{ id: string; state: string }>;

  beforeAll(async () => {
    db = await target.open();
    db2 = db.kind === 'pg' ? await target.open() : db;
    sim = await startSimulator({
      port: 0,
      app: 'lease-test',
      defaultPersona: () => ({ dial: { behaviour: 'answer', ringMs: 20 } }),
    });
    conn = new AriConnection({ url: sim.url, username: sim.username, password: sim.password, app: 'lease-test' });
    await conn.start();
  });
  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close()));
  });
  afterAll(async () => {
    await conn?.close();
    await sim?.close();
    if (db2 && db2 !== db) await db2.close();
    await db?.close();
    await target.cleanup();
  });

  /** What ari-originate does for a claimed call: a channel `aid-<id>-<hex>` carrying CALL_ID. */
  const originate = (c: PlaceCall) =>
    conn.originate({
      endpoint: `Local/${c.phone}@callees`,
      app: 'lease-test',
      channelId: `aid-${c.id}-0000abcd`,
      variables: { CALL_ID: String(c.id), CAMPAIGN_ID: String(c.campaignId) },
    });

  test('a running campaign is picked up on start without Start pressed; API truth: stalled, then running with owner and heartbeat', async () => {
    const cid = await makeCampaign(db, { status: 'running', maxConcurrent: 2, callsPerSecond: 1000 });
    await makeContacts(db, cid, 6, { prefix: '+1801' });
    expect((await leaseInfo(db, cid, 'running', TTL)).state).toBe('stalled');
    const m = manager({ worker: 'runtime-p', autoPickup: true });
    const calls: PlaceCall[] = [];
    m.on('call', (c: PlaceCall) => {
      setImmediate(() => void m.handleOutcome({ id: c.id, outcome: 'completed' }));
      if (c.campaignId === cid) calls.push(c);
    });
    await waitFor(() => calls.length >= 1, 10000, 'the first call without Start');
    const st = await m.status(cid);
    expect(st.owner).toBe('runtime-p');
    expect(st.heartbeatAgeMs).toBeLessThan(TTL);
    const info = await leaseInfo(db, cid, 'running', TTL);
    expect(info).toMatchObject({ state: 'running', owner: 'runtime-p' });
    await waitFor(
      async () =>
        (await db.query<{ status: string }>('select status from campaigns where id = $1', [cid])).rows[0].status ===
        'completed',
      15000,
      'completed',
    );
    expect(calls).toHaveLength(6);
    // a completed campaign holds no lease
    await waitFor(async () => !(await leaseInfo(db, cid, 'completed', TTL)).owners.length, 5000, 'lease released');
  });

  test('take-over after the owner stops heartbeating: its orphan channels are hung up, calls closed with the outcome, contacts not redialed while up', async () => {
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 3, callsPerSecond: 1000 });
    await makeContacts(db, cid, 12, { prefix: '+1802' });
    const a = manager({ worker: 'runtime-a' });
    const aCalls: PlaceCall[] = [];
    a.on('call', (c: PlaceCall) => {
      aCalls.push(c);
      void originate(c);
    });
    // b is up all along, but does not take a campaign someone holds
    const b = manager({ worker: 'runtime-b', db: db2, autoPickup: true, asterisk: ariView(async () => conn) });
    const bCalls: Array<PlaceCall & { at: number }> = [];
    b.on('call', (c: PlaceCall) => {
      setTimeout(() => void b.handleOutcome({ id: c.id, outcome: 'completed' }), 5);
      if (c.campaignId === cid) bCalls.push({ ...c, at: Date.now() });
    });
    await a.start(cid);
    await waitFor(() => aCalls.length === 3, 5000, 'three calls of runtime a');
    await waitFor(() => simChannels().filter((c) => c.state === 'Up').length >= 3, 5000, 'three answered channels');
    await new Promise((r) => setTimeout(r, TTL + 300)); // a is alive: b keeps off
    expect(bCalls).toHaveLength(0);

    // runtime a dies: no heartbeat, no clean-up, its channels stay up in Stasis with nobody driving them
    const diedAt = Date.now();
    await a.close({ keepLeases: true });
    await waitFor(() => bCalls.length > 0, 15000, 'runtime b takes over and dials');
    // not before the lease expired: its last heartbeat was at most TTL / 3 before the death
    expect(bCalls[0].at - diedAt).toBeGreaterThanOrEqual((TTL * 2) / 3 - 100);

    // the orphans were hung up before their calls were closed; no channel of theirs is left
    expect(simChannels().filter((c) => aCalls.some((x) => c.id.startsWith(`aid-${x.id}-`)))).toEqual([]);
    const rows = await db.query<{ id: number; status: string; outcome: string; reason: string }>(
      'select id, status, outcome, reason from calls where id = any($1::int[]) order by id',
      [aCalls.map((c) => c.id)],
    );
    expect(rows.rows).toHaveLength(3);
    for (const r of rows.rows) {
      expect(r.status).toBe('failed'); // answered, no turn stored: retried by the policy
      expect(r.reason).toMatch(/still up .*hung up/);
    }
    // none of a's contacts was dialed again (rescheduled by the retry policy, not redialed while up)
    const orphanContacts = new Set(aCalls.map((c) => c.contactId));
    expect(bCalls.filter((c) => orphanContacts.has(c.contactId))).toEqual([]);
    const back = await db.query<{ status: string }>('select status from contacts where id = any($1::int[])', [
      [...orphanContacts],
    ]);
    expect(back.rows.every((r) => r.status === 'pending')).toBe(true);
    await waitFor(() => bCalls.length === 9, 15000, 'b dials the other nine');
    const overlap = await db.query<{ n: number }>(
      `select count(*)::int as n from calls x join calls y on x.contact_id = y.contact_id and x.id < y.id
        where x.campaign_id = $1 and x.created_at < coalesce(y.ended_at, now()) and y.created_at < coalesce(x.ended_at, now())`,
      [cid],
    );
    expect(overlap.rows[0].n).toBe(0);
    expect((await b.status(cid)).owner).toBe('runtime-b');
  });

  test('Asterisk unreachable: orphan calls stay open and their contacts in_call (never redialed) until it answers', async () => {
    // (open calls count against max_concurrent: a possibly live call holds its slot)
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 4, callsPerSecond: 1000 });
    await makeContacts(db, cid, 4, { prefix: '+1803' });
    const a = manager({ worker: 'runtime-c', maxConcurrent: 2 });
    const aCalls: PlaceCall[] = [];
    a.on('call', (c: PlaceCall) => aCalls.push(c));
    await a.start(cid);
    await waitFor(() => aCalls.length === 2, 5000, 'two calls');
    await a.close({ keepLeases: true });
    let down = true;
    const view: AsteriskView = {
      listChannels: async () => {
        if (down) throw new Error('connect ECONNREFUSED');
        return conn.listChannels();
      },
      hangup: (id) => conn.hangup(id),
    };
    const b = manager({ worker: 'runtime-d', db: db2, autoPickup: true, asterisk: view, reconcileEveryMs: 100 });
    const bCalls: PlaceCall[] = [];
    b.on('call', (c: PlaceCall) => {
      setTimeout(() => void b.handleOutcome({ id: c.id, outcome: 'completed' }), 5);
      if (c.campaignId === cid) bCalls.push(c);
    });
    await waitFor(() => bCalls.length === 2, 10000, 'b dials the two others');
    await new Promise((r) => setTimeout(r, 500));
    const open = await db.query<{ n: number }>(
      `select count(*)::int as n from calls where id = any($1::int[]) and status in ('initiated','ringing','in_progress')`,
      [aCalls.map((c) => c.id)],
    );
    expect(open.rows[0].n).toBe(2);
    expect(bCalls.filter((c) => aCalls.some((x) => x.contactId === c.contactId))).toEqual([]);
    down = false; // Asterisk is back: no channel for them, so they are closed now
    await waitFor(
      async () =>
        (
          await db.query<{ n: number }>(
            `select count(*)::int as n from calls where id = any($1::int[]) and status = 'failed' and reason like '%no channel in Asterisk%'`,
            [aCalls.map((c) => c.id)],
          )
        ).rows[0].n === 2,
      10000,
      'closed once Asterisk answers',
    );
  });

  test('two runtimes on one campaign: the one that started first leaves freed slots to the other once it holds its share', async () => {
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 4, callsPerSecond: 1000 });
    await makeContacts(db, cid, 60, { prefix: '+1806' });
    // a slow idle poll: a runtime whose claim finds every slot taken looks again only after 400 ms, while the one
    // holding the slots gets its outcomes (each call lasts 150 ms) and used to refill each freed slot at once
    const slow = { idleMs: 400 };
    const placed = new Map<string, number>();
    const runtime = (name: string, d: Db) => {
      const m = manager({ worker: name, db: d, ...slow });
      m.on('call', (c: PlaceCall) => {
        if (c.campaignId !== cid) return;
        placed.set(name, (placed.get(name) ?? 0) + 1);
        setTimeout(() => void m.handleOutcome({ id: c.id, outcome: 'completed' }), 150);
      });
      return m;
    };
    const a = runtime('runtime-a', db);
    const b = runtime('runtime-b', db2);
    await a.start(cid);
    await waitFor(() => (placed.get('runtime-a') ?? 0) >= 4, 5000, 'runtime a holding every slot');
    await b.start(cid);
    await waitFor(
      async () =>
        (
          await db.query<{ n: number }>(
            `select count(*)::int as n from contacts where campaign_id = $1 and status in ('pending','in_call')`,
            [cid],
          )
        ).rows[0].n === 0,
      30000,
      'every contact called',
    );
    // b learns nothing from the claims (they find no room); a hears of b at its next heartbeat (TTL / 3) and from
    // then keeps its share (2 of 4 slots) refilled at once, the rest at its idle poll, where b takes them too
    expect(placed.get('runtime-a')! + (placed.get('runtime-b') ?? 0)).toBe(60);
    expect(placed.get('runtime-b') ?? 0).toBeGreaterThanOrEqual(10);
  });

  test('after an ARI reconnect, a channel of a call the database already closed is hung up', async () => {
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 1, callsPerSecond: 1000 });
    await makeContacts(db, cid, 1, { prefix: '+1804' });
    const view = ariView(
      async () => conn,
      () => m.onAsteriskReconnect(),
    );
    const m = manager({ worker: 'runtime-e', asterisk: view });
    const calls: PlaceCall[] = [];
    m.on('call', (c: PlaceCall) => calls.push(c));
    await m.start(cid);
    await waitFor(() => calls.length === 1, 5000, 'one call');
    await originate(calls[0]);
    await waitFor(
      () => simChannels().some((c) => c.id.startsWith(`aid-${calls[0].id}-`) && c.state === 'Up'),
      5000,
      'up',
    );
    // its outcome was recorded (e.g. by a runtime that then lost its tracker), but the channel stayed up
    await m.handleOutcome({ id: calls[0].id, outcome: 'completed' });
    await sim.restart({ keepChannels: true, downMs: 50 });
    await waitFor(() => !simChannels().some((c) => c.id.startsWith(`aid-${calls[0].id}-`)), 10000, 'stray hung up');
    view.close();
  });

  test('the claim never takes a contact with an open call', async () => {
    const cid = await makeCampaign(db, { status: 'running', callsPerSecond: 1000 });
    await makeContacts(db, cid, 1, { prefix: '+1805' });
    const c = await db.query<{ id: number; phone: string }>('select id, phone from contacts where campaign_id = $1', [
      cid,
    ]);
    const call = await db.query<{ id: number }>(
      `insert into calls (campaign_id, contact_id, phone, status, worker) values ($1, $2, $3, 'in_progress', 'gone') returning id`,
      [cid, c.rows[0].id, c.rows[0].phone],
    );
    expect((await claimContacts(db, { campaignId: cid, limit: 5 })).claimed).toHaveLength(0);
    await db.query(`update calls set status = 'failed' where id = $1`, [call.rows[0].id]);
    expect((await claimContacts(db, { campaignId: cid, limit: 5 })).claimed).toHaveLength(1);
  });

  test('callIdOfChannel: channelvars first, else the aid- channel id (either half of a Local pair)', () => {
    expect(callIdOfChannel({ id: 'x', channelvars: { CALL_ID: '42' } })).toBe(42);
    expect(callIdOfChannel({ id: 'aid-17-0a1b2c3d' })).toBe(17);
    expect(callIdOfChannel({ id: 'aid-17-0a1b2c3d;2' })).toBe(17);
    expect(callIdOfChannel({ id: '1732486000.5' })).toBeUndefined();
    expect(callIdOfChannel({ id: 'aid-17-0a1b2c3d', channelvars: { CALL_ID: 'drop table' } })).toBe(17);
  });
});
