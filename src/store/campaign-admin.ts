/**
 * Campaign records as the HTTP API manages them: create, update, list with counts, the status summary
 * (counts by status and outcome, active calls, progress percent), and the small lookups the API needs.
 */
import type { Queryable } from './db';
import { leaseInfo, type LeaseInfo } from './leases';
import {
  campaignProgress,
  getCampaign,
  normaliseCampaignRow,
  type CampaignProgress,
  type CampaignRow,
} from './campaigns';

/** Column values ready for SQL. */
export type CampaignValues = Partial<Omit<CampaignRow, 'id' | 'status' | 'created_at' | 'updated_at'>>;

/** Contacts stored for a campaign. */
export async function countContacts(q: Queryable, campaignId: number): Promise<number> {
  const r = await q.query<{ n: number }>('select count(*)::int as n from contacts where campaign_id = $1', [
    campaignId,
  ]);
  return Number(r.rows[0]?.n ?? 0);
}

/** True when the database's time-zone data knows `tz` (it may be older than the JS runtime's). */
export async function timezoneKnownToDb(q: Queryable, tz: string): Promise<boolean> {
  const r = await q.query('select 1 from pg_timezone_names where name = $1', [tz]);
  return r.rows.length > 0;
}

/** Does the campaign exist? (cheap check before an upload body is read) */
export async function campaignExists(q: Queryable, id: number): Promise<boolean> {
  const r = await q.query('select 1 from campaigns where id = $1', [id]);
  return r.rows.length > 0;
}

const JSON_COLS = new Set(['retry_policy', 'settings']);

export async function createCampaign(q: Queryable, v: CampaignValues): Promise<CampaignRow> {
  const cols = Object.keys(v);
  const vals = cols.map((c) =>
    JSON_COLS.has(c) ? JSON.stringify((v as Record<string, unknown>)[c]) : (v as Record<string, unknown>)[c],
  );
  const r = await q.query<CampaignRow>(
    `insert into campaigns (${cols.join(', ')}) values (${cols.map((c, i) => `$${i + 1}${JSON_COLS.has(c) ? '::jsonb' : ''}`).join(', ')}) returning *`,
    vals,
  );
  return normaliseCampaignRow(r.rows[0]);
}

export async function updateCampaign(q: Queryable, id: number, v: CampaignValues): Promise<CampaignRow | undefined> {
  const cols = Object.keys(v);
  if (!cols.length) return getCampaign(q, id);
  const vals = cols.map((c) =>
    JSON_COLS.has(c) ? JSON.stringify((v as Record<string, unknown>)[c]) : (v as Record<string, unknown>)[c],
  );
  const r = await q.query<CampaignRow>(
    `update campaigns set ${cols.map((c, i) => `${c} = $${i + 2}${JSON_COLS.has(c) ? '::jsonb' : ''}`).join(', ')}, updated_at = now() where id = $1 returning *`,
    [id, ...vals],
  );
  return r.rows[0] ? normaliseCampaignRow(r.rows[0]) : undefined;
}

export async function listCampaigns(
  q: Queryable,
  limit = 200,
): Promise<Array<CampaignRow & { contacts_total: number; caller_ids: number }>> {
  const r = await q.query<CampaignRow & { contacts_total: number; caller_ids: number }>(
    `select c.*,
       (select count(*)::int from contacts k where k.campaign_id = c.id) as contacts_total,
       (select count(*)::int from phone_numbers p where p.campaign_id = c.id and p.active) as caller_ids
     from campaigns c order by c.id desc limit $1`,
    [limit],
  );
  return r.rows.map((x) => ({
    ...normaliseCampaignRow(x),
    contacts_total: Number(x.contacts_total),
    caller_ids: Number(x.caller_ids),
  }));
}

export interface CampaignStatus {
  campaignId: number;
  name: string;
  status: CampaignRow['status'];
  contacts: {
    total: number;
    pending: number;
    in_call: number;
    done: number;
    dnc: number;
    failed: number;
    on_dnc_list: number;
  };
  calls: { total: number; byStatus: Record<string, number>; byOutcome: Record<string, number> };
  activeCalls: number;
  progressPercent: number;
  /**
   * The live truth (src/store/leases.ts): `running` while a runtime holds a live lease, `stalled` when the
   * campaign is running in the database but nobody holds it; otherwise the status.
   */
  state: string;
  /** The live owner with the freshest heartbeat, and its age (ms); every lease row in `owners`. */
  owner: string | null;
  heartbeatAgeMs: number | null;
  owners: LeaseInfo['owners'];
  /** The same counters the campaign_progress events carry (src/store/campaigns.ts campaignProgress). */
  progress: CampaignProgress;
}

/** Counts for one campaign: contacts by status, calls by status and outcome, active calls, progress. */
export async function campaignStatus(q: Queryable, c: CampaignRow): Promise<CampaignStatus> {
  const contacts = { total: 0, pending: 0, in_call: 0, done: 0, dnc: 0, failed: 0, on_dnc_list: 0 };
  const cs = await q.query<{ status: string; n: number }>(
    'select status, count(*)::int as n from contacts where campaign_id = $1 group by status',
    [c.id],
  );
  for (const r of cs.rows) {
    (contacts as Record<string, number>)[r.status] = Number(r.n);
    contacts.total += Number(r.n);
  }
  const dnc = await q.query<{ n: number }>(
    `select count(*)::int as n from contacts k where k.campaign_id = $1 and k.status = 'pending'
       and exists (select 1 from dnc d where d.phone = k.phone and (d.campaign_id is null or d.campaign_id = k.campaign_id))`,
    [c.id],
  );
  contacts.on_dnc_list = Number(dnc.rows[0]?.n ?? 0);
  const calls = { total: 0, byStatus: {} as Record<string, number>, byOutcome: {} as Record<string, number> };
  let active = 0;
  const rows = await q.query<{ status: string; outcome: string | null; n: number }>(
    'select status, outcome, count(*)::int as n from calls where campaign_id = $1 group by status, outcome',
    [c.id],
  );
  for (const r of rows.rows) {
    const n = Number(r.n);
    calls.total += n;
    calls.byStatus[r.status] = (calls.byStatus[r.status] ?? 0) + n;
    if (r.outcome) calls.byOutcome[r.outcome] = (calls.byOutcome[r.outcome] ?? 0) + n;
    if (r.status === 'initiated' || r.status === 'ringing' || r.status === 'in_progress') active += n;
  }
  const finished = contacts.done + contacts.dnc + contacts.failed;
  const progressPercent = contacts.total ? Math.round((finished / contacts.total) * 1000) / 10 : 0;
  const progress = await campaignProgress(q, c.id);
  const lease = await leaseInfo(q, c.id, c.status);
  return {
    campaignId: c.id,
    name: c.name,
    status: c.status,
    contacts,
    calls,
    activeCalls: active,
    progressPercent,
    progress,
    state: lease.state,
    owner: lease.owner,
    heartbeatAgeMs: lease.heartbeatAgeMs,
    owners: lease.owners,
  };
}
