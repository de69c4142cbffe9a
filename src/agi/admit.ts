/**
 * Admission of a FastAGI session to the call it names (see call-token.ts for the rules): checks the
 * call's token, that the call is open and not driven by another session, and binds the session to it
 * in one statement. Inbound sessions get a fresh record. No Node-RED import.
 */
import { namedStatement, type Queryable } from '../store/db';
import { createInboundCall, FINAL_STATUSES } from '../store/calls';
import { errorMessage } from '../util/errors';
import { hashCallToken, localCallTokenHash, sameHash } from './call-token';
import { sessionsByCallId } from './registry';
import { StatementBatcher } from '../store/batch';
import { isStoreUnavailable } from '../store/outbox';

export type AdmitRefusal = 'bad_token' | 'unknown_call' | 'call_closed' | 'already_driven' | 'store_unavailable';

export type AdmitResult =
  | { ok: true; callId?: number | string; created?: boolean; warning?: string }
  | { ok: false; reason: AdmitRefusal; message: string };

const finalList = FINAL_STATUSES.map((s) => `'${s}'`).join(',');

/** Admit a session to its call: open, not driven, token matches (or this process already checked it). */
const ADMIT_SQL = namedStatement(
  'aid_admit_session',
  `update calls set agi_session = $2, status = 'in_progress', answered_at = coalesce(answered_at, now()),
          channel_id = coalesce($4, channel_id), agi_uniqueid = coalesce($5, agi_uniqueid),
          amd_status = coalesce($6, amd_status), amd_cause = coalesce($7, amd_cause)
        where id = $1 and status not in (${finalList}) and agi_session is null
          and (agi_token_hash = $3 or $8::boolean)
        returning id`,
);

/**
 * ADMIT_SQL for many sessions in one statement (the sessions that arrive while one is in flight, at hundreds
 * of calls a second). A call named twice in one statement is updated once: the session it names in
 * `agi_session` afterwards is the one admitted. The rows are locked in key order first (as the batched
 * answered marks do: two statements locking several calls never deadlock), found by key, statistics or not.
 */
const ADMIT_MANY_SQL = namedStatement(
  'aid_admit_sessions',
  `with l as (select id from calls where id = any($1::int[]) order by id for no key update)
   update calls c set agi_session = t.session, status = 'in_progress', answered_at = coalesce(c.answered_at, now()),
          channel_id = coalesce(t.channel, c.channel_id), agi_uniqueid = coalesce(t.uniqueid, c.agi_uniqueid),
          amd_status = coalesce(t.amd_status, c.amd_status), amd_cause = coalesce(t.amd_cause, c.amd_cause)
     from l, unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[])
          as t(id, session, hash, channel, uniqueid, amd_status, amd_cause, mine)
    where c.id = l.id and c.id = t.id and c.status not in (${finalList}) and c.agi_session is null
      and (c.agi_token_hash = t.hash or t.mine)
    returning c.id, c.agi_session`,
);

interface AdmitRow {
  id: number;
  session: string;
  hash: string;
  channel: string | null;
  uniqueid: string | null;
  amdStatus: string | null;
  amdCause: string | null;
  mine: boolean;
}

const admitBatchers = new WeakMap<Queryable, StatementBatcher<AdmitRow, boolean>>();

/** ADMIT_SQL for one session: whether it was bound to its call. */
async function admitOne(db: Queryable, x: AdmitRow): Promise<boolean> {
  const r = await db.query<{ id: number }>(ADMIT_SQL, [
    x.id,
    x.session,
    x.hash,
    x.channel,
    x.uniqueid,
    x.amdStatus,
    x.amdCause,
    x.mine,
  ]);
  return r.rows.length > 0;
}

/**
 * Bind a session to its call (ADMIT_SQL's rules), in one statement with the others arriving meanwhile; a
 * statement refused for one session's values (not the database being down) is sent again session by
 * session, so only that one fails.
 */
function admitSoon(db: Queryable, row: AdmitRow): Promise<boolean> {
  if (!Number.isInteger(row.id) || row.id <= 0 || row.id > 2147483647) return admitOne(db, row);
  let b = admitBatchers.get(db);
  if (!b) {
    b = new StatementBatcher(
      async (rows: AdmitRow[]) => {
        const r = await db.query<{ id: number; agi_session: string }>(ADMIT_MANY_SQL, [
          rows.map((x) => x.id),
          rows.map((x) => x.session),
          rows.map((x) => x.hash),
          rows.map((x) => x.channel),
          rows.map((x) => x.uniqueid),
          rows.map((x) => x.amdStatus),
          rows.map((x) => x.amdCause),
          rows.map((x) => x.mine),
        ]);
        const admitted = new Set(r.rows.map((x) => `${x.id}\u0000${x.agi_session}`));
        return rows.map((x) => admitted.has(`${x.id}\u0000${x.session}`));
      },
      { maxInFlight: 2, alone: (x) => admitOne(db, x), failsAll: isStoreUnavailable },
    );
    admitBatchers.set(db, b);
  }
  return b.submit(row);
}

