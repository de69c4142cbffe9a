/**
 * The durable write path (src/store/outbox.ts) and the call-record writes over it (src/store/turns.ts):
 * ordered per call, retried through an outage until the database is back, bounded, journalled and
 * replayed after a crash, counted; a do-not-call request stored with its turn in one transaction; reads
 * that fail because the database is unreachable answer 503. On PGlite, and PostgreSQL when DATABASE_URL is set.
 */
import fs from 'fs';
import http from 'http';
import os from 'os';
import path from 'path';
import type { AddressInfo } from 'net';
import express from 'express';
import type { Db } from '../../src/store/db';
import { dbTargets, postgresTarget, type DbTarget } from '../helpers/db';
import { describeWith } from '../helpers/tools';
import { makeCampaign, makeContacts } from '../campaign/fixtures';
import { waitFor } from '../helpers/wait';
import {
  Outbox,
  isStoreBusy,
  isStoreUnavailable,
  outboxFor,
  forgetOutbox,
  writeStats,
  type CallWriteState,
} from '../../src/store/outbox';
import { storeDncTurn, storeFinalisation, storeSpokenTurn, storeTurn } from '../../src/store/turns';
import { createApiRouter } from '../../src/api/router';
import { appendTurn, finaliseTranscript } from '../../src/store/calls';
import { recordOutcome } from '../../src/store/campaigns';

const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

/** The real database behind a switch: while `down`, every query fails as an unreachable server does. */
function switchable(db: Db): Db & { down: boolean; attempts: number } {
  const s = {
    kind: db.kind,
    description: `${db.description}#switch`,
    down: false,
    attempts: 0,
    query: (sql: string, params?: unknown[]) => {
      s.attempts++;
      return s.down ? Promise.reject(refused()) : db.query(sql, params);
    },
    tx: <T>(fn: (q: import('../../src/store/db').Queryable) => Promise<T>) => {
      s.attempts++;
      return s.down ? Promise.reject(refused()) : db.tx(fn);
    },
    close: async () => undefined,
  };
  return s as unknown as Db & { down: boolean; attempts: number };
}

