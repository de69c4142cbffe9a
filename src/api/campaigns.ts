/**
 * Campaign records for the HTTP API: validation of create/patch input, reads, and the status summary
 * (counts by status and outcome, active calls, progress percent).
 */
import { leaseInfo, type LeaseInfo } from '../store/leases';
import type { Queryable } from '../store/db';
import { isCountryCode, isValidTimeZone } from '../campaign/phone';
import {
  campaignProgress,
  getCampaign,
  normaliseCampaignRow,
  type CampaignProgress,
  type CampaignRow,
} from '../store/campaigns';

export { getCampaign, type CampaignRow };

/** A 4xx answer: HTTP status + one clear message (+ optional details such as per-item errors). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const RETRY_KEYS = ['busy', 'no_answer', 'failed', 'congestion', 'cancelled'] as const;
export const CALLER_ID_STRATEGIES = ['round_robin', 'least_recently_used', 'local_presence'] as const;
const MAX_SETTINGS_BYTES = 64 * 1024;
const MAX_RETRY_SECONDS = 30 * 24 * 3600;

/** Column values ready for SQL. */
export type CampaignValues = Partial<Omit<CampaignRow, 'id' | 'status' | 'created_at' | 'updated_at'>>;

const FIELDS = [
  'name',
  'timezone',
  'window_start',
  'window_end',
  'max_concurrent',
  'calls_per_second',
  'max_attempts',
  'retry_policy',
  'caller_id_strategy',
  'default_country',
  'amd_enabled',
  'settings',
] as const;

const snake = (k: string): string => k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());

function bad(message: string): ApiError {
  return new ApiError(400, message);
}

function intIn(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw bad(`${name} must be an integer from ${min} to ${max}`);
  return v;
}

function time(v: unknown, name: string): string {
  if (typeof v !== 'string') throw bad(`${name} must be a time "HH:MM"`);
  const m = /^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$/.exec(v.trim());
  if (!m) throw bad(`${name} must be a time "HH:MM" (00:00 to 23:59), got ${JSON.stringify(v).slice(0, 40)}`);
  return `${m[1]}:${m[2]}:${m[3] ?? '00'}`;
}

/**
 * Validate campaign input (snake_case or camelCase keys). `partial` for PATCH (only given keys);
 * `current` (PATCH) is used to check the window and to merge retry_policy / settings.
 */
