/**
 * The do-not-call list read back and edited: the paged, searchable list, one number with its audit
 * trail, and a removal with its reason. Additions go through src/store/campaigns.ts `applyDnc` and the
 * importer; every change lands in `dnc_audit` by trigger (migration 010), with who (`ai_dialer.actor`)
 * and why.
 */
import type { Db, Queryable } from './db';

export interface DncEntry {
  phone: string;
  /** null: the global list. */
  campaignId: number | null;
  reason: string | null;
  source: string | null;
  createdAt: Date;
  /** Who added it (the audit trail's first addition of this entry), when known. */
  addedBy: string | null;
}

export interface DncAuditRow {
  phone: string;
  campaignId: number | null;
  action: 'added' | 'updated' | 'removed';
  reason: string | null;
  source: string | null;
  actor: string | null;
  at: Date;
}

export interface DncListQuery {
  /** undefined: every list; null: the global list only; a number: that campaign's list only. */
  campaignId?: number | null;
  /** Text searched in the number (digits) and the reason, literally (no wildcards). */
  search?: string;
  limit: number;
  offset: number;
}

/** Escape LIKE's wildcards so a search is literal text. */
export function likeLiteral(s: string): string {
  return s.replace(/[\\%_]/g, (c) => '\\' + c);
}

const ENTRY_COLS = `d.phone, d.campaign_id as "campaignId", d.reason, d.source, d.created_at as "createdAt",
  (select a.actor from dnc_audit a
    where a.phone = d.phone and coalesce(a.campaign_id, 0) = coalesce(d.campaign_id, 0) and a.action = 'added'
    order by a.at desc, a.id desc limit 1) as "addedBy"`;

/** One page of the list (newest first) and the number of entries that match. */
export async function listDnc(q: Queryable, o: DncListQuery): Promise<{ total: number; entries: DncEntry[] }> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (o.campaignId === null) where.push('d.campaign_id is null');
  else if (o.campaignId !== undefined) {
    params.push(o.campaignId);
    where.push(`d.campaign_id = $${params.length}`);
  }
  const text = o.search?.trim();
  if (text) {
    const digits = text.replace(/[^\d]/g, '');
    params.push(`%${likeLiteral(text)}%`);
    const t = params.length;
    if (digits && /^[\d\s()+.-]+$/.test(text)) {
      params.push(`%${digits}%`);
      where.push(`(d.phone like $${params.length} or d.reason ilike $${t})`);
    } else where.push(`d.reason ilike $${t}`);
  }
  const w = where.length ? `where ${where.join(' and ')}` : '';
  const total = (await q.query<{ n: number }>(`select count(*)::int as n from dnc d ${w}`, params)).rows[0].n;
  params.push(o.limit, o.offset);
  const r = await q.query<DncEntry>(
    `select ${ENTRY_COLS} from dnc d ${w} order by d.created_at desc, d.id desc
      limit $${params.length - 1} offset $${params.length}`,
    params,
  );
  return { total, entries: r.rows };
}

/** A number's entries on every list, and its whole audit trail (oldest first), removals included. */
export async function dncHistory(
  q: Queryable,
  phone: string,
): Promise<{ entries: DncEntry[]; history: DncAuditRow[] }> {
  const entries = await q.query<DncEntry>(
    `select ${ENTRY_COLS} from dnc d where d.phone = $1 order by d.campaign_id nulls first`,
    [phone],
  );
  const history = await q.query<DncAuditRow>(
    `select phone, campaign_id as "campaignId", action, reason, source, actor, at
       from dnc_audit where phone = $1 order by at, id`,
    [phone],
  );
  return { entries: entries.rows, history: history.rows };
}

/**
 * Take a number off one list (campaignId null: the global list), recording who and why. Contacts that
 * were closed as `dnc` in that scope go back to `pending`: the claim checks every list again before it
 * dials, so one still listed elsewhere is closed again, never dialled. Null when it was not listed.
 */
export async function removeDnc(
  db: Db,
  d: { phone: string; campaignId: number | null; reason: string; actor: string },
): Promise<{ contactsReopened: number } | null> {
  return db.tx(async (q) => {
    await q.query(`select set_config('ai_dialer.actor', $1, true), set_config('ai_dialer.reason', $2, true)`, [
      d.actor,
      d.reason,
    ]);
    const del = await q.query(`delete from dnc where phone = $1 and coalesce(campaign_id, 0) = coalesce($2::int, 0)`, [
      d.phone,
      d.campaignId,
    ]);
    if (!del.rowCount) return null;
    const r = await q.query(
      `update contacts c set status = 'pending', updated_at = now()
        where c.phone = $1 and c.status = 'dnc' and ($2::int is null or c.campaign_id = $2)
          and not exists (select 1 from dnc x where x.phone = c.phone and (x.campaign_id is null or x.campaign_id = c.campaign_id))`,
      [d.phone, d.campaignId],
    );
    return { contactsReopened: r.rowCount };
  });
}

/** Name who makes the changes of this transaction in the audit trail (e.g. before an import). */
export async function setDncActor(q: Queryable, actor: string): Promise<void> {
  await q.query(`select set_config('ai_dialer.actor', $1, true)`, [actor]);
}
