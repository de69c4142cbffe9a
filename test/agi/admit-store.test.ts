/**
 * FastAGI admissions against the store (admitCall), many sessions at once: each bound to its own call by the
 * rules (token, open, not driven), a session whose values the database refuses fails alone, a call this
 * process originated is admitted on its local token check, and the statement reaches the calls table by
 * its key, statistics or not.
 */
import type { Db, Queryable } from '../../src/store/db';
import { admitCall } from '../../src/agi/admit';
import { forgetCallToken, hashCallToken, newCallToken, rememberCallToken } from '../../src/agi/call-token';
import { describeOnDbs } from '../helpers/db';

async function addCalls(q: Queryable, n: number, status = 'ringing'): Promise<Array<{ id: number; token: string }>> {
  const tokens = Array.from({ length: n }, () => newCallToken());
  const r = await q.query<{ id: number }>(
    `insert into calls (status, phone, agi_token_hash)
       select $1, '+15550100', h from unnest($2::text[]) with ordinality as t(h, i) order by i returning id`,
    [status, tokens.map(hashCallToken)],
  );
  return r.rows.map((row, i) => ({ id: row.id, token: tokens[i] }));
}

/** `db`, counting the statements sent through it. */
function counting(db: Db): { db: Db; sent: () => number } {
  let n = 0;
  const counted = Object.create(db) as Db;
  counted.query = ((...args: Parameters<Db['query']>) => {
    n++;
    return db.query(...args);
  }) as Db['query'];
  return { db: counted, sent: () => n };
}

