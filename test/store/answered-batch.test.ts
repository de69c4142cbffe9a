/**
 * Answered marks gathered across calls (markAnsweredSoon, through recordOutcome): what many calls ask
 * together is one statement, each gets its own campaign, a closed call is not reopened.
 */
import type { Db } from '../../src/store/db';
import { answeredBatchCounts } from '../../src/store/calls';
import { recordOutcome } from '../../src/store/campaigns';
import { StatementBatcher } from '../../src/store/batch';
import { describeOnDbs } from '../helpers/db';

async function addCall(db: Db, campaignId: number | null, status = 'ringing'): Promise<number> {
  const r = await db.query<{ id: number }>(
    `insert into calls (status, phone, campaign_id) values ($1, '+15550100', $2) returning id`,
    [status, campaignId],
  );
  return r.rows[0].id;
}

describeOnDbs('answered marks', { poolSize: 4 }, (dbOf) => {
  let campaignA: number;
  let campaignB: number;
  beforeAll(async () => {
    const ids = await dbOf().query<{ id: number }>(
      `insert into campaigns (name) values ('answered-a'), ('answered-b') returning id`,
    );
    [campaignA, campaignB] = ids.rows.map((r) => r.id);
  });

  test('twelve calls answered together: two statements at most, each call marked with its own campaign', async () => {
    const db = dbOf();
    const calls = await Promise.all(
      Array.from({ length: 12 }, (_x, i) => addCall(db, i % 3 === 2 ? null : i % 2 ? campaignB : campaignA)),
    );
    // the store as recordOutcome sees it, counting the statements it is sent
    let sent = 0;
    const counted = Object.create(db) as Db;
    counted.query = ((...args: Parameters<Db['query']>) => {
      sent++;
      return db.query(...args);
    }) as Db['query'];
    const results = await Promise.all(calls.map((callId) => recordOutcome(counted, { callId, outcome: 'answered' })));
    // one statement per call before: 12
    expect(sent).toBeLessThanOrEqual(2);
    expect(answeredBatchCounts(counted)).toEqual({ statements: sent, items: 12 });
    results.forEach((r, i) => {
      expect(r).toEqual({
        closed: false,
        status: 'answered',
        campaignId: i % 3 === 2 ? null : i % 2 ? campaignB : campaignA,
      });
    });
    const rows = await db.query<{ id: number; status: string; answered: boolean }>(
      `select id, status, answered_at is not null as answered from calls where id = any($1::int[]) order by id`,
      [calls],
    );
    expect(rows.rows.map((r) => [r.status, r.answered])).toEqual(calls.map(() => ['in_progress', true]));
  });

  test('a closed call stays closed, an unknown call answers null, the same call twice is one mark', async () => {
    const db = dbOf();
    const closed = await addCall(db, campaignA, 'completed');
    const open = await addCall(db, campaignB);
    const [a, b, c, d] = await Promise.all([
      recordOutcome(db, { callId: closed, outcome: 'answered' }),
      recordOutcome(db, { callId: 2_000_000_000, outcome: 'answered' }),
      recordOutcome(db, { callId: open, outcome: 'answered' }),
      recordOutcome(db, { callId: open, outcome: 'answered' }),
    ]);
    expect(a.campaignId).toBe(campaignA);
    expect(b.campaignId).toBeNull();
    expect(c.campaignId).toBe(campaignB);
    expect(d.campaignId).toBe(campaignB);
    const rows = await db.query<{ id: number; status: string; answered: boolean }>(
      `select id, status, answered_at is not null as answered from calls where id = any($1::int[]) order by id`,
      [[closed, open]],
    );
    expect(rows.rows.map((r) => [r.status, r.answered])).toEqual([
      ['completed', false],
      ['in_progress', true],
    ]);
  });
});

describe('StatementBatcher', () => {
  test('what is asked while a statement is in flight goes together in the next; results in order', async () => {
    const sent: number[][] = [];
    let release!: () => void;
    const b = new StatementBatcher<number, string>(async (items) => {
      sent.push(items);
      if (sent.length === 1) await new Promise<void>((r) => (release = r));
      return items.map((i) => `r${i}`);
    });
    const first = b.submit(1);
    await new Promise((r) => setImmediate(r)); // the first statement is in flight
    const rest = [2, 3, 4].map((i) => b.submit(i));
    await new Promise((r) => setImmediate(r));
    expect(sent).toEqual([[1]]);
    release();
    expect(await first).toBe('r1');
    expect(await Promise.all(rest)).toEqual(['r2', 'r3', 'r4']);
    expect(sent).toEqual([[1], [2, 3, 4]]);
    expect(b.counts).toEqual({ statements: 2, items: 4 });
  });

  test('a failed statement fails each of its requests, and the next statement still goes', async () => {
    let n = 0;
    const b = new StatementBatcher<number, number>(async (items) => {
      if (n++ === 0) throw new Error('database unreachable');
      return items;
    });
    const failed = [b.submit(1), b.submit(2)];
    for (const p of failed) await expect(p).rejects.toThrow('database unreachable');
    expect(await b.submit(3)).toBe(3);
  });

  test('a refused statement is sent again request by request (only the bad one fails); unreachable fails all', async () => {
    const sent: number[][] = [];
    const b = new StatementBatcher<number, number>(
      async (items) => {
        sent.push(items);
        throw Object.assign(new Error(items.includes(99) ? 'bad value' : 'unreachable'), {
          unreachable: !items.includes(99),
        });
      },
      {
        maxInFlight: 1,
        alone: async (i) => {
          if (i === 99) throw new Error('bad value 99');
          return i * 10;
        },
        failsAll: (err) => (err as { unreachable?: boolean }).unreachable === true,
      },
    );
    const r = await Promise.allSettled([b.submit(1), b.submit(99), b.submit(3)]);
    expect(r.map((x) => (x.status === 'fulfilled' ? x.value : (x.reason as Error).message))).toEqual([
      10,
      'bad value 99',
      30,
    ]);
    const down = await Promise.allSettled([b.submit(4), b.submit(5)]);
    expect(down.map((x) => x.status)).toEqual(['rejected', 'rejected']);
    expect(sent).toEqual([
      [1, 99, 3],
      [4, 5],
    ]);
  });

  test('a statement answering the wrong number of results rejects each request (none left waiting)', async () => {
    const b = new StatementBatcher<number, number>(async () => [1]);
    const r = await Promise.allSettled([b.submit(1), b.submit(2)]);
    expect(r.map((x) => x.status)).toEqual(['rejected', 'rejected']);
    expect((r[0] as PromiseRejectedResult).reason.message).toMatch(/a statement for 2 requests answered 1 results/);
  });
});
