/**
 * A do-not-call request understood in a conversation (llm-turn: the keyword rule or the LLM's
 * add_to_dnc action) is stored at once, with the turn that carries it, before the goodbye is spoken.
 * Scope: the campaign's own list when the campaign-queue running that campaign says so (its
 * "do-not-call scope" setting), else the global list.
 */
import type { Db } from '../store/db';
import type { TurnInput } from '../store/calls';
import { storeDncTurn, type WriteOutcome } from '../store/turns';
import { registeredCampaignManagers } from './control';

/** The list a request of this campaign goes on: its id (campaign scope) or null (global). */
export function dncScopeFor(campaignId: number | null | undefined): number | null {
  if (!campaignId) return null;
  const ms = registeredCampaignManagers();
  const m = ms.find((x) => x.runnerOf(campaignId)) ?? ms[0];
  return m?.opts.dncScope === 'campaign' ? campaignId : null;
}

export interface UnderstoodCall {
  id?: unknown;
  campaignId?: unknown;
  phone?: unknown;
}

/**
 * Store the turn and the request in one transaction (journalled first). Resolves `{stored}` within the
 * write wait; `stored: false` means it is pending and on disk. Throws for a call without id or phone.
 */
export function storeUnderstoodDnc(db: Db, call: UnderstoodCall, turn: TurnInput): Promise<WriteOutcome> {
  const id = Number(call.id);
  if (!Number.isSafeInteger(id) || id <= 0) throw new Error(`do-not-call request without a call id`);
  const cid = Number(call.campaignId);
  const campaignId = Number.isSafeInteger(cid) && cid > 0 ? cid : null;
  return storeDncTurn(db, { id, campaignId }, turn, {
    phone: String(call.phone ?? ''),
    campaignId: dncScopeFor(campaignId),
    reason: 'caller asked not to be called',
    source: 'conversation',
  });
}
