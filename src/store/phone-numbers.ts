/** Caller-ID numbers of a campaign (`phone_numbers`): the one list query and the upsert the HTTP API uses. */
import type { Db, Queryable } from './db';

export interface PhoneNumberRow {
  id: number;
  number: string;
  label: string | null;
  active: boolean;
  last_used_at: Date | null;
  use_count: number;
}

export interface PhoneNumberInput {
  /** E.164, already validated. */
  number: string;
  label: string | null;
  active: boolean;
}

/** A campaign's caller-ID numbers, oldest first. */
export async function listPhoneNumbers(q: Queryable, campaignId: number): Promise<PhoneNumberRow[]> {
  const r = await q.query<PhoneNumberRow>(
    'select id, number, label, active, last_used_at, use_count from phone_numbers where campaign_id = $1 order by id',
    [campaignId],
  );
  return r.rows;
}

/** Add or update numbers in one transaction; returns how many were new and the campaign's list after. */
export async function upsertPhoneNumbers(
  db: Db,
  campaignId: number,
  items: PhoneNumberInput[],
): Promise<{ added: number; updated: number; phone_numbers: PhoneNumberRow[] }> {
  return db.tx(async (q) => {
    const r = await q.query<{ inserted: boolean }>(
      `insert into phone_numbers (campaign_id, number, label, active)
       select $1, t.number, t.label, t.active from unnest($2::text[], $3::text[], $4::boolean[]) as t(number, label, active)
       on conflict (coalesce(campaign_id, 0), number) do update
         set label = coalesce(excluded.label, phone_numbers.label), active = excluded.active
       returning (xmax = 0) as inserted`,
      [campaignId, items.map((i) => i.number), items.map((i) => i.label), items.map((i) => i.active)],
    );
    const added = r.rows.filter((x) => x.inserted).length;
    return { added, updated: r.rows.length - added, phone_numbers: await listPhoneNumbers(q, campaignId) };
  });
}
