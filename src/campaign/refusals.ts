/** Record a refused / failed FastAGI session on its call (see src/agi/refusals.ts). */
import type { Db } from '../store/db';
import { recordOutcome, type OutcomeResult } from '../store/campaigns';
import { noteRefusal } from '../agi/refusals';

/** Remember the refusal and close the call as failed with the reason (the contact is retried by the policy). */
export async function recordRefusal(
  db: Db | undefined,
  r: { callId?: number; reason: string },
): Promise<OutcomeResult | undefined> {
  if (r.callId === undefined) return undefined;
  const reason = `agi_refused: ${r.reason}`;
  noteRefusal(r.callId, reason);
  if (!db) return undefined;
  return recordOutcome(db, { callId: r.callId, outcome: 'failed', reason });
}
