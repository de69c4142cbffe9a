/**
 * The contact and campaign a call's templates need (`{{contact.name}}`, `{{contact.<field>}}`,
 * `{{campaign.name}}`, `{{campaign.<setting>}}`), loaded from the store when the msg only carries
 * their ids (fastagi-in gives `msg.call.contactId` / `campaignId`). Read once per call by llm-turn,
 * which then puts them on the msg (`msg.call.contact`, `msg.campaign`) for the nodes after it; a call this
 * process placed has them from its claim (`rememberCallContext`), without a read.
 */
import type { Queryable } from '../store/db';
import { namedStatement } from '../store/db';

export interface CallContact {
  id: number;
  name: string | null;
  phone: string;
  timezone: string | null;
  fields: Record<string, unknown>;
}

export interface CallCampaign {
  id: number;
  name: string;
  timezone: string;
  /** The campaign's free-form settings (company, purpose, agent name...), also spread flat. */
  settings: Record<string, unknown>;
  [setting: string]: unknown;
}

/** Load the contact and campaign by id, in one statement; missing ids or rows give undefined for that part. */
export async function loadCallContext(
  q: Queryable,
  ids: { contactId?: number | null; campaignId?: number | null },
): Promise<{ contact?: CallContact; campaign?: CallCampaign }> {
  const out: { contact?: CallContact; campaign?: CallCampaign } = {};
  const contactId = Number(ids.contactId);
  const campaignId = Number(ids.campaignId);
  const hasContact = Number.isSafeInteger(contactId) && contactId > 0;
  const hasCampaign = Number.isSafeInteger(campaignId) && campaignId > 0;
  if (!hasContact && !hasCampaign) return out;
  const r = await q.query<{ contact: CallContact | null; campaign: CampaignPart | null }>(CONTEXT_SQL, [
    hasContact ? contactId : null,
    hasCampaign ? campaignId : null,
  ]);
  const row = r.rows[0];
  if (row?.contact) out.contact = { ...row.contact, fields: row.contact.fields ?? {} };
  if (row?.campaign) out.campaign = callCampaign(row.campaign);
  return out;
}

/** The campaign as the msg carries it: its settings spread flat, then its own id, name and zone. */
export function callCampaign(c: CampaignPart): CallCampaign {
  const settings = c.settings && typeof c.settings === 'object' ? c.settings : {};
  // settings first, so a setting cannot shadow the campaign's own id or name
  return { ...settings, id: c.id, name: c.name, timezone: c.timezone, settings };
}

/**
 * The context of calls this process placed, from the claim that placed them (the contact row and the campaign
 * it was claimed for): a call's answered session comes back to the process that placed it
 * (docs/operations/scaling.md), so its greeting needs no database read. Taken once (llm-turn keeps it for the
 * call), dropped when the call ends unanswered; bounded.
 */
const placed = new Map<string, { contact?: CallContact; campaign?: CallCampaign }>();
const MAX_PLACED = 50_000;

export function rememberCallContext(
  callId: number | string,
  ctx: { contact?: CallContact; campaign?: CallCampaign },
): void {
  const key = String(callId);
  placed.delete(key);
  placed.set(key, ctx);
  if (placed.size > MAX_PLACED) placed.delete(placed.keys().next().value as string);
}

/** The context remembered for a call this process placed (then forgotten), or undefined. */
export function takeCallContext(callId: unknown): { contact?: CallContact; campaign?: CallCampaign } | undefined {
  if (callId === undefined || callId === null) return undefined;
  const key = String(callId);
  const ctx = placed.get(key);
  if (ctx) placed.delete(key);
  return ctx;
}

export function forgetCallContext(callId: number | string): void {
  placed.delete(String(callId));
}

interface CampaignPart {
  id: number;
  name: string;
  timezone: string;
  settings: Record<string, unknown> | null;
}

/** The contact and the campaign in one round trip (each null when its id is null or unknown). */
const CONTEXT_SQL = namedStatement(
  'aid_call_context',
  `select (select json_build_object('id', c.id, 'name', c.name, 'phone', c.phone, 'timezone', c.timezone, 'fields', c.fields)
             from contacts c where c.id = $1::int) as contact,
          (select json_build_object('id', k.id, 'name', k.name, 'timezone', k.timezone, 'settings', k.settings)
             from campaigns k where k.id = $2::int) as campaign`,
);
