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
    // One statement: open, not driven, token matches (or this process already checked it).
    const r = await a.db.query<{ id: number }>(ADMIT_SQL, [
      numeric,
      a.sessionId,
      presented,
      a.channel ?? null,
      a.uniqueid ?? null,
      a.amdStatus ?? null,
      a.amdCause ?? null,
      !!mine,
    ]);
    if (r.rows.length) return { ok: true, callId: numeric };
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
