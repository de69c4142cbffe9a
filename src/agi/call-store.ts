/**
 * Optional bookkeeping fastagi-in does when it has a store: the outbound call becomes
 * `in_progress`, or an inbound call (no CALL_ID) gets its row.
 */
import type { Queryable } from '../store/db';
import type { AgiCall } from './call';

/**
 * Mark the call in progress (or insert the inbound call). Returns the call id, or undefined when an
 * outbound call id has no open row (already ended, or not ours).
 */
export async function markCallInProgress(db: Queryable, call: AgiCall): Promise<number | string | undefined> {
  if (call.id !== undefined) {
    if (typeof call.id !== 'number') return undefined;
    const r = await db.query<{ id: number }>(
      `update calls set status = 'in_progress', answered_at = coalesce(answered_at, now()),
         agi_uniqueid = $2, channel_id = coalesce(channel_id, $3),
         amd_status = coalesce($4, amd_status), amd_cause = coalesce($5, amd_cause)
       where id = $1 and status in ('initiated', 'ringing', 'in_progress') returning id`,
      [call.id, call.uniqueid ?? null, call.channel ?? null, call.amd?.status ?? null, call.amd?.cause ?? null],
    );
    return r.rows[0]?.id;
  }
  const r = await db.query<{ id: number }>(
    `insert into calls (direction, phone, caller_id, status, answered_at, agi_uniqueid, channel_id, campaign_id)
     values ('inbound', $1, $2, 'in_progress', now(), $3, $4, $5) returning id`,
    [call.phone || null, call.callerId ?? null, call.uniqueid ?? null, call.channel ?? null, call.campaignId],
  );
  return r.rows[0].id;
}