describe.each(dbTargets())('outbox on db target %#', (mk) => {
  let target: DbTarget;
  let db: Db;
  let campaignId: number;
  let contactIds: number[];
  const quiet = { log: () => undefined, baseDelayMs: 20, maxDelayMs: 100 };

  beforeAll(async () => {
    target = mk();
    db = await target.open();
    campaignId = await makeCampaign(db, { status: 'running' });
    await makeContacts(db, campaignId, 20, { prefix: '+1303' });
    contactIds = (
      await db.query<{ id: number }>('select id from contacts where campaign_id = $1 order by id', [campaignId])
    ).rows.map((r) => r.id);
  });
  afterAll(async () => {
    await db?.close();
    await target?.cleanup();
  });

  let n = 0;
  async function newCall(): Promise<{ id: number; phone: string; contactId: number }> {
    const contactId = contactIds[n++];
    const c = await db.query<{ phone: string }>(
      `update contacts set status = 'in_call' where id = $1 returning phone`,
      [contactId],
    );
    const r = await db.query<{ id: number }>(
      `insert into calls (campaign_id, contact_id, phone, status, direction) values ($1, $2, $3, 'in_progress', 'outbound') returning id`,
      [campaignId, contactId, c.rows[0].phone],
    );
    await db.query('update contacts set last_call_id = $2 where id = $1', [contactId, r.rows[0].id]);
    return { id: r.rows[0].id, phone: c.rows[0].phone, contactId };
  }

  test('classifies unreachable-database errors (retry) apart from bad writes (give up)', () => {
    expect(isStoreUnavailable(refused())).toBe(true);
    expect(isStoreUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isStoreUnavailable(new Error('timeout exceeded when trying to connect'))).toBe(true);
    expect(isStoreUnavailable(Object.assign(new Error('x'), { code: '57P01' }))).toBe(true);
    expect(isStoreUnavailable(Object.assign(new Error('x'), { code: '08006' }))).toBe(true);
    expect(isStoreUnavailable(Object.assign(new Error('wrap'), { cause: refused() }))).toBe(true);
    expect(isStoreUnavailable(Object.assign(new Error('violates foreign key'), { code: '23503' }))).toBe(false);
    expect(isStoreUnavailable(new Error('syntax error'))).toBe(false);
    expect(isStoreUnavailable(undefined)).toBe(false);
  });

  test('an outage: writes wait in order, are counted, say so per call, and are all stored once it is back', async () => {
    const sw = switchable(db);
    const ob = new Outbox(sw, quiet);
    const states: CallWriteState[] = [];
    ob.on('call', (s: CallWriteState) => states.push(s));
    const call = await newCall();
    sw.down = true;
    const t0 = ob.write({ kind: 'turn', callId: call.id, campaignId, turn: { seq: 0, botText: 'Hello' } });
    const t1 = ob.write({
      kind: 'turn',
      callId: call.id,
      campaignId,
      turn: { seq: 1, userText: 'Who is this?', botText: 'A reminder.' },
    });
    const fin = ob.write({ kind: 'finalise', callId: call.id, campaignId });
    const out = ob.write({
      kind: 'outcome',
      callId: call.id,
      campaignId,
      update: { callId: call.id, outcome: 'completed' },
    });
    await waitFor(() => ob.stats().down === 1 && sw.attempts >= 2, 5000, 'the outage noticed and probed');
    expect(ob.stats()).toMatchObject({ pending: 4, down: 1, dropped: 0, failed: 0, calls: 1 });
    expect(ob.pendingFor(call.id)).toBe(4);
    expect(states[0]).toMatchObject({ callId: call.id, campaignId, pending: 4, status: 'in_progress' });
    // nothing reached the database meanwhile
    expect((await db.query('select 1 from call_turns where call_id = $1', [call.id])).rows).toHaveLength(0);
    sw.down = false;
    await Promise.all([t0, t1, fin, out]);
    expect(ob.stats()).toMatchObject({ pending: 0, down: 0, written: 4, dropped: 0, failed: 0, calls: 0 });
    expect(states[states.length - 1]).toMatchObject({ callId: call.id, pending: 0 });
    const c = await db.query<{ status: string; transcript: string }>(
      'select status, transcript from calls where id = $1',
      [call.id],
    );
    // finalised after both turns (order kept): the transcript has them; the outcome closed the call after
    expect(c.rows[0]).toEqual({
      status: 'completed',
      transcript: 'Agent: Hello\nCaller: Who is this?\nAgent: A reminder.',
    });
    const k = await db.query<{ status: string }>('select status from contacts where id = $1', [call.contactId]);
    expect(k.rows[0].status).toBe('done');
    ob.close();
  });

  test('a write the database refuses for good is counted and given up; the next one of the call goes on', async () => {
    const ob = new Outbox(db, quiet);
    const call = await newCall();
    const bad = ob.write({ kind: 'turn', callId: 2147483000, turn: { seq: 0, botText: 'nobody' } }); // no such call (FK)
    const good = ob.write({ kind: 'turn', callId: call.id, turn: { seq: 0, botText: 'Hi' } });
    await expect(bad).rejects.toThrow();
    await good;
    expect(ob.stats()).toMatchObject({ failed: 1, written: 1, pending: 0 });
    ob.close();
  });

  test('bounded: past maxPending the oldest write is dropped (counted), never a do-not-call request', async () => {
    const sw = switchable(db);
    const ob = new Outbox(sw, { ...quiet, maxPending: 3 });
    const call = await newCall();
    sw.down = true;
    const dnc = ob.write({ kind: 'dnc', callId: call.id, dnc: { phone: call.phone, campaignId: null } });
    const w = [1, 2, 3, 4].map((seq) =>
      ob.write({ kind: 'turn', callId: call.id, turn: { seq, botText: `line ${seq}` } }).then(
        () => 'stored',
        () => 'dropped',
      ),
    );
    await waitFor(() => ob.stats().dropped >= 2, 5000, 'drops');
    expect(ob.stats()).toMatchObject({ pending: 3, dropped: 2 });
    sw.down = false;
    await dnc;
    expect(await Promise.all(w)).toEqual(['dropped', 'dropped', 'stored', 'stored']);
    expect((await db.query('select 1 from dnc where phone = $1', [call.phone])).rows).toHaveLength(1);
    ob.close();
  });

  test('a crash during an outage loses nothing: the journal is replayed by the next process', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-outbox-'));
    const journal = path.join(dir, 'outbox.jsonl');
    try {
      const sw = switchable(db);
      const first = new Outbox(sw, { ...quiet, journal });
      const call = await newCall();
      sw.down = true;
      void first.write({ kind: 'turn', callId: call.id, turn: { seq: 0, botText: 'Hello' } }).catch(() => undefined);
      void first
        .write(
          {
            kind: 'turn',
            callId: call.id,
            turn: { seq: 1, userText: 'Do not call me again', botText: 'Understood.' },
            dnc: { phone: call.phone, campaignId: null, source: 'conversation' },
          },
          { journal: true },
        )
        .catch(() => undefined);
      await waitFor(() => first.stats().retried >= 1, 5000, 'the first failed attempt');
      // the process dies here: nothing but the journal survives
      first.close();
      const lines = fs.readFileSync(journal, 'utf8').trim().split('\n');
      expect(lines.length).toBeGreaterThanOrEqual(2);
      fs.appendFileSync(journal, '{"add":"cut-by-the-cra'); // a line the crash cut in half
      const second = new Outbox(db, { ...quiet, journal });
      expect(second.replay(journal)).toBe(2);
      await waitFor(() => second.stats().pending === 0, 10000, 'the replayed writes');
      expect(second.stats()).toMatchObject({ replayed: 2, written: 2, failed: 0 });
      const t = await db.query<{ seq: number; action: string | null }>(
        'select seq from call_turns where call_id = $1 order by seq',
        [call.id],
      );
      expect(t.rows.map((r) => r.seq)).toEqual([0, 1]);
      expect((await db.query('select 1 from dnc where phone = $1', [call.phone])).rows).toHaveLength(1);
      // everything stored: the journal is empty again
      expect(fs.readFileSync(journal, 'utf8').trim()).toBe('');
      second.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a do-not-call request is stored with its turn in one transaction, before anything else of the call', async () => {
    const call = await newCall();
    const w = await storeDncTurn(
      db,
      { id: call.id, campaignId },
      { seq: 1, userText: 'Please do not call me again.', botText: 'Understood. Goodbye.', action: 'add_to_dnc' },
      { phone: call.phone, campaignId: null, reason: 'caller asked', source: 'conversation' },
    );
    expect(w.stored).toBe(true);
    const t = await db.query<{ action: string }>('select action from call_turns where call_id = $1 and seq = 1', [
      call.id,
    ]);
    expect(t.rows[0].action).toBe('add_to_dnc');
    const d = await db.query<{ source: string }>('select source from dnc where phone = $1', [call.phone]);
    expect(d.rows).toEqual([{ source: 'conversation' }]);
    // the contact is closed as dnc at once; the call's outcome later leaves it so
    const k = await db.query<{ status: string }>('select status from contacts where id = $1', [call.contactId]);
    expect(k.rows[0].status).toBe('dnc');
    await outboxFor(db).write({ kind: 'outcome', callId: call.id, update: { callId: call.id, outcome: 'completed' } });
    expect(
      (await db.query<{ status: string }>('select status from contacts where id = $1', [call.contactId])).rows[0]
        .status,
    ).toBe('dnc');
    // a bad number never reaches the database
    expect(() => storeDncTurn(db, { id: call.id }, { seq: 2 }, { phone: 'call me', campaignId: null })).toThrow(
      /not a phone number/,
    );
  });

  test('the transaction is whole: when the do-not-call insert fails, the turn is not stored either', async () => {
    const call = await newCall();
    const ob = new Outbox(db, quiet);
    // campaign 2147483000 does not exist: the dnc row violates its foreign key
    await expect(
      ob.write({
        kind: 'turn',
        callId: call.id,
        turn: { seq: 5, botText: 'x' },
        dnc: { phone: call.phone, campaignId: 2147483000 },
      }),
    ).rejects.toThrow();
    expect((await db.query('select 1 from call_turns where call_id = $1 and seq = 5', [call.id])).rows).toHaveLength(0);
    ob.close();
  });

  test('turns spoken, finalised: stored at once while the database is up; pending (not lost) while it is down', async () => {
    const sw = switchable(db);
    forgetOutbox(sw);
    const call = await newCall();
    const spoken = await storeSpokenTurn(sw, { id: call.id }, { seq: 0, botText: 'Hello there' }, 500);
    expect(spoken.stored).toBe(true);
    spoken.played({ seq: 0, botText: 'Hello there', timing: { playbackMs: 1200 } });
    await waitFor(() => outboxFor(sw).stats().pending === 0, 5000, 'the playback timing');
    sw.down = true;
    const t1 = await storeTurn(sw, { id: call.id }, { seq: 1, userText: 'Yes', botText: 'Great' }, 100);
    expect(t1.stored).toBe(false);
    const fin = await storeFinalisation(sw, { id: call.id }, 100);
    expect(fin.stored).toBe(false);
    expect(writeStats()).toMatchObject({ pending: 2, down: 1 });
    sw.down = false;
    await waitFor(() => outboxFor(sw).stats().pending === 0, 5000, 'the pending writes');
    const c = await db.query<{ transcript: string }>('select transcript from calls where id = $1', [call.id]);
    expect(c.rows[0].transcript).toBe('Agent: Hello there\nCaller: Yes\nAgent: Great');
    const t = await db.query<{ playback_ms: number }>(
      'select playback_ms from call_turns where call_id = $1 and seq = 0',
      [call.id],
    );
    expect(t.rows[0].playback_ms).toBe(1200);
    forgetOutbox(sw);
  });

  test('turns of many calls written at the same moment go as a few statements; a closed call and a bad turn fail alone', async () => {
    const ob = new Outbox(db, quiet);
    const calls = await Promise.all([1, 2, 3, 4, 5, 6].map(() => newCall()));
    const closed = calls[5];
    await db.query(`update calls set status = 'completed' where id = $1`, [closed.id]);
    const before = { ...ob.turns.counts };
    const writes = calls.flatMap((c) =>
      [0, 1, 2].map((seq) =>
        ob
          .write({
            kind: 'turn',
            callId: c.id,
            campaignId,
            turn: {
              seq,
              userText: `u${seq} "quoted" \\ é`,
              botText: `b${seq}`,
              confidence: 0.5,
              timing: { sttMs: 1.4, llmMs: 2 },
              engines: { stt: 'sim' },
            },
          })
          .then(
            () => 'ok',
            (e: { code?: string }) => e.code ?? 'error',
          ),
      ),
    );
    const results = await Promise.all(writes);
    expect(results).toEqual([...Array(15).fill('ok'), 'call_closed', 'call_closed', 'call_closed']);
    // per call in order (seq 0, 1, 2): 3 rounds of 6 calls, each round one statement (at most 2 in flight)
    const statements = ob.turns.counts.statements - before.statements;
    expect(ob.turns.counts.turns - before.turns).toBe(18);
    expect(statements).toBeLessThanOrEqual(6);
    const rows = await db.query<{
      call_id: number;
      seq: number;
      user_text: string;
      stt_ms: number;
      total_ms: number;
      engines: unknown;
    }>(
      'select call_id, seq, user_text, stt_ms, total_ms, engines from call_turns where call_id = any($1::int[]) order by call_id, seq',
      [calls.map((c) => c.id)],
    );
    expect(rows.rows).toHaveLength(15);
    expect(rows.rows[4]).toMatchObject({
      seq: 1,
      user_text: 'u1 "quoted" \\ é',
      stt_ms: 1,
      total_ms: 3,
      engines: { stt: 'sim' },
    });
    // a batch the database refuses (here: one turn with a seq that is no integer) is retried turn by turn
    const [a, b] = await Promise.all([newCall(), newCall()]);
    const mixed = await Promise.all([
      ob.write({ kind: 'turn', callId: a.id, campaignId, turn: { seq: 0, botText: 'fine' } }).then(
        () => 'ok',
        () => 'refused',
      ),
      ob.write({ kind: 'turn', callId: b.id, campaignId, turn: { seq: 0.5, botText: 'bad' } }).then(
        () => 'ok',
        () => 'refused',
      ),
    ]);
    expect(mixed).toEqual(['ok', 'refused']);
    expect((await db.query('select 1 from call_turns where call_id = $1', [a.id])).rows).toHaveLength(1);
    ob.close();
  });

  test('a finalisation and a call outcome are one statement each (no transaction), with the same transcript', async () => {
    let statements = 0;
    const counted = {
      ...db,
      kind: db.kind,
      description: db.description,
      query: (sql: string, params?: unknown[]) => (statements++, db.query(sql, params)),
      tx: () => Promise.reject(new Error('no transaction expected')),
      close: async () => undefined,
    } as unknown as Db;
    const call = await newCall();
    await appendTurn(db, call.id, { seq: 0, botText: 'Hello there' });
    await appendTurn(db, call.id, { seq: 1, userText: '', botText: 'Are you there?' });
    await appendTurn(db, call.id, { seq: 2, userText: 'Yes', botText: 'Great' });
    const text = 'Agent: Hello there\nAgent: Are you there?\nCaller: Yes\nAgent: Great';
    expect(await finaliseTranscript(counted, call.id)).toBe(text);
    expect(statements).toBe(1);
    statements = 0;
    const r = await recordOutcome(counted, { callId: call.id, outcome: 'completed', hangupCause: 16 });
    expect(statements).toBe(1);
    expect(r).toMatchObject({
      closed: true,
      status: 'completed',
      call: { id: call.id, campaignId, contactId: call.contactId, hangupCause: 16 },
      contact: { id: call.contactId, status: 'done' },
    });
    expect(r.call?.transcript).toEqual([
      { seq: 0, userText: null, botText: 'Hello there' },
      { seq: 1, userText: '', botText: 'Are you there?' },
      { seq: 2, userText: 'Yes', botText: 'Great' },
    ]);
    const row = await db.query<{ transcript: string; status: string }>(
      'select transcript, status from calls where id = $1',
      [call.id],
    );
    expect(row.rows[0]).toEqual({ transcript: text, status: 'completed' });
    // a second outcome changes nothing and says so, still one statement
    statements = 0;
    const again = await recordOutcome(counted, { callId: call.id, outcome: 'failed' });
    expect(statements).toBe(1);
    expect(again).toMatchObject({ closed: false, status: 'completed' });
    expect(again.call?.transcript).toBeUndefined();
    expect(again.contact).toBeUndefined();
  });

  test('reads during an outage answer 503 JSON with Retry-After (not 500)', async () => {
    const sw = switchable(db);
    const app = express();
    app.use(createApiRouter({ getDb: async () => sw, control: () => undefined, token: '', log: () => undefined }));
    const server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      sw.down = true;
      const r = await fetch(`${base}/api/v1/calls?limit=1`);
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toBe('5');
      expect(await r.json()).toEqual({
        error: 'the database is unreachable right now; try again shortly',
        code: 'store_unavailable',
      });
      sw.down = false;
      expect((await fetch(`${base}/api/v1/calls?limit=1`)).status).toBe(200);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

test('a call whose writes wait is a valid v1 status event with writePending', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { writePendingEvent } = require('../../src/events/builders') as typeof import('../../src/events/builders');
  const e = writePendingEvent({ callId: 7, campaignId: 2, pending: 3, status: 'in_progress' }, 0);
  expect(e).toEqual({
    v: 1,
    type: 'status',
    ts: '1970-01-01T00:00:00.000Z',
    callId: 7,
    campaignId: 2,
    status: 'in_progress',
    detail: '3 write(s) waiting for the database',
    writePending: true,
  });
  expect(writePendingEvent({ callId: 7, campaignId: null, pending: 0, status: 'completed' })).toMatchObject({
    status: 'completed',
    writePending: false,
    detail: 'writes stored',
  });
});

describeWith('PostgreSQL (DATABASE_URL)', !!process.env.DATABASE_URL)('a full, busy pool (PostgreSQL)', () => {
  let target: DbTarget;
  let db: Db;
  let release: () => void = () => undefined;
  const held = () =>
    new Promise<void>((ready) => {
      // the pool's one connection, held in a transaction until release()
      void db.tx(
        () =>
          new Promise<void>((r) => {
            release = r;
            ready();
          }),
      );
    });

  beforeAll(async () => {
    target = postgresTarget(process.env.DATABASE_URL!);
    db = await target.open({ poolSize: 1, poolWaitMs: 150 });
  });
  afterAll(async () => {
    release();
    await db?.close();
    await target?.cleanup();
  });

  test('an acquire timeout says the database is busy (not unreachable), is retried, and no outage is declared', async () => {
    const campaignId = await makeCampaign(db, { status: 'running' });
    const c = await db.query<{ id: number }>(
      `insert into calls (campaign_id, phone, status, direction) values ($1, '+13035550100', 'in_progress', 'outbound') returning id`,
      [campaignId],
    );
    const callId = c.rows[0].id;
    await held();
    const err = await db.query('select 1').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as Error).message).toMatch(
      /^database busy: no connection free within 150 ms \(1 connections in use, \d+ queries waiting\)$/,
    );
    expect((err as { code?: string }).code).toBe('store_busy');
    expect(isStoreBusy(err)).toBe(true);
    expect(isStoreUnavailable(err)).toBe(true); // retried
    expect(isStoreBusy(refused())).toBe(false);
    expect(db.poolLoad?.()).toMatchObject({ size: 1, busy: 1 });

    const lines: string[] = [];
    const ob = new Outbox(db, { log: (l) => lines.push(l), baseDelayMs: 20, maxDelayMs: 100 });
    // turns have their own connections: stored while the pool is full
    await expect(ob.write({ kind: 'turn', callId, turn: { seq: 0, botText: 'Hello' } })).resolves.toMatchObject({
      seq: 0,
    });
    // the transcript waits for the pool: busy, retried, no outage
    const fin = ob.write({ kind: 'finalise', callId });
    await waitFor(() => ob.stats().retried > 0, 5000, 'a busy retry');
    expect(ob.stats()).toMatchObject({ down: 0, pending: 1 });
    expect(ob.waitReason()).toMatch(
      /^database busy \(1 of 1 connections in use, \d+ queries waiting, 1 write\(s\) pending\)/,
    );
    release();
    await expect(fin).resolves.toBe('Agent: Hello');
    expect(lines.some((l) => /database busy: no connection free within 150 ms/.test(l))).toBe(true);
    expect(lines.filter((l) => /unreachable|is back/.test(l))).toEqual([]);
    expect(ob.stats()).toMatchObject({ down: 0, pending: 0, failed: 0 });
    ob.close();
  });

  test('a read while the pool is busy answers 503 store_busy', async () => {
    const app = express();
    app.use(createApiRouter({ getDb: async () => db, control: () => undefined, token: '', log: () => undefined }));
    const server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      await held();
      const r = await fetch(`${base}/api/v1/calls?limit=1`);
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toBe('1');
      expect(await r.json()).toEqual({
        error: 'the database is busy right now (no connection free); try again shortly',
        code: 'store_busy',
      });
      release();
      expect((await fetch(`${base}/api/v1/calls?limit=1`)).status).toBe(200);
    } finally {
      release();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
