/**
 * The contact and campaign a call's templates need (`{{contact.name}}`, `{{contact.<field>}}`,
 * `{{campaign.name}}`, `{{campaign.<setting>}}`), loaded from the store when the msg only carries
 * their ids (fastagi-in gives `msg.call.contactId` / `campaignId`). Read once per call by llm-turn,
 * which then puts them on the msg (`msg.call.contact`, `msg.campaign`) for the nodes after it.
 */
import type { Queryable } from '../store/db';
import { getCampaign } from '../store/campaigns';

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

/** Load the contact and campaign by id; missing ids or rows give undefined for that part. */
export async function loadCallContext(
  q: Queryable,
  ids: { contactId?: number | null; campaignId?: number | null },
): Promise<{ contact?: CallContact; campaign?: CallCampaign }> {
  const out: { contact?: CallContact; campaign?: CallCampaign } = {};
  const contactId = Number(ids.contactId);
  if (Number.isSafeInteger(contactId) && contactId > 0) {
    const r = await q.query<CallContact>('select id, name, phone, timezone, fields from contacts where id = $1', [
      contactId,
    ]);
    if (r.rows[0]) out.contact = { ...r.rows[0], fields: r.rows[0].fields ?? {} };
  }
  const campaignId = Number(ids.campaignId);
  if (Number.isSafeInteger(campaignId) && campaignId > 0) {
    const c = await getCampaign(q, campaignId);
    if (c) {
      const settings = c.settings && typeof c.settings === 'object' ? c.settings : {};
      // settings first, so a setting cannot shadow the campaign's own id or name
      out.campaign = { ...settings, id: c.id, name: c.name, timezone: c.timezone, settings };
    }
  }
  return out;
}
