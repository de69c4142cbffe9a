import type { Db } from '../../src/store/db';
import { CampaignManager, type CampaignEvent, type PlaceCall } from '../../src/campaign/manager';
import { campaignControl, registerCampaignManager, unregisterCampaignManager } from '../../src/campaign/control';
import { claimContacts } from '../../src/store/claim';
import { recordOutcome, releaseClaims, reconcileOpenCalls } from '../../src/store/campaigns';
import { ensureBuckets, takeTokens } from '../../src/store/pacing';
import { ariLivenessChecker } from '../../src/campaign/liveness';
import { dbTargets } from '../helpers/db';
import { makeCampaign, makeContacts, waitFor } from './fixtures';

const fast = { tickMs: 5, idleMs: 20, progressIntervalMs: 50, settingsRefreshMs: 100 };

describe.each(dbTargets().map((t) => [t().name, t] as const))('campaign manager on %s', (_name, make) => {
  const target = make();
  let db: Db;
  let db2: Db; // a second "runtime" (its own pool on PostgreSQL; PGlite is single-process)
  const managers: CampaignManager[] = [];
  const manager = (o: Partial<ConstructorParameters<typeof CampaignManager>[0]> = {}) => {
    const m = new CampaignManager({ db, worker: `w${managers.length}`, ...fast, ...o });
    managers.push(m);
    return m;
  };
  beforeAll(async () => {
    db = await target.open();
    db2 = db.kind === 'pg' ? await target.open() : db;
  });
  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close()));
  });
  afterAll(async () => {
    if (db2 && db2 !== db) await db2.close();
    await db?.close();
    await target.cleanup();
  });

  test('start validates the campaign with a clear error', async () => {
    const m = manager();
    await expect(m.start(999999)).rejects.toMatchObject({
      code: 'campaign_not_found',
      message: 'campaign 999999 does not exist',
    });
    await expect(m.start('abc')).rejects.toMatchObject({ code: 'campaign_bad_id' });
    const noNumbers = await makeCampaign(db, { status: 'draft', numbers: [], inactiveNumbers: ['+12125550111'] });
    await makeContacts(db, noNumbers, 1, { prefix: '+1701' });
    await expect(m.start(noNumbers)).rejects.toMatchObject({ code: 'campaign_no_caller_id' });
    const noContacts = await makeCampaign(db, { status: 'draft' });
    await expect(m.start(noContacts)).rejects.toMatchObject({
      code: 'campaign_no_contacts',
      message: expect.stringContaining('has no contacts'),
    });
    const badZone = await makeCampaign(db, { status: 'draft', timezone: 'Mars/Olympus' });
    await makeContacts(db, badZone, 1, { prefix: '+1715' });
    await expect(m.start(badZone)).rejects.toMatchObject({ code: 'campaign_bad_timezone' });
  });

  test('the concurrency cap holds under a storm of outcomes (duplicates, unknown ids); every contact is dialed once; nothing stays in a call', async () => {
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 3, callsPerSecond: 1000 });
    await makeContacts(db, cid, 60, { prefix: '+1702' });
    const m = manager();
    const live = new Set<number>();
    let maxLive = 0;
    const dialed: number[] = [];
    const events: CampaignEvent[] = [];
    m.on('event', (e: CampaignEvent) => events.push(e));
    const pending: PlaceCall[] = [];
    m.on('call', (c: PlaceCall) => {
      live.add(c.id);
      maxLive = Math.max(maxLive, live.size);
      dialed.push(c.contactId);
      pending.push(c);
    });
    let done = false;
    m.on('completed', () => (done = true));
    await m.start(cid);
    // storm: whenever calls are waiting, end all of them at once, each twice, plus a bogus one
    const outcomes = ['completed', 'completed', 'completed', 'failed'];
    let k = 0;
    let ended = 0;
    while (ended < 60) {
      await waitFor(() => pending.length > 0, 15000, 'calls');
      ended += pending.length;
      const batch = pending.splice(0);
      await Promise.all(
        batch.flatMap((c) => {
          live.delete(c.id);
          const outcome = k++ % 7 === 3 ? 'busy' : outcomes[k % outcomes.length];
          return [m.handleOutcome({ id: c.id, outcome }), m.handleOutcome({ id: c.id, outcome: 'completed' })];
        }),
      );
      await m.handleOutcome({ id: 987654321, outcome: 'completed' }).catch(() => undefined);
    }
    expect(maxLive).toBeLessThanOrEqual(3);
    expect(maxLive).toBe(3);
    // every contact dialed once in the first round; retried ones only after their delay (not now)
    expect(new Set(dialed).size).toBe(dialed.length);
    const st = await db.query<{ status: string; n: number }>(
      `select status, count(*)::int as n from contacts where campaign_id = $1 group by 1 order by 1`,
      [cid],
    );
    const byStatus = Object.fromEntries(st.rows.map((r) => [r.status, r.n]));
    expect((byStatus.done ?? 0) + (byStatus.pending ?? 0) + (byStatus.failed ?? 0)).toBe(60);
    expect(byStatus.in_call).toBeUndefined();
    const calls = await db.query<{ n: number; open: number }>(
      `select count(*)::int as n, count(*) filter (where status in ('initiated','ringing','in_progress'))::int as open from calls where campaign_id = $1`,
      [cid],
    );
    expect(calls.rows[0]).toEqual({ n: 60, open: 0 });
    expect(events.filter((e) => e.type === 'call_started')).toHaveLength(60);
    expect(events.filter((e) => e.type === 'call_ended')).toHaveLength(60); // duplicates closed nothing
    await waitFor(
      () =>
        events.some(
          (e) =>
            e.type === 'campaign_progress' &&
            // the pending contacts were all tried: they wait for their retry
            e.progress?.retrying === (byStatus.pending ?? 0) &&
            e.progress.queued === 0 &&
            e.progress.dialing === 0,
        ),
      5000,
      'final progress',
    );
    const progress = events.filter((e) => e.type === 'campaign_progress');
    expect(progress.length).toBeGreaterThan(0);
    expect(progress[progress.length - 1].progress).toMatchObject({
      total: 60,
      dialing: 0,
      active: 0,
      busy: 0, // busy contacts are retried, not closed
    });
    const last = progress[progress.length - 1].progress!;
    const buckets = [
      'queued',
      'retrying',
      'dialing',
      'active',
      'completed',
      'failed',
      'no_answer',
      'busy',
      'dnc_skipped',
    ];
    expect(buckets.reduce((a, k) => a + Number(last[k as keyof typeof last]), 0)).toBe(60);
    // retries pending in the future: the campaign is idle, not completed, unless none were scheduled
    const camp = await db.query<{ status: string }>('select status from campaigns where id = $1', [cid]);
    if (byStatus.pending) expect(camp.rows[0].status).toBe('running');
    else await waitFor(() => done, 5000, 'completion');
  });

  test('two runtimes on one database never dial the same contact', async () => {
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 7, callsPerSecond: 1000 });
    await makeContacts(db, cid, 300, { prefix: '+1703' });
    const a = manager({ worker: 'runtime-a' });
    const b = manager({ worker: 'runtime-b', db: db2 });
    const seen = new Map<number, string>();
    const dup: number[] = [];
    let ended = 0;
    for (const [m, name] of [
      [a, 'a'],
      [b, 'b'],
    ] as const) {
      m.on('call', (c: PlaceCall) => {
        if (seen.has(c.contactId)) dup.push(c.contactId);
        seen.set(c.contactId, name);
        setImmediate(() => void m.handleOutcome({ id: c.id, outcome: 'completed' }).then(() => ended++));
      });
    }
    await Promise.all([a.start(cid), b.start(cid)]);
    await waitFor(() => ended === 300, 30000, 'all 300 calls');
    expect(dup).toEqual([]);
    expect(seen.size).toBe(300);
    const per = [...seen.values()].reduce<Record<string, number>>((acc, v) => ((acc[v] = (acc[v] ?? 0) + 1), acc), {});
    expect(per.a + per.b).toBe(300);
    const d = await db.query<{ n: number }>(
      `select count(*)::int as n from (select contact_id from calls where campaign_id = $1 group by 1 having count(*) > 1) x`,
      [cid],
    );
    expect(d.rows[0].n).toBe(0);
    // all done: the campaign completes
    await waitFor(
      async () =>
        (await db.query<{ status: string }>('select status from campaigns where id = $1', [cid])).rows[0].status ===
        'completed',
      10000,
      'completed',
    );
  });

  test('max_concurrent holds across runtimes (scope campaign, the default); scope worker caps each worker', async () => {
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 3, callsPerSecond: 1000 });
    await makeContacts(db, cid, 40, { prefix: '+1716' });
    const a = manager({ worker: 'ca' });
    const b = manager({ worker: 'cb', db: db2 });
    const live = new Set<number>();
    let maxLive = 0;
    let total = 0;
    for (const m of [a, b]) {
      m.on('call', (c: PlaceCall) => {
        live.add(c.id);
        total++;
        maxLive = Math.max(maxLive, live.size);
        setTimeout(() => {
          live.delete(c.id);
          void m.handleOutcome({ id: c.id, outcome: 'completed' });
        }, 3);
      });
    }
    await Promise.all([a.start(cid), b.start(cid)]);
    await waitFor(() => total === 40 && live.size === 0, 30000, 'all 40 calls');
    expect(maxLive).toBeLessThanOrEqual(3);

    const wid = await makeCampaign(db, { status: 'draft', maxConcurrent: 2, callsPerSecond: 1000 });
    await db.query(`update campaigns set settings = '{"concurrency_scope":"worker"}' where id = $1`, [wid]);
    await makeContacts(db, wid, 10, { prefix: '+1717' });
    const c = manager({ worker: 'wa' });
    const d = manager({ worker: 'wb', db: db2 });
    let n = 0;
    c.on('call', () => n++);
    d.on('call', () => n++);
    await Promise.all([c.start(wid), d.start(wid)]);
    await waitFor(() => n === 4, 5000, 'two calls per worker');
    expect(c.runnerOf(wid)!.inFlight.size).toBe(2);
    expect(d.runnerOf(wid)!.inFlight.size).toBe(2);
  });

  test('pause and resume in one runtime are followed by the other', async () => {
    const cid = await makeCampaign(db, {
      status: 'draft',
      maxConcurrent: 1,
      callsPerSecond: 1000,
      settings: { concurrency_scope: 'worker' },
    });
    await makeContacts(db, cid, 20, { prefix: '+1712' });
    const a = manager({ worker: 'ra' });
    const b = manager({ worker: 'rb', db: db2 });
    const got: Record<string, PlaceCall[]> = { a: [], b: [] };
    a.on('call', (c: PlaceCall) => got.a.push(c));
    b.on('call', (c: PlaceCall) => got.b.push(c));
    await a.start(cid);
    await b.start(cid);
    await waitFor(() => got.a.length === 1 && got.b.length === 1, 5000, 'one call each');
    await a.pause(cid);
    // b's slot frees; it notices the pause (the claim itself also refuses a paused campaign)
    for (const [m, list] of [
      [a, got.a],
      [b, got.b],
    ] as const)
      await m.handleOutcome({ id: list[0].id, outcome: 'completed' });
    await waitFor(() => b.runnerOf(cid)?.state === 'paused', 5000, 'b follows the pause');
    expect(got.a.length + got.b.length).toBe(2);
    await a.resume(cid);
    await waitFor(() => b.runnerOf(cid)?.state === 'running', 5000, 'b follows the resume');
    await waitFor(() => got.b.length === 2, 5000, 'b dials again');
  });

  test('an outcome the store cannot take now is kept and retried; nothing stays in a call', async () => {
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 1, callsPerSecond: 1000 });
    await makeContacts(db, cid, 1, { prefix: '+1713' });
    let down = false;
    const flaky: Db = {
      kind: db.kind,
      description: db.description,
      query: (sql, params) => (down ? Promise.reject(new Error('connection refused')) : db.query(sql, params)),
      tx: (fn) => (down ? Promise.reject(new Error('connection refused')) : db.tx(fn)),
      close: async () => undefined,
    } as Db;
    const m = manager({ db: flaky, retryMs: 20 });
    const calls: PlaceCall[] = [];
    const ended: CampaignEvent[] = [];
    m.on('call', (c: PlaceCall) => calls.push(c));
    m.on('event', (e: CampaignEvent) => e.type === 'call_ended' && ended.push(e));
    await m.start(cid);
    await waitFor(() => calls.length === 1, 5000, 'the call');
    down = true;
    await expect(m.handleOutcome({ id: calls[0].id, outcome: 'completed' })).rejects.toMatchObject({
      code: 'campaign_outcome_store',
    });
    expect(m.runnerOf(cid)!.inFlight.size).toBe(0); // the slot is free anyway
    expect(m.pendingOutcomes).toBe(1);
    down = false;
    await waitFor(() => m.pendingOutcomes === 0 && ended.length === 1, 5000, 'the retried outcome');
    const c = await db.query<{ status: string }>('select status from contacts where id = $1', [calls[0].contactId]);
    expect(c.rows[0].status).toBe('done');
  });

  test('closing while a claim is in flight releases what it claimed (never sent, attempt undone)', async () => {
    const cid = await makeCampaign(db, { status: 'draft', callsPerSecond: 1000 });
    await makeContacts(db, cid, 5, { prefix: '+1718' });
    let gate: (() => void) | undefined;
    let gated = false;
    const slow: Db = {
      kind: db.kind,
      description: db.description,
      query: async (sql: string, params?: unknown[]) => {
        const r = await db.query(sql, params);
        if (sql.includes('claim_contacts(') && !gated) {
          gated = true;
          await new Promise<void>((res) => (gate = res)); // the claim committed; its answer is late
        }
        return r;
      },
      tx: (fn) => db.tx(fn),
      close: async () => undefined,
    } as Db;
    const m = manager({ db: slow });
    let sent = 0;
    m.on('call', () => sent++);
    await m.start(cid);
    await waitFor(() => gate, 5000, 'a claim in flight');
    const inCall = await db.query<{ n: number }>(
      `select count(*)::int as n from contacts where campaign_id = $1 and status = 'in_call'`,
      [cid],
    );
    expect(inCall.rows[0].n).toBeGreaterThan(0);
    const closing = m.close();
    gate!();
    await closing;
    expect(sent).toBe(0);
    const st = await db.query<{ status: string; attempts: number; n: number }>(
      `select status, attempts, count(*)::int as n from contacts where campaign_id = $1 group by 1, 2`,
      [cid],
    );
    expect(st.rows).toEqual([{ status: 'pending', attempts: 0, n: 5 }]);
    const calls = await db.query<{ status: string; reason: string }>(
      `select distinct status, reason from calls where campaign_id = $1`,
      [cid],
    );
    expect(calls.rows).toEqual([{ status: 'cancelled', reason: 'released before dialing' }]);
  });

  /** `db`, counting the dial passes (a pass's first statement asks for tokens) and what each claim returned. */
  const counting = () => {
    const seen = { passes: 0, claims: [] as Array<{ claimed: number; room: number }> };
    const wrapped = {
      kind: db.kind,
      description: db.description,
      query: async <T>(sql: string, params?: unknown[]) => {
        if (/^with cur as \(\s*select key, rate/.test(sql.trim())) seen.passes++;
        const r = await db.query<T>(sql, params);
        if (sql.includes('claim_contacts(')) {
          const row = r.rows[0] as { claimed?: unknown[] | string; room?: number } | undefined;
          const got = row?.claimed ?? [];
          seen.claims.push({
            claimed: (typeof got === 'string' ? (JSON.parse(got) as unknown[]) : got).length,
            room: Number(row?.room),
          });
        }
        return r;
      },
      tx: (fn) => db.tx(fn),
      close: async () => undefined,
    } as Db;
    return { db: wrapped, seen };
  };

  /** A manager on `counting()`'s db, started on `cid`: once `n` calls are placed and a claim then found none. */
  const placedThenNone = async (
    cid: number,
    n: number,
    o: Partial<ConstructorParameters<typeof CampaignManager>[0]>,
  ) => {
    const { db: counted, seen } = counting();
    const m = manager({ db: counted, ...o });
    const placed: PlaceCall[] = [];
    m.on('call', (c: PlaceCall) => placed.push(c));
    await m.start(cid);
    await waitFor(
      () => placed.length === n && seen.claims.at(-1)?.claimed === 0,
      5000,
      `${n} calls, then a claim of none`,
    );
    return { m, placed, seen };
  };

  test('with nothing left to claim, an outcome does not run a dial pass of its own; the last one still completes the campaign', async () => {
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 10, callsPerSecond: 1000 });
    await makeContacts(db, cid, 4, { prefix: '+1719' });
    const { db: counted, seen } = counting();
    // no idle poll within the test: the completion comes from the last outcome's own pass; settings not re-read
    const m = manager({ db: counted, idleMs: 60_000, settingsRefreshMs: 600_000 });
    const placed: PlaceCall[] = [];
    m.on('call', (c: PlaceCall) => placed.push(c));
    const events: CampaignEvent[] = [];
    m.on('event', (e: CampaignEvent) => events.push(e));
    let completed = false;
    m.on('completed', () => (completed = true));
    await m.start(cid);
    await waitFor(
      () => placed.length === 4 && seen.claims.at(-1)?.claimed === 0,
      5000,
      'four calls, then a claim of none',
    );
    // room in the slots (as many as the pass had rate tokens for, up to the 6 free): nothing was due
    expect(seen.claims.at(-1)!.room).toBeGreaterThan(0);
    const before = seen.passes;
    for (const c of placed.slice(0, 3)) await m.handleOutcome({ id: c.id, outcome: 'completed' });
    // a progress event counting the three (each outcome stored, its request for a pass made before)
    await waitFor(
      () => events.some((e) => e.type === 'campaign_progress' && e.progress?.completed === 3),
      5000,
      'progress after three outcomes',
    );
    expect(seen.passes).toBe(before); // three slots freed with nothing due: no pass, no claim
    await m.handleOutcome({ id: placed[3].id, outcome: 'completed' });
    await waitFor(() => completed, 5000, 'the campaign completed after its last outcome, not at the idle poll');
    expect(seen.passes).toBeGreaterThan(before);
    expect(seen.claims.reduce((a, c) => a + c.claimed, 0)).toBe(4); // each contact once
  });

  test("a claim that found the slots full (another runtime's call) does not hold back the next outcome's dial pass", async () => {
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 3, callsPerSecond: 1000 });
    await makeContacts(db, cid, 6, { prefix: '+1720' });
    // another runtime's open call holds one of the campaign's three slots
    const other = await db.query<{ id: number }>(
      `insert into calls (campaign_id, phone, status, worker) values ($1, '+17205550999', 'in_progress', 'other') returning id`,
      [cid],
    );
    // no idle poll within the test: only an outcome's own dial pass can place the next call in time
    const { m, placed, seen } = await placedThenNone(cid, 2, { idleMs: 60_000, settingsRefreshMs: 600_000 });
    expect(seen.claims.at(-1)).toEqual({ claimed: 0, room: 0 }); // contacts due, the slots full
    // the other runtime's call ends, then one of ours: its outcome's pass finds the two free slots at once
    await db.query(`update calls set status = 'completed', ended_at = now() where id = $1`, [other.rows[0].id]);
    await m.handleOutcome({ id: placed[0].id, outcome: 'completed' });
    await waitFor(
      () => placed.length === 4,
      5000,
      'two more calls after the outcome, without waiting for the idle poll',
    );
    expect(new Set(placed.map((c) => c.contactId)).size).toBe(4);
  });

  test("an outcome's dial pass comes once the outcome is stored: its claim finds the call's slot free", async () => {
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 1, callsPerSecond: 1000 });
    await makeContacts(db, cid, 3, { prefix: '+1724' });
    // a slow store: each outcome takes 300 ms to be written (a claim meanwhile still counts the call)
    const slow = {
      kind: db.kind,
      description: db.description,
      query: async <T>(sql: string, params?: unknown[]) => {
        if (sql.includes('with closed as (')) await new Promise((r) => setTimeout(r, 300));
        return db.query<T>(sql, params);
      },
      tx: (fn) => db.tx(fn),
      close: async () => undefined,
    } as Db;
    // no idle poll within the test: only the outcome's own pass can place the next call in time
    const m = manager({ db: slow, idleMs: 60_000, settingsRefreshMs: 600_000 });
    const placed: PlaceCall[] = [];
    m.on('call', (c: PlaceCall) => placed.push(c));
    await m.start(cid);
    await waitFor(() => placed.length === 1, 5000, 'the first call');
    await m.handleOutcome({ id: placed[0].id, outcome: 'completed' });
    await waitFor(() => placed.length === 2, 5000, 'the next call, once the outcome freed the slot in the database');
  });

  test('max_concurrent lowered while nothing was due: the outcomes that bring the calls under it dial what is due again', async () => {
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 4, callsPerSecond: 1000 });
    await makeContacts(db, cid, 3, { prefix: '+1721' });
    // the idle poll sees the lowered cap once (settings re-read on every pass); after it, only outcomes ask
    const { m, placed, seen } = await placedThenNone(cid, 3, { idleMs: 200, settingsRefreshMs: 0 });
    expect(seen.claims.at(-1)).toEqual({ claimed: 0, room: 1 }); // nothing due
    await db.query(`update campaigns set max_concurrent = 2 where id = $1`, [cid]);
    await waitFor(() => m.runnerOf(cid)!.maxConcurrent === 2, 5000, 'the lowered cap read by a pass');
    const claims = seen.claims.length;
    await makeContacts(db, cid, 1, { prefix: '+1721', start: 100 }); // a contact due now (an import)
    await m.handleOutcome({ id: placed[0].id, outcome: 'completed' }); // 2 in flight: still at the cap
    await m.handleOutcome({ id: placed[1].id, outcome: 'completed' }); // 1: room for the new contact
    await waitFor(() => placed.length === 4, 5000, 'the new contact dialed after the outcomes');
    expect(seen.claims.length).toBeGreaterThan(claims);
  });

  test('retry schedule: busy +10 min, no_answer +1 h, completed closes, max attempts closes as failed', async () => {
    const cid = await makeCampaign(db, { maxAttempts: 2, retryPolicy: { busy: 600, no_answer: 3600, failed: 1800 } });
    await makeContacts(db, cid, 3, { prefix: '+1704' });
    const now = new Date('2027-06-15T15:00:00Z');
    const first = await claimContacts(db, { campaignId: cid, limit: 3, now });
    expect(first.claimed).toHaveLength(3);
    const [c1, c2, c3] = first.claimed;
    const r1 = await recordOutcome(db, { callId: c1.callId, outcome: 'busy', now });
    expect(r1.contact).toMatchObject({ status: 'pending', attempts: 1 });
    expect(r1.contact!.nextAttemptAt!.toISOString()).toBe('2027-06-15T15:10:00.000Z');
    const r2 = await recordOutcome(db, { callId: c2.callId, outcome: 'no_answer', now });
    expect(r2.contact!.nextAttemptAt!.toISOString()).toBe('2027-06-15T16:00:00.000Z');
    const r3 = await recordOutcome(db, { callId: c3.callId, outcome: 'completed', now });
    expect(r3.contact).toMatchObject({ status: 'done' });
    // a late duplicate changes nothing
    expect((await recordOutcome(db, { callId: c3.callId, outcome: 'failed', now })).closed).toBe(false);
    // before the retry time nothing is due; after it, c1 is (c2 later)
    expect(
      (await claimContacts(db, { campaignId: cid, limit: 5, now: new Date('2027-06-15T15:09:59Z') })).claimed,
    ).toHaveLength(0);
    const second = await claimContacts(db, { campaignId: cid, limit: 5, now: new Date('2027-06-15T15:10:00Z') });
    expect(second.claimed.map((c) => [c.contactId, c.attempt])).toEqual([[c1.contactId, 2]]);
    const last = await recordOutcome(db, { callId: second.claimed[0].callId, outcome: 'busy' });
    expect(last.contact).toMatchObject({ status: 'failed', attempts: 2 });
    const call = await db.query('select status, outcome, attempt from calls where id = $1', [second.claimed[0].callId]);
    expect(call.rows[0]).toEqual({ status: 'busy', outcome: 'busy', attempt: 2 });
    // the conversation closed the call first (agi-hangup): the later outcome still settles the contact
    const fourth = await claimContacts(db, { campaignId: cid, limit: 5, now: new Date('2027-06-15T17:00:00Z') });
    expect(fourth.claimed.map((c) => c.contactId)).toEqual([c2.contactId]);
    await db.query(`update calls set status = 'completed', outcome = 'completed', ended_at = now() where id = $1`, [
      fourth.claimed[0].callId,
    ]);
    const late = await recordOutcome(db, { callId: fourth.claimed[0].callId, outcome: 'completed' });
    expect(late.closed).toBe(false);
    expect(late.contact).toMatchObject({ id: c2.contactId, status: 'done' });
    await makeContacts(db, cid, 1, { prefix: '+1714' });
    // an unknown outcome is a failure with a reason
    const third = await claimContacts(db, { campaignId: cid, limit: 5, now: new Date('2027-06-15T17:00:00Z') });
    const u = await recordOutcome(db, { callId: third.claimed[0].callId, outcome: 'exploded' });
    expect(u.status).toBe('failed');
    const uc = await db.query('select reason from calls where id = $1', [third.claimed[0].callId]);
    expect(uc.rows[0].reason).toMatch(/unknown outcome/);
  });

  test('pacing: tokens never exceed rate x time + burst; a global cap binds every worker', async () => {
    // the clock starts before the bucket exists: it fills from its creation (server time), and under load the
    // insert's reply can come back a few hundred ms after it
    const t0 = Date.now();
    await ensureBuckets(db, [{ key: 'test:pace', rate: 5, burst: 5 }]);
    let granted = 0;
    for (let i = 0; i < 30; i++) granted += (await takeTokens(db, ['test:pace'], 3)).granted;
    const secs = (Date.now() - t0) / 1000;
    expect(granted).toBeLessThanOrEqual(Math.floor(1 + 5 * secs) + 1);
    const w = await takeTokens(db, ['test:pace'], 100);
    expect(w.waitSeconds).toBeLessThanOrEqual(0.2 + 1e-9);

    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 1000, callsPerSecond: 1000 });
    await makeContacts(db, cid, 200, { prefix: '+1705' });
    await db.query(`delete from rate_limits where key = 'global'`);
    const a = manager({ globalCps: 4 });
    const b = manager({ globalCps: 4, db: db2 });
    let placed = 0;
    a.on('call', () => placed++);
    b.on('call', () => placed++);
    const start = Date.now();
    await Promise.all([a.start(cid), b.start(cid)]);
    await waitFor(() => placed >= 3, 10000, 'a few paced calls');
    const elapsed = (Date.now() - start) / 1000;
    const n = placed;
    // the bucket starts with one token and refills at 4/s for both workers together
    expect(n).toBeLessThanOrEqual(Math.floor(1 + 4 * (elapsed + 0.05)) + 1);
  });

  test('caller ID: round robin, least recently used, local presence; inactive numbers skipped', async () => {
    const rr = await makeCampaign(db, {
      numbers: ['+12125550001', '+12125550002', '+12125550003'],
      inactiveNumbers: ['+12125550009'],
    });
    await makeContacts(db, rr, 9, { prefix: '+1706' });
    const used: string[] = [];
    for (let i = 0; i < 3; i++)
      used.push(...(await claimContacts(db, { campaignId: rr, limit: i + 2 })).claimed.map((c) => c.callerId));
    const counts = used.reduce<Record<string, number>>((a, n) => ((a[n] = (a[n] ?? 0) + 1), a), {});
    expect(counts).toEqual({ '+12125550001': 3, '+12125550002': 3, '+12125550003': 3 });

    const lru = await makeCampaign(db, {
      strategy: 'least_recently_used',
      numbers: ['+13125550001', '+13125550002', '+13125550003'],
      inactiveNumbers: ['+13125550000'],
    });
    await db.query(
      `update phone_numbers set last_used_at = now() - interval '1 hour' where campaign_id = $1 and number = '+13125550001'`,
      [lru],
    );
    await db.query(
      `update phone_numbers set last_used_at = now() - interval '2 hours' where campaign_id = $1 and number = '+13125550002'`,
      [lru],
    );
    await makeContacts(db, lru, 4, { prefix: '+1707' });
    const l1 = (await claimContacts(db, { campaignId: lru, limit: 1 })).claimed[0].callerId;
    const l2 = (await claimContacts(db, { campaignId: lru, limit: 1 })).claimed[0].callerId;
    const l3 = (await claimContacts(db, { campaignId: lru, limit: 1 })).claimed[0].callerId;
    const l4 = (await claimContacts(db, { campaignId: lru, limit: 1 })).claimed[0].callerId;
    expect([l1, l2, l3, l4]).toEqual(['+13125550003', '+13125550002', '+13125550001', '+13125550003']);

    const lp = await makeCampaign(db, {
      strategy: 'local_presence',
      numbers: ['+12125550100', '+13125550100', '+14155550100', '+14155550101'],
      inactiveNumbers: ['+16175550100'],
    });
    await db.query(
      `insert into contacts (campaign_id, phone) values ($1, '+13125551111'), ($1, '+14155552222'), ($1, '+14155553333'), ($1, '+16175554444'), ($1, '+442071234567')`,
      [lp],
    );
    const got = (await claimContacts(db, { campaignId: lp, limit: 10 })).claimed;
    const by = Object.fromEntries(got.map((c) => [c.phone, c.callerId]));
    expect(by['+13125551111']).toBe('+13125550100');
    expect(['+14155550100', '+14155550101']).toContain(by['+14155552222']);
    expect(['+14155550100', '+14155550101']).toContain(by['+14155553333']);
    expect(by['+14155552222']).not.toBe(by['+14155553333']); // spread over the local numbers
    expect(by['+16175554444']).not.toBe('+16175550100'); // inactive local number skipped
    expect(['+12125550100', '+13125550100', '+14155550100', '+14155550101']).toContain(by['+442071234567']);
  });

  test('crash reconciliation: stale and orphaned calls are closed as failed and their contacts rescheduled; live calls untouched', async () => {
    const cid = await makeCampaign(db, { status: 'draft', maxAttempts: 3 });
    await makeContacts(db, cid, 4, { prefix: '+1708' });
    await db.query(`update campaigns set status = 'running' where id = $1`, [cid]);
    const claimed = (await claimContacts(db, { campaignId: cid, limit: 4, worker: 'other' })).claimed;
    await db.query(`update campaigns set status = 'draft' where id = $1`, [cid]);
    const [stale, fresh, deadOnAri, liveOnAri] = claimed;
    await db.query(`update calls set created_at = now() - interval '2 hours', status = 'in_progress' where id = $1`, [
      stale.callId,
    ]);
    await db.query(`update calls set created_at = now() - interval '5 minutes' where id = any($1::int[])`, [
      [deadOnAri.callId, liveOnAri.callId],
    ]);
    const res = await reconcileOpenCalls(db, {
      campaignId: cid,
      staleAfterMs: 3600_000,
      isLive: async (c) => c.id !== deadOnAri.callId,
      graceMs: 60_000,
    });
    expect(res.closed.sort()).toEqual([stale.callId, deadOnAri.callId].sort());
    expect(res.rescheduled).toBe(2);
    const calls = await db.query<{ id: number; status: string; reason: string | null }>(
      `select id, status, reason from calls where id = any($1::int[]) order by id`,
      [claimed.map((c) => c.callId)],
    );
    const s = Object.fromEntries(calls.rows.map((r) => [r.id, r]));
    expect(s[stale.callId]).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/reconciled: still in_progress/),
    });
    expect(s[deadOnAri.callId]).toMatchObject({ status: 'failed', reason: 'reconciled: no live channel in Asterisk' });
    expect(s[fresh.callId].status).toBe('initiated');
    expect(s[liveOnAri.callId].status).toBe('initiated');
    const ct = await db.query<{ id: number; status: string }>(
      `select id, status from contacts where id = any($1::int[])`,
      [[stale.contactId, deadOnAri.contactId]],
    );
    expect(ct.rows.map((r) => r.status)).toEqual(['pending', 'pending']);

    // a worker's own calls from before this process started are orphans: closed on start
    await db.query(`update calls set worker = 'me', created_at = now() - interval '1 hour' where id = $1`, [
      fresh.callId,
    ]);
    const m = manager({ worker: 'me', reconcile: { staleAfterMs: 24 * 3600_000 } });
    await m.start(cid);
    const f = await db.query<{ status: string; reason: string }>('select status, reason from calls where id = $1', [
      fresh.callId,
    ]);
    expect(f.rows[0]).toEqual({ status: 'failed', reason: 'reconciled: left open by a previous run of this worker' });
    const lv = await db.query<{ status: string }>('select status from calls where id = $1', [liveOnAri.callId]);
    expect(lv.rows[0].status).toBe('initiated');
  });

  test('add_to_dnc: the number is on the list at once and never dialed again, in any campaign', async () => {
    const a = await makeCampaign(db);
    const b = await makeCampaign(db);
    await db.query(`insert into contacts (campaign_id, phone) values ($1, '+17095550000'), ($2, '+17095550000')`, [
      a,
      b,
    ]);
    const m = manager();
    const got = (await claimContacts(db, { campaignId: a, limit: 1 })).claimed[0];
    expect(await m.addToDnc(got.phone, { campaignId: a })).toBe(2); // the one in the call and b's pending one
    await m.handleOutcome({ id: got.callId, outcome: 'busy' }); // would be a retry: stays closed
    const st = await db.query<{ status: string }>('select status from contacts where phone = $1 order by id', [
      got.phone,
    ]);
    expect(st.rows.map((r) => r.status)).toEqual(['dnc', 'dnc']);
    const dnc = await db.query('select phone, campaign_id, reason from dnc where phone = $1', [got.phone]);
    expect(dnc.rows).toEqual([{ phone: '+17095550000', campaign_id: null, reason: 'caller asked not to be called' }]);
    expect((await claimContacts(db, { campaignId: b, limit: 5 })).claimed).toHaveLength(0);
    await expect(m.addToDnc('not a number; drop table dnc')).rejects.toMatchObject({ code: 'dnc_bad_phone' });
  });

  test('pause stops claiming in every runtime; resume continues; unsent claims are released', async () => {
    const cid = await makeCampaign(db, {
      status: 'draft',
      maxConcurrent: 2,
      callsPerSecond: 1000,
      settings: { concurrency_scope: 'worker' },
    });
    await makeContacts(db, cid, 10, { prefix: '+1710' });
    const m = manager();
    const calls: PlaceCall[] = [];
    m.on('call', (c: PlaceCall) => calls.push(c));
    await m.start(cid);
    await waitFor(() => calls.length === 2, 5000, 'two calls');
    await m.pause(cid);
    expect(
      (await db.query<{ status: string }>('select status from campaigns where id = $1', [cid])).rows[0].status,
    ).toBe('paused');
    await Promise.all(calls.map((c) => m.handleOutcome({ id: c.id, outcome: 'completed' })));
    expect((await claimContacts(db, { campaignId: cid, limit: 5 })).claimed).toHaveLength(0); // paused for everyone
    expect((await m.status(cid)).state).toBe('paused');
    await m.resume(cid);
    await waitFor(() => calls.length === 4, 5000, 'more calls after resume');
    await m.stop(cid);
    const st = await m.status(cid);
    expect(st).toMatchObject({ state: 'stopped', inFlight: 2, progress: { total: 10, completed: 2 } });

    await db.query(`update campaigns set status = 'running' where id = $1`, [cid]);
    const grabbed = (await claimContacts(db, { campaignId: cid, limit: 3 })).claimed;
    expect(
      await releaseClaims(
        db,
        grabbed.map((c) => c.callId),
      ),
    ).toBe(3);
    const back = await db.query<{ status: string; attempts: number }>(
      `select status, attempts from contacts where id = any($1::int[])`,
      [grabbed.map((c) => c.contactId)],
    );
    expect(back.rows.every((r) => r.status === 'pending' && r.attempts === 0)).toBe(true);
  });

  test('campaignControl reaches the registered queue, and says so when none is deployed', async () => {
    await expect(campaignControl.start(1)).rejects.toThrow('no campaign-queue node is deployed');
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 1 });
    await makeContacts(db, cid, 2, { prefix: '+1711' });
    const m = manager();
    registerCampaignManager(m);
    try {
      let got = 0;
      m.on('call', () => got++);
      expect((await campaignControl.start(String(cid))).state).toBe('running');
      await waitFor(() => got === 1, 5000, 'a call');
      expect((await campaignControl.pause(cid)).state).toBe('paused');
      expect((await campaignControl.status(cid)).progress).toMatchObject({ total: 2 });
      await expect(campaignControl.run('explode', cid)).rejects.toMatchObject({ code: 'campaign_bad_action' });
    } finally {
      unregisterCampaignManager(m);
    }
  });
});

describe('ARI liveness checker', () => {
  test('a call is live when a channel named for it (or its stored channel id) exists; the list is fetched once per burst', async () => {
    let fetches = 0;
    const check = ariLivenessChecker(async () => {
      fetches++;
      return [{ id: 'aid-12-abcd1234' }, { id: 'PJSIP/trunk-0001' }];
    });
    expect(await check({ id: 12, channelId: null })).toBe(true);
    expect(await check({ id: 1, channelId: null })).toBe(false); // aid-1- is not a prefix of aid-12-
    expect(await check({ id: 99, channelId: 'PJSIP/trunk-0001' })).toBe(true);
    expect(fetches).toBe(1);
    const down = ariLivenessChecker(async () => {
      throw new Error('ECONNREFUSED');
    });
    await expect(down({ id: 1, channelId: null })).rejects.toThrow('ECONNREFUSED');
  });
});