export function validateCampaignInput(
  body: unknown,
  opts: { partial: boolean; current?: CampaignRow },
): CampaignValues {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw bad('the body must be a JSON object');
  const input: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    const key = snake(k);
    if (key === 'id' || key === 'status' || key === 'created_at' || key === 'updated_at') {
      if (key === 'status')
        throw bad('status cannot be set here: use POST /api/v1/calls/automated/start|stop|pause|resume');
      throw bad(`${k} cannot be set`);
    }
    if (!(FIELDS as readonly string[]).includes(key))
      throw bad(`unknown field "${k.slice(0, 60)}" (allowed: ${FIELDS.join(', ')})`);
    input[key] = v;
  }
  const out: CampaignValues = {};
  if (!opts.partial && input.name === undefined) throw bad('name is required');
  if (input.name !== undefined) {
    if (typeof input.name !== 'string' || !input.name.trim() || input.name.trim().length > 200)
      throw bad('name must be text of 1 to 200 characters');
    out.name = input.name.trim();
  }
  if (input.timezone !== undefined) {
    if (!isValidTimeZone(input.timezone))
      throw bad(
        `timezone must be an IANA time zone such as "America/New_York", got ${JSON.stringify(input.timezone).slice(0, 60)}`,
      );
    out.timezone = input.timezone;
  }
  if (input.window_start !== undefined) out.window_start = time(input.window_start, 'window_start');
  if (input.window_end !== undefined) out.window_end = time(input.window_end, 'window_end');
  const ws = out.window_start ?? opts.current?.window_start ?? '09:00:00';
  const we = out.window_end ?? opts.current?.window_end ?? '20:00:00';
  if (ws >= we) throw bad(`window_start (${ws.slice(0, 5)}) must be before window_end (${we.slice(0, 5)})`);
  if (input.max_concurrent !== undefined) out.max_concurrent = intIn(input.max_concurrent, 'max_concurrent', 1, 10000);
  if (input.calls_per_second !== undefined) {
    const v = input.calls_per_second;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 1000)
      throw bad('calls_per_second must be a number above 0 and at most 1000');
    out.calls_per_second = v;
  }
  if (input.max_attempts !== undefined) out.max_attempts = intIn(input.max_attempts, 'max_attempts', 1, 100);
  if (input.retry_policy !== undefined) {
    const rp = input.retry_policy;
    if (!rp || typeof rp !== 'object' || Array.isArray(rp))
      throw bad(`retry_policy must be an object of seconds per outcome (${RETRY_KEYS.join(', ')})`);
    const merged: Record<string, number> = {
      busy: 600,
      no_answer: 3600,
      failed: 1800,
      congestion: 600,
      cancelled: 0,
      ...(opts.current?.retry_policy ?? {}),
    };
    for (const [k, v] of Object.entries(rp)) {
      if (!(RETRY_KEYS as readonly string[]).includes(k))
        throw bad(`retry_policy.${k.slice(0, 40)} is not an outcome (allowed: ${RETRY_KEYS.join(', ')})`);
      merged[k] = intIn(v, `retry_policy.${k}`, 0, MAX_RETRY_SECONDS);
    }
    out.retry_policy = merged;
  }
  if (input.caller_id_strategy !== undefined) {
    if (
      typeof input.caller_id_strategy !== 'string' ||
      !(CALLER_ID_STRATEGIES as readonly string[]).includes(input.caller_id_strategy)
    ) {
      throw bad(`caller_id_strategy must be one of ${CALLER_ID_STRATEGIES.join(', ')}`);
    }
    out.caller_id_strategy = input.caller_id_strategy as CampaignRow['caller_id_strategy'];
  }
  if (input.default_country !== undefined) {
    if (!isCountryCode(input.default_country))
      throw bad('default_country must be a two-letter ISO country code such as "US"');
    out.default_country = input.default_country.toUpperCase();
  }
  if (input.amd_enabled !== undefined) {
    if (typeof input.amd_enabled !== 'boolean') throw bad('amd_enabled must be true or false');
    out.amd_enabled = input.amd_enabled;
  }
  if (input.settings !== undefined) {
    const s = input.settings;
    if (!s || typeof s !== 'object' || Array.isArray(s))
      throw bad('settings must be an object (e.g. {"greeting": "...", "prompt": "..."})');
    const merged: Record<string, unknown> = { ...(opts.current?.settings ?? {}) };
    for (const [k, v] of Object.entries(s)) {
      if (v === null) delete merged[k];
      else merged[k] = v;
    }
    if (Buffer.byteLength(JSON.stringify(merged)) > MAX_SETTINGS_BYTES)
      throw bad(`settings must stay under ${MAX_SETTINGS_BYTES / 1024} KB`);
    for (const k of ['greeting', 'prompt', 'voice']) {
      if (merged[k] !== undefined && typeof merged[k] !== 'string') throw bad(`settings.${k} must be text`);
    }
    out.settings = merged;
  }
  return out;
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
  /** The same counters the campaign_progress events carry (src/store/campaigns.ts campaignProgress). */
  progress: CampaignProgress;
  /**
   * The live truth (src/store/leases.ts): `running` while a runtime holds a live lease, `stalled` when the
   * campaign is running in the database but nobody holds it; otherwise the status.
   */
  state: string;
  /** The live owner with the freshest heartbeat, and its age (ms); every lease row in `owners`. */
  owner: string | null;
  heartbeatAgeMs: number | null;
  owners: LeaseInfo['owners'];
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
