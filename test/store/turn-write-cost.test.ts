/**
 * A turn write's cost does not grow with the calls table. The turn statement checks each row's call is open; as
 * a semi join the planner hashed the whole calls table on every turn write when the table had no statistics
 * (autovacuum off, or not run yet): at 10,000 calls, ~130 pages and 450 writes/s on one connection. It now probes
 * each row's call by primary key. Counted by PostgreSQL itself: the `calls` pages one write fetches
 * (pg_stat_get_xact_blocks_fetched inside the write's transaction, read before and after; no clock).
 */
import type { Db, Queryable } from '../../src/store/db';
import { appendTurns } from '../../src/store/calls';
import { describeOnDbs } from '../helpers/db';

async function addCalls(db: Db, n: number, status = 'in_progress'): Promise<number[]> {
  const r = await db.query<{ id: number }>(
    `insert into calls (status, phone) select $2, '+1555' || g from generate_series(1, $1::int) g returning id`,
    [n, status],
  );
  return r.rows.map((x) => x.id);
}

describeOnDbs('turn writes', { poolSize: 2 }, (dbOf) => {
  /** pages of `calls` one write of a turn to each of `ids` fetches, and the rows it stored */
  const write = (ids: number[], seq: number): Promise<{ pages: number; stored: number }> =>
    dbOf().tx(async (q: Queryable) => {
      const read = async (): Promise<number> =>
        (await q.query<{ n: number }>(`select pg_stat_get_xact_blocks_fetched('calls'::regclass)::int as n`)).rows[0].n;
      const before = await read();
      const rows = await appendTurns(
        q,
        ids.map((callId) => ({ callId, turn: { seq, userText: 'hello', botText: 'hi there' } })),
      );
      return { pages: (await read()) - before, stored: rows.filter(Boolean).length };
    });

  test('the calls pages a write reads stay flat from 100 to 20,000 calls in the table, statistics or not', async () => {
    const first = await addCalls(dbOf(), 100);
    const small = await write(first.slice(0, 4), 1);
    expect(small.stored).toBe(4);
    expect(small.pages).toBeGreaterThan(0); // it counts
    await addCalls(dbOf(), 19_900, 'completed');
    const late = await addCalls(dbOf(), 4);
    // no statistics: the planner's default guesses (what a table gets before autovacuum, or without it)
    const big = await write(late, 1);
    expect(big.stored).toBe(4);
    // one primary-key probe a row: an index path or two per call, not the ~250 pages of a scan of 20,000 calls
    expect(big.pages).toBeLessThanOrEqual(small.pages + 8);
    await dbOf().query('analyze calls');
    const analysed = await write(late, 2);
    expect(analysed.stored).toBe(4);
    expect(analysed.pages).toBeLessThanOrEqual(small.pages + 8);
  });

  test('a turn for a closed call is not stored, next to one that is', async () => {
    const [open] = await addCalls(dbOf(), 1);
    const [closed] = await addCalls(dbOf(), 1, 'completed');
    const rows = await appendTurns(dbOf(), [
      { callId: open, turn: { seq: 1, userText: 'a' } },
      { callId: closed, turn: { seq: 1, userText: 'b' } },
      { callId: 999_999_999, turn: { seq: 1, userText: 'c' } },
    ]);
    expect(rows.map((r) => r?.call_id ?? null)).toEqual([open, null, null]);
    const n = await dbOf().query<{ n: number }>('select count(*)::int as n from call_turns where call_id = any($1)', [
      [open, closed],
    ]);
    expect(n.rows[0].n).toBe(1);
  });
});
