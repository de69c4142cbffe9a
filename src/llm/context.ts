/**
 * The contact and campaign a call's templates need (`{{contact.name}}`, `{{contact.<field>}}`,
 * `{{campaign.name}}`, `{{campaign.<setting>}}`), loaded from the store when the msg only carries
 * their ids (fastagi-in gives `msg.call.contactId` / `campaignId`). Read once per call by llm-turn,
 * which then puts them on the msg (`msg.call.contact`, `msg.campaign`) for the nodes after it.
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
  const c = row?.campaign;
  if (c) {
    const settings = c.settings && typeof c.settings === 'object' ? c.settings : {};
    // settings first, so a setting cannot shadow the campaign's own id or name
    out.campaign = { ...settings, id: c.id, name: c.name, timezone: c.timezone, settings };
  }
  return out;
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
