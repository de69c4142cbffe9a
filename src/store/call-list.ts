/** The call list the HTTP API and the dashboard read (newest first, with the contact's name). */
import type { Queryable } from './db';
import { OPEN_STATUSES, type CallStatus } from './calls';

export interface CallListFilter {
  campaignId?: number;
  /** A call status, or 'active' for the open ones. */
  status?: CallStatus | 'active';
  /** 1..1000 */
  limit: number;
}

export async function listCalls(q: Queryable, f: CallListFilter): Promise<Record<string, unknown>[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (f.campaignId !== undefined) {
    params.push(f.campaignId);
    where.push(`c.campaign_id = $${params.length}`);
  }
  if (f.status === 'active') {
    // literal list (constants) so the partial index calls_open applies
    where.push(`c.status in (${OPEN_STATUSES.map((s) => `'${s}'`).join(',')})`);
  } else if (f.status !== undefined) {
    params.push(f.status);
    where.push(`c.status = $${params.length}`);
  }
  params.push(f.limit);
  const r = await q.query(
    `select c.id, c.campaign_id, c.contact_id, c.direction, c.phone, c.caller_id, c.status, c.outcome, c.reason,
            c.attempt, c.hangup_cause, c.created_at, c.answered_at, c.ended_at, c.duration_ms, c.talk_ms,
            k.name as contact_name
       from calls c left join contacts k on k.id = c.contact_id
      ${where.length ? 'where ' + where.join(' and ') : ''}
      order by c.id desc limit $${params.length}`,
    params,
  );
  return r.rows;
}
