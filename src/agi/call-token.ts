/**
 * Per-call tokens: a FastAGI session can only drive a call it was given.
 *
 * At originate, the call gets a random token in the channel variable CALL_TOKEN (Asterisk keeps it on the
 * channel; the session reads it with GET VARIABLE, so it never appears in the dialplan, the AGI URL or
 * Asterisk's log lines). Its SHA-256 is kept in this process (the originating runtime) and in the call
 * row (`calls.agi_token_hash`, so another runtime on the same database can check it too).
 *
 * A session for an outbound call (one that names CALL_ID) is admitted only when:
 *  - it presents the call's token (else `bad_token`; a call nobody knows is `unknown_call`);
 *  - the call is open, not completed/failed/... (else `call_closed`);
 *  - no other session drives it (else `already_driven`): `calls.agi_session` is set atomically.
 * An inbound session (no CALL_ID, or CALL_DIRECTION=inbound) always gets a fresh call record: it cannot
 * name an existing one. The admission itself is in admit.ts. No Node-RED import.
 */
import { createHash, timingSafeEqual } from 'crypto';
import { randomBase64url } from '../util/random';
import type { Queryable } from '../store/db';

/** A new token: 144 random bits, URL-safe (a channel variable value needs no quoting). */
export function newCallToken(): string {
  return randomBase64url(18);
}

export function hashCallToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** Tokens of the calls this process originated, by call id: hash and when it may be forgotten. */
const local = new Map<string, { hash: string; expires: number }>();
/** A token outlives its call's originate by at most this long (a call longer than this is checked in the store). */
const LOCAL_TTL_MS = 6 * 3600_000;
let sweeps = 0;

/** Remember the token put on a call's channel (ari-originate does it for every originate). */
export function rememberCallToken(callId: string | number, token: string): void {
  const now = Date.now();
  local.set(String(callId), { hash: hashCallToken(token), expires: now + LOCAL_TTL_MS });
  if (++sweeps % 1000 === 0) for (const [k, v] of local) if (v.expires < now) local.delete(k);
}

/** The call ended: its token no longer admits anything in this process. */
export function forgetCallToken(callId: string | number): void {
  local.delete(String(callId));
}

/** Store the hashes of new tokens in the call rows (one statement for a batch of claimed calls). */
export async function storeCallTokens(q: Queryable, calls: Array<{ callId: number; token: string }>): Promise<void> {
  if (!calls.length) return;
  await q.query(
    `update calls set agi_token_hash = t.h from unnest($1::int[], $2::text[]) as t(id, h) where calls.id = t.id`,
    [calls.map((c) => c.callId), calls.map((c) => hashCallToken(c.token))],
  );
}

/** The hash of the token this process put on a call's channel, if it originated the call. */
export function localCallTokenHash(callId: string | number): string | undefined {
  return local.get(String(callId))?.hash;
}
