/**
 * The turn writes' latency rules (src/store/outbox.ts TurnBatcher, src/store/db.ts lanes): a lone turn on
 * an idle lane goes at once (no wait for the next event-loop turn); only what arrives while every
 * connection is busy waits and goes as one statement; a spoken turn's write-ahead (the call waits for it)
 * goes before the background rewrites (playback timing), which ride along with the next write-ahead and go
 * alone only when the lane is idle and none came within BACKGROUND_HOLD_MS; the lane's connections are open
 * before the first turn. A fake database holds each statement open, so the
 * order is seen exactly; the lane test needs PostgreSQL (DATABASE_URL).
 */
import type { Db, QueryResult } from '../../src/store/db';
import { openDb } from '../../src/store/db';
import { BACKGROUND_HOLD_MS, Outbox, TurnBatcher } from '../../src/store/outbox';
import { describeWith } from '../helpers/tools';
import { waitFor } from '../helpers/wait';

const until = (cond: () => boolean, ms: number) => waitFor(cond, ms, 'the next statement', 5);

interface Sent {
  turns: string[];
  done(): void;
}

/** A database whose turn statements each wait until the test lets them finish (`done`). */
function heldDb(): { db: Db; sent: Sent[] } {
  const sent: Sent[] = [];
  const query = <T>(_sql: string, params?: unknown[]): Promise<QueryResult<T>> => {
    const rows = JSON.parse(String(params?.[0])) as Array<{ call_id: number; seq: number }>;
    return new Promise((resolve) => {
      sent.push({
        turns: rows.map((r) => `${r.call_id}:${r.seq}`),
        done: () => resolve({ rows: rows as unknown as T[], rowCount: rows.length }),
      });
    });
  };
  const db = {
    kind: 'pg',
    description: 'held',
    query,
    tx: () => Promise.reject(new Error('no transactions here')),
    close: async () => undefined,
    lane: () => ({ query }),
  } as unknown as Db;
  return { db, sent };
}

const turn = (callId: number, seq = 0) => ({ kind: 'turn' as const, callId, turn: { seq, botText: `t${seq}` } });

test('a lone turn on an idle lane is sent at once, not on the next event-loop turn', async () => {
  const { db, sent } = heldDb();
  const b = new TurnBatcher(db, 2);
  const p = b.write(turn(1));
  await Promise.resolve(); // the microtasks of this run only: no timer, no setImmediate
  expect(sent.map((s) => s.turns)).toEqual([['1:0']]);
  sent[0].done();
  await expect(p).resolves.toMatchObject({ call_id: 1, seq: 0 });
});

test('what arrives while every connection is busy goes as one statement when one is free', async () => {
  const { db, sent } = heldDb();
  const b = new TurnBatcher(db, 2);
  const all = [b.write(turn(1))];
  await Promise.resolve();
  all.push(b.write(turn(2)));
  await Promise.resolve();
  expect(sent.map((s) => s.turns)).toEqual([['1:0'], ['2:0']]);
  for (const id of [3, 4, 5]) all.push(b.write(turn(id)));
  await Promise.resolve();
  expect(sent).toHaveLength(2); // both connections busy: they wait
  sent[0].done();
  await until(() => sent.length === 3, 2000);
  expect(sent[2].turns).toEqual(['3:0', '4:0', '5:0']);
  sent[1].done();
  sent[2].done();
  await Promise.all(all);
  expect(b.counts).toEqual({ statements: 3, turns: 5 });
});

test('background rewrites wait on an idle lane for a write-ahead, and ride along in its statement', async () => {
  const { db, sent } = heldDb();
  const b = new TurnBatcher(db, 2);
  const all = [b.write(turn(1, 1), false), b.write(turn(2, 1), false)];
  await Promise.resolve();
  expect(sent).toHaveLength(0); // held: a write-ahead may come to take them along
  all.push(b.write(turn(3, 2)));
  await Promise.resolve();
  // the write-ahead goes at once, first in its statement; the rewrites ride along: one commit for three
  expect(sent.map((s) => s.turns)).toEqual([['3:2', '1:1', '2:1']]);
  sent[0].done();
  await Promise.all(all);
  expect(b.counts).toEqual({ statements: 1, turns: 3 });
});

describe('with no write-ahead coming', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  test('the rewrites go alone after BACKGROUND_HOLD_MS, and never while a statement is in flight', async () => {
    const { db, sent } = heldDb();
    const b = new TurnBatcher(db, 2);
    const all = [b.write(turn(1, 1), false)];
    await jest.advanceTimersByTimeAsync(BACKGROUND_HOLD_MS - 1);
    expect(sent).toHaveLength(0);
    all.push(b.write(turn(2, 1), false)); // the same wait: the oldest one's
    await jest.advanceTimersByTimeAsync(1);
    expect(sent.map((s) => s.turns)).toEqual([['1:1', '2:1']]);
    // a write-ahead in flight, a rewrite held past its time: it waits for the lane to be idle
    all.push(b.write(turn(5, 0)));
    await jest.advanceTimersByTimeAsync(0);
    all.push(b.write(turn(4, 1), false));
    sent[0].done();
    await jest.advanceTimersByTimeAsync(BACKGROUND_HOLD_MS * 4);
    expect(sent.map((s) => s.turns)).toEqual([['1:1', '2:1'], ['5:0']]);
    sent[1].done();
    await jest.advanceTimersByTimeAsync(0);
    expect(sent.map((s) => s.turns)).toEqual([['1:1', '2:1'], ['5:0'], ['4:1']]);
    sent[2].done();
    await Promise.all(all);
    expect(b.counts).toEqual({ statements: 3, turns: 4 });
  });
});

test("a call's write-ahead behind its own background rewrite makes that rewrite urgent", async () => {
  const { db, sent } = heldDb();
  const ob = new Outbox(db, { log: () => undefined });
  // a write-ahead of another call in flight: the lane is not idle
  const others = [10];
  const all: Array<Promise<unknown>> = [];
  for (const id of others) {
    all.push(ob.write(turn(id, 1)));
    await until(() => sent.length === 1, 2000);
  }
  all.push(ob.write(turn(2, 1), { background: true })); // waits: the lane is not idle
  await Promise.resolve();
  expect(sent.map((s) => s.turns)).toEqual(others.map((id) => [`${id}:1`]));
  // call 2's next turn, which a caller waits for, queued behind call 2's rewrite: that one goes now
  all.push(ob.write(turn(2, 2)));
  await until(() => sent.length === others.length + 1, 2000);
  expect(sent[others.length].turns).toEqual(['2:1']);
  sent[others.length].done();
  await until(() => sent.length === others.length + 2, 2000);
  expect(sent[others.length + 1].turns).toEqual(['2:2']);
  for (const s of sent) s.done();
  await Promise.all(all);
  ob.close();
});

describeWith('PostgreSQL (DATABASE_URL)', !!process.env.DATABASE_URL)('the turn lane (PostgreSQL)', () => {
  test('its connections are open before its first statement and stay open when idle', async () => {
    const db = await openDb({ url: process.env.DATABASE_URL, migrate: false });
    try {
      db.lane!('turns-test', 3);
      const pool = (
        db as unknown as {
          lanes: Map<string, { totalCount: number; idleCount: number; options: { idleTimeoutMillis: number } }>;
        }
      ).lanes.get('turns-test')!;
      await until(() => pool.idleCount === 3, 5000);
      expect(pool.totalCount).toBe(3);
      expect(pool.options.idleTimeoutMillis).toBe(0);
    } finally {
      await db.close();
    }
  });
});
