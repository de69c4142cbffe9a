/**
 * Live calls first (src/campaign/load-gate.ts): the gate's readings, Node's real event-loop delay, and a
 * campaign manager that places one call a pass while its runtime is busy, batches again when it is not,
 * and never stops.
 */
import type { Db } from '../../src/store/db';
import { CampaignManager, type PlaceCall } from '../../src/campaign/manager';
import { HOLD_MS, LoadGate, holdLagMs, loadGateFor } from '../../src/campaign/load-gate';
import { dbTargets } from '../helpers/db';
import { makeCampaign, makeContacts, waitFor } from './fixtures';

describe('load gate readings', () => {
  test('busy when the last window ran later than the limit, with the reason; one reading per window', () => {
    const lags = [5, 35, 0];
    const g = new LoadGate({ maxLagMs: 20, windowMs: 100, lag: () => lags.shift() ?? 0 });
    const t0 = Date.now();
    expect(g.read(t0)).toEqual({ busy: false, lagMs: 0 }); // no window ended yet
    expect(g.read(t0 + 100)).toEqual({ busy: false, lagMs: 5 });
    expect(g.read(t0 + 150)).toEqual({ busy: false, lagMs: 5 }); // same window: no new reading
    expect(g.read(t0 + 200)).toEqual({
      busy: true,
      lagMs: 35,
      reason: 'the runtime is busy (event loop 35 ms late, limit 20 ms)',
    });
    expect(g.read(t0 + 300)).toEqual({ busy: false, lagMs: 0 });
    expect(g.held).toBe(1);
    expect(lags).toEqual([]);
  });

  test('busy while more queries wait for a database connection than the pool has', () => {
    let waiting = 10;
    const g = new LoadGate({ maxLagMs: 20, lag: () => 0, pool: () => ({ size: 10, waiting }) });
    expect(g.read().busy).toBe(false);
    waiting = 11;
    expect(g.read()).toMatchObject({
      busy: true,
      reason: 'the database is busy (11 queries waiting for 10 connections)',
    });
  });

  test("Node's own event-loop delay: a 60 ms block reads as busy in the next window, then clears", async () => {
    const g = new LoadGate({ maxLagMs: 20, windowMs: 1 });
    try {
      await new Promise((r) => setTimeout(r, 30)); // the histogram takes samples
      g.read(); // starts a fresh window
      const until = Date.now() + 60;
      while (Date.now() < until); // the event loop blocked
      await new Promise((r) => setTimeout(r, 15));
      const r = g.read();
      expect(r.busy).toBe(true);
      expect(r.lagMs).toBeGreaterThanOrEqual(40);
      // a quiet window reads as not busy (on a loaded machine the loop may be late now and then: a few tries)
      let quiet = false;
      for (let i = 0; i < 50 && !quiet; i++) {
        await new Promise((res) => setTimeout(res, 15));
        quiet = !g.read().busy;
      }
      expect(quiet).toBe(true);
    } finally {
      g.close();
    }
  });

  test('DIAL_HOLD_LAG_MS: default 20, 0 turns the gate off, nonsense falls back to the default', () => {
    expect(holdLagMs({})).toBe(20);
    expect(holdLagMs({ DIAL_HOLD_LAG_MS: '50' })).toBe(50);
    expect(holdLagMs({ DIAL_HOLD_LAG_MS: 'soon' })).toBe(20);
    expect(holdLagMs({ DIAL_HOLD_LAG_MS: '-3' })).toBe(20);
    expect(loadGateFor({}, { DIAL_HOLD_LAG_MS: '0' })).toBeUndefined();
    const g = loadGateFor({ poolLoad: () => ({ size: 1, waiting: 5 }) }, {});
    try {
      expect(g).toBeInstanceOf(LoadGate);
      expect(g!.read()).toMatchObject({ busy: true, reason: expect.stringContaining('5 queries waiting') });
    } finally {
      g?.close();
    }
  });
});

describe.each(dbTargets().map((t) => [t().name, t] as const))('campaign manager with a load gate on %s', (_n, make) => {
  const target = make();
  let db: Db;
  const managers: CampaignManager[] = [];
  beforeAll(async () => {
    db = await target.open();
  });
  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close()));
  });
  afterAll(async () => {
    await db?.close();
    await target.cleanup();
  });

  test('busy: one call a pass, passes HOLD_MS apart, counted in the status; free again: batches', async () => {
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 100, callsPerSecond: 1000 });
    await makeContacts(db, cid, 60, { prefix: '+1703' });
    let busy = true;
    const gate = new LoadGate({ maxLagMs: 20, windowMs: 0, lag: () => (busy ? 100 : 0) });
    const m = new CampaignManager({ db, worker: 'gated', tickMs: 5, idleMs: 20, loadGate: gate });
    managers.push(m);
    const placedAt: number[] = [];
    // calls placed by one pass are emitted in one synchronous run: the size of the largest such group
    let group = 0;
    let biggest = 0;
    m.on('call', (_c: PlaceCall) => {
      placedAt.push(Date.now());
      if (group === 0) queueMicrotask(() => (group = 0));
      biggest = Math.max(biggest, ++group);
    });
    await m.start(cid);
    await waitFor(() => placedAt.length >= 4, 5000);
    // each busy pass placed one call, and the next pass came HOLD_MS later
    expect(biggest).toBe(1);
    const gaps = placedAt.slice(1, 4).map((t, i) => t - placedAt[i]);
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(HOLD_MS - 5);
    const st = m.runnerOf(cid)!.status();
    expect(st.heldBack).toBeGreaterThanOrEqual(4);
    expect(st.holdReason).toBe('the runtime is busy (event loop 100 ms late, limit 20 ms)');
    // the runtime is free again: the rest goes in batches, and no pass is held any more
    busy = false;
    const held = st.heldBack!;
    await waitFor(() => placedAt.length === 60, 5000);
    expect(biggest).toBeGreaterThan(1);
    expect(m.runnerOf(cid)!.status().heldBack).toBeLessThanOrEqual(held + 1); // a pass already under way
  });
});
