/**
 * A refused or failed FastAGI session is not a conversation (issue 12 item 7). Asterisk answers the
 * call, the AGI connection is refused (session cap, wrong secret, ...) or cannot start, the dialplan
 * hangs up, and ARI reports an answered call ended by normal clearing: without this, it would be
 * recorded `completed` with no turns and its contact closed `done`.
 *
 * - The refusal is remembered here (per process, bounded, 10 minutes), so the campaign manager turns
 *   that call's `completed` outcome into `failed` with the reason (`agi_refused: too_many_sessions`),
 *   which the retry policy reschedules.
 * - It is also written to the store at once (src/campaign/refusals.ts `recordRefusal`), for a campaign
 *   queue in another runtime.
 */
import { valuesFromArgs } from './call';

const TTL_MS = 10 * 60_000;
const MAX = 10_000;
const refusals = new Map<number, { reason: string; at: number }>();

/** The call a session's environment belongs to: CALL_ID given in the AGI URL/arguments, else our channel id (agi_uniqueid `aid-<id>-<hex>`). */
export function callIdOfEnv(env: Record<string, string>): number | undefined {
  let v: string | undefined;
  try {
    v = valuesFromArgs(env).CALL_ID;
  } catch {
    v = undefined;
  }
  if (v !== undefined && /^\d{1,15}$/.test(v.trim())) return Number(v.trim());
  const m = /^aid-(\d{1,15})-[0-9a-f]+$/.exec(env.uniqueid ?? '');
  return m ? Number(m[1]) : undefined;
}

export function noteRefusal(callId: number, reason: string): void {
  const now = Date.now();
  refusals.delete(callId);
  refusals.set(callId, { reason, at: now });
  if (refusals.size > MAX) refusals.delete(refusals.keys().next().value as number);
  // drop the expired ones from the front (insertion order is time order)
  for (const [id, r] of refusals) {
    if (now - r.at < TTL_MS) break;
    refusals.delete(id);
  }
}

/** The refusal noted for a call (and forget it), if any. */
export function takeRefusal(callId: number): string | undefined {
  const r = refusals.get(callId);
  if (!r) return undefined;
  refusals.delete(callId);
  return Date.now() - r.at < TTL_MS ? r.reason : undefined;
}