/** Statements and sessions of a store's admission batcher so far (tests, the bench). */
export function admitBatchCounts(db: Queryable): { statements: number; items: number } {
  return { ...(admitBatchers.get(db)?.counts ?? { statements: 0, items: 0 }) };
}

export interface AdmitInput {
  /** The store, when the fastagi-in node has one. */
  db?: Queryable;
  /** The node has a store but it cannot be opened now (then only calls originated here are admitted). */
  storeDown?: boolean;
  sessionId: string;
  /** CALL_ID as the session named it; undefined: an inbound call. */
  callId?: number | string;
  /** CALL_TOKEN as the session presented it (GET VARIABLE). */
  token?: string;
  inbound?: {
    phone?: string | null;
    callerId?: string | null;
    campaignId?: number | null;
  };
  channel?: string | null;
  uniqueid?: string | null;
  amdStatus?: string | null;
  amdCause?: string | null;
}

/**
 * Decide whether a session may drive the call it names, and bind it (status in_progress, agi_session).
 * Inbound: a fresh record. Never throws: a store failure admits only a call this process itself
 * originated (its token checked here), else refuses `store_unavailable`.
 */
export async function admitCall(a: AdmitInput): Promise<AdmitResult> {
  if (a.callId === undefined) {
    if (!a.db)
      return a.storeDown ? { ok: true, warning: 'the store is unavailable: inbound call not recorded' } : { ok: true };
    try {
      const row = await createInboundCall(a.db, {
        phone: a.inbound?.phone ?? null,
        callerId: a.inbound?.callerId ?? null,
        channel: a.channel ?? null,
        uniqueid: a.uniqueid ?? null,
        campaignId: a.inbound?.campaignId ?? null,
        agiSession: a.sessionId,
      });
      return { ok: true, callId: row.id, created: true };
    } catch (err) {
      // The caller is on the line: the conversation goes on without a record rather than dropping them.
      return { ok: true, warning: `could not create the inbound call record: ${errorMessage(err)}` };
    }
  }
  const key = String(a.callId);
  const token = a.token ?? '';
  const presented = token ? hashCallToken(token) : '';
  const mineHash = localCallTokenHash(key);
  const mine = mineHash ? { hash: mineHash } : undefined;
  if (mine && presented && !sameHash(mine.hash, presented))
    return { ok: false, reason: 'bad_token', message: `call ${key}: wrong CALL_TOKEN` };
  if (!presented) return { ok: false, reason: 'bad_token', message: `call ${key}: no CALL_TOKEN on the channel` };
  const others = sessionsByCallId(key).filter((s) => s.id !== a.sessionId && !s.hungUp);
  if (mine && others.length)
    return { ok: false, reason: 'already_driven', message: `call ${key} is already driven by another session` };

  const numeric = typeof a.callId === 'number' ? a.callId : undefined;
  if (!a.db || numeric === undefined) {
    if (mine)
      return {
        ok: true,
        callId: a.callId,
        ...(a.storeDown ? { warning: `call ${key}: the store is unavailable` } : {}),
      };
    if (a.storeDown)
      return {
        ok: false,
        reason: 'store_unavailable',
        message: `call ${key}: cannot check its token (store unavailable)`,
      };
    return {
      ok: false,
      reason: a.db ? 'unknown_call' : 'bad_token',
      message: `call ${key} was not originated by this runtime${a.db ? ' and is not in the store' : ''}`,
    };
  }
  try {
    // One statement (shared with the sessions arriving meanwhile): open, not driven, token matches (or this
    // process already checked it).
    const admitted = await admitSoon(a.db, {
      id: numeric,
      session: a.sessionId,
      hash: presented,
      channel: a.channel ?? null,
      uniqueid: a.uniqueid ?? null,
      amdStatus: a.amdStatus ?? null,
      amdCause: a.amdCause ?? null,
      mine: !!mine,
    });
    if (admitted) return { ok: true, callId: numeric };
    const why = await a.db.query<{ status: string; agi_session: string | null; agi_token_hash: string | null }>(
      'select status, agi_session, agi_token_hash from calls where id = $1',
      [numeric],
    );
    const row = why.rows[0];
    if (!row) {
      // Originated here (its token checked) by a flow that keeps no record of it: it may run, unrecorded.
      if (mine) return { ok: true, callId: numeric, warning: `call ${key} has no record in the store` };
      return { ok: false, reason: 'unknown_call', message: `call ${key} is not in the store` };
    }
    if (!mine && !(row.agi_token_hash && sameHash(row.agi_token_hash, presented)))
      return { ok: false, reason: 'bad_token', message: `call ${key}: wrong CALL_TOKEN` };
    if ((FINAL_STATUSES as readonly string[]).includes(row.status))
      return { ok: false, reason: 'call_closed', message: `call ${key} is already ${row.status}` };
    return { ok: false, reason: 'already_driven', message: `call ${key} is already driven by another session` };
  } catch (err) {
    if (mine)
      return {
        ok: true,
        callId: numeric,
        warning: `could not mark call ${key} in progress: ${errorMessage(err)}`,
      };
    return {
      ok: false,
      reason: 'store_unavailable',
      message: `call ${key}: cannot check its token (store unavailable: ${errorMessage(err)})`,
    };
  }
}