describeOnDbs('FastAGI admissions', { poolSize: 4 }, (dbOf) => {
  test('ten sessions at once: each bound to its own call', async () => {
    const calls = await addCalls(dbOf(), 10);
    const { db } = counting(dbOf());
    const results = await Promise.all(
      calls.map((c, i) =>
        admitCall({ db, sessionId: `s-ten-${i}`, callId: c.id, token: c.token, channel: `PJSIP/t-${i}` }),
      ),
    );
    expect(results).toEqual(calls.map((c) => ({ ok: true, callId: c.id })));
    const rows = await dbOf().query<{ id: number; agi_session: string; status: string; channel_id: string }>(
      `select id, agi_session, status, channel_id from calls where id = any($1::int[]) order by id`,
      [calls.map((c) => c.id)],
    );
    expect(rows.rows.map((r) => [r.agi_session, r.status, r.channel_id])).toEqual(
      calls.map((_c, i) => [`s-ten-${i}`, 'in_progress', `PJSIP/t-${i}`]),
    );
  });

  test('at once: a wrong token, a closed call and a call named by two sessions are refused', async () => {
    const [good, twice, wrong] = await addCalls(dbOf(), 3);
    const [closed] = await addCalls(dbOf(), 1, 'completed');
    const { db } = counting(dbOf());
    const [a, b1, b2, c, d] = await Promise.all([
      admitCall({ db, sessionId: 's-good', callId: good.id, token: good.token }),
      admitCall({ db, sessionId: 's-twice-1', callId: twice.id, token: twice.token }),
      admitCall({ db, sessionId: 's-twice-2', callId: twice.id, token: twice.token }),
      admitCall({ db, sessionId: 's-wrong', callId: wrong.id, token: newCallToken() }),
      admitCall({ db, sessionId: 's-closed', callId: closed.id, token: closed.token }),
    ]);
    expect(a).toEqual({ ok: true, callId: good.id });
    // exactly one of the two sessions drives the call, the other is told it is driven
    const twiceResults = [b1, b2];
    expect(twiceResults.filter((r) => r.ok)).toHaveLength(1);
    expect(twiceResults.find((r) => !r.ok)).toMatchObject({ ok: false, reason: 'already_driven' });
    const winner = b1.ok ? 's-twice-1' : 's-twice-2';
    const row = await dbOf().query<{ agi_session: string }>(`select agi_session from calls where id = $1`, [twice.id]);
    expect(row.rows[0].agi_session).toBe(winner);
    expect(c).toMatchObject({ ok: false, reason: 'bad_token' });
    expect(d).toMatchObject({ ok: false, reason: 'call_closed' });
    const wrongRow = await dbOf().query<{ agi_session: string | null; status: string }>(
      `select agi_session, status from calls where id = $1`,
      [wrong.id],
    );
    expect(wrongRow.rows[0]).toEqual({ agi_session: null, status: 'ringing' });
  });

  test('a session whose values the database refuses fails alone; the others arriving with it are admitted', async () => {
    const calls = await addCalls(dbOf(), 3);
    const { db } = counting(dbOf());
    const [bad, ...good] = await Promise.all(
      calls.map((c, i) =>
        admitCall({
          db,
          sessionId: `s-nul-${i}`,
          callId: c.id,
          token: c.token,
          // a NUL byte: PostgreSQL refuses the whole statement's text array
          channel: i === 0 ? 'PJSIP/x\u0000y' : `PJSIP/ok-${i}`,
        }),
      ),
    );
    expect(good).toEqual(calls.slice(1).map((c) => ({ ok: true, callId: c.id })));
    expect(bad).toMatchObject({ ok: false, reason: 'store_unavailable' });
    const rows = await dbOf().query<{ agi_session: string | null }>(
      `select agi_session from calls where id = any($1::int[]) order by id`,
      [calls.map((c) => c.id)],
    );
    expect(rows.rows.map((r) => r.agi_session)).toEqual([null, 's-nul-1', 's-nul-2']);
  });

  test('a call this process originated (token remembered) is admitted on its local check', async () => {
    const [local, other] = await addCalls(dbOf(), 2);
    // the row's hash is not the token's: only the process's own check can admit it
    await dbOf().query(`update calls set agi_token_hash = null where id = $1`, [local.id]);
    rememberCallToken(local.id, local.token);
    try {
      const { db } = counting(dbOf());
      const [a, b] = await Promise.all([
        admitCall({ db, sessionId: 's-mine', callId: local.id, token: local.token }),
        admitCall({ db, sessionId: 's-other', callId: other.id, token: other.token }),
      ]);
      expect(a).toEqual({ ok: true, callId: local.id });
      expect(b).toEqual({ ok: true, callId: other.id });
      const row = await dbOf().query<{ agi_session: string }>(`select agi_session from calls where id = $1`, [
        local.id,
      ]);
      expect(row.rows[0].agi_session).toBe('s-mine');
    } finally {
      forgetCallToken(local.id);
    }
  });

  test('the calls pages an admission reads stay flat from 100 to 20,000 calls, without statistics', async () => {
    // one admission of 4 sessions inside a transaction, counting the calls pages it fetched
    const admitFour = (calls: Array<{ id: number; token: string }>, tag: string) =>
      dbOf().tx(async (q: Queryable) => {
        const read = async (): Promise<number> =>
          (await q.query<{ n: number }>(`select pg_stat_get_xact_blocks_fetched('calls'::regclass)::int as n`)).rows[0]
            .n;
        const before = await read();
        const results = await Promise.all(
          calls.map((c, i) => admitCall({ db: q as Db, sessionId: `${tag}-${i}`, callId: c.id, token: c.token })),
        );
        return { pages: (await read()) - before, ok: results.filter((r) => r.ok).length };
      });
    const small = await admitFour(await addCalls(dbOf(), 4), 's-small');
    expect(small.ok).toBe(4);
    expect(small.pages).toBeGreaterThan(0); // it counts
    await dbOf().query(
      `insert into calls (status, phone) select 'completed', '+1555' || g from generate_series(1, 20000) g`,
    );
    const big = await admitFour(await addCalls(dbOf(), 4), 's-big');
    expect(big.ok).toBe(4);
    // a key probe a call: a few index pages each, not the hundreds of pages of a scan of 20,000 calls
    expect(big.pages).toBeLessThanOrEqual(small.pages + 12);
  });
});
