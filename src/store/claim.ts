/**
 * The contact claim: the one place that decides who may be dialed now.
 *
 * Every eligibility rule lives inside this single SQL statement, so no code path can skip one:
 *  - the campaign is `running`;
 *  - the contact is `pending` (not already in a call, not closed), `attempts < max_attempts`,
 *    `next_attempt_at <= now`;
 *  - the local time in the contact's zone (`coalesce(contact.timezone, campaign.timezone)`) is inside
 *    the campaign's calling window [window_start, window_end) (a window may wrap midnight). The open
 *    zones are computed once per statement over the campaign's distinct zones (`campaign_zones`,
 *    kept by a trigger on contacts), not per row, with `now at time zone tz` (DST correct). Only the
 *    open zones' slices of the due index are read (`contacts_due_zone`), so contacts waiting in
 *    closed zones cost nothing;
 *  - the number is on no do-not-call list (global: dnc.campaign_id null, or the campaign's own).
 *    Candidates found on a list are marked `dnc` in the same statement and counted (dnc_skipped);
 *  - the campaign has at least one active caller-ID number.
 * The rows are taken with `FOR UPDATE SKIP LOCKED`, so concurrent workers (in one process or many)
 * never get the same contact; the same statement creates the call record (status `initiated`,
 * attempt number, caller ID, worker) and marks the contact `in_call`. Up to `limit` contacts are
 * claimed in one round trip (a worker with N free slots asks for N).
 */
import type { Queryable } from './db';

export interface ClaimOptions {
  campaignId: number;
  /** Most contacts to claim in this statement (>= 1). */
  limit?: number;
  /** Worker name stored on the contact and the call (reconciliation after a crash uses it). */
  worker?: string;
  /** The clock used for eligibility (tests); default the database's now(). */
  now?: Date;
  /**
   * How many workers may claim this campaign at the same time (default 4). The statement reads
   * limit x (concurrency + 1) due candidates so that rows other workers hold locked right now do not
   * leave it short.
   */
  concurrency?: number;
}

export interface ClaimedContact {
  callId: number;
  contactId: number;
  campaignId: number;
  phone: string;
  name: string | null;
  timezone: string | null;
  /** The zone the window was checked in (contact's, else the campaign's). */
  effectiveTimezone: string;
  fields: Record<string, unknown>;
  attempt: number;
  callerId: string;
  callerIdNumberId: number;
  amdEnabled: boolean;
}

export interface ClaimResult {
  claimed: ClaimedContact[];
  /** Candidates found on a do-not-call list (now marked `dnc`). */
  dncSkipped: number;
}

/** Longest common prefix (up to 5 characters: "+1NPA", "+4420") between two E.164 numbers, in SQL. */
const PREFIX_SCORE = `(case when left(pk.phone, 5) = left(n.number, 5) then 5 when left(pk.phone, 4) = left(n.number, 4) then 4
  when left(pk.phone, 3) = left(n.number, 3) then 3 when left(pk.phone, 2) = left(n.number, 2) then 2 else 0 end)`;

export const CLAIM_SQL = `
with clock as (select coalesce($3::timestamptz, now()) as now),
camp as (
  select c.id, c.timezone, c.window_start, c.window_end, c.max_attempts, c.caller_id_strategy, c.amd_enabled
  from campaigns c where c.id = $1 and c.status = 'running'
),
zones as (
  select z.tz, (clock.now at time zone z.tz)::time as local
  from camp cross join clock cross join lateral (
    select cz.tz from campaign_zones cz where cz.campaign_id = camp.id
    union select camp.timezone
  ) z
),
open_zones as (
  select zones.tz from zones, camp
  where case when camp.window_start <= camp.window_end
    then zones.local >= camp.window_start and zones.local < camp.window_end
    else zones.local >= camp.window_start or zones.local < camp.window_end end
),
nums as (
  select p.id, p.number,
    row_number() over (order by (case when camp.caller_id_strategy = 'least_recently_used' then p.last_used_at end) asc nulls first, p.id) - 1 as ord,
    count(*) over () as cnt
  from phone_numbers p, camp
  where p.active and p.campaign_id = camp.id
),
open_keys as (
  select open_zones.tz as k from open_zones
  union all
  select '' from open_zones, camp where open_zones.tz = camp.timezone
),
pre as (
  select x.id, x.next_attempt_at
  from open_keys ok cross join camp cross join clock cross join lateral (
    select c2.id, c2.next_attempt_at from contacts c2
    where c2.campaign_id = camp.id and c2.status = 'pending' and coalesce(c2.timezone, '') = ok.k
      and c2.next_attempt_at <= clock.now
    order by c2.next_attempt_at, c2.id
    limit $2::int * $5::int
  ) x
  order by x.next_attempt_at, x.id
  limit $2::int * $5::int
),
cand as (
  select c.id, c.phone, c.next_attempt_at,
    exists (select 1 from dnc d where d.phone = c.phone and (d.campaign_id is null or d.campaign_id = c.campaign_id)) as is_dnc
  from contacts c, camp, clock
  where c.id in (select pre.id from pre)
    and c.campaign_id = $1 and c.status = 'pending' and c.next_attempt_at <= clock.now and c.attempts < camp.max_attempts
    and coalesce(c.timezone, camp.timezone) in (select tz from open_zones)
    and exists (select 1 from nums)
  order by c.next_attempt_at, c.id
  limit $2::int
  for update of c skip locked
),
picked as (
  select cand.id, cand.phone, row_number() over (order by cand.next_attempt_at, cand.id) as rn,
    nextval('caller_id_rr') as rr, nextval(pg_get_serial_sequence('calls', 'id')) as call_id
  from cand where not cand.is_dnc
),
assigned as (
  select pk.id, pk.call_id, pk.rn, n.id as number_id, n.number as caller_id
  from picked pk cross join camp cross join lateral (
    -- the best-scoring numbers (local presence: longest shared prefix; otherwise all tie), then
    -- rotate among them: by the shared sequence (round robin, local presence) or by position in the
    -- batch over the least-recently-used order
    select s.id, s.number from (
      select sc.id, sc.number, rank() over (order by sc.score desc) as best,
        row_number() over (partition by sc.score order by sc.ord) - 1 as i,
        count(*) over (partition by sc.score) as k
      from (
        select n.id, n.number, n.ord,
          (case when camp.caller_id_strategy = 'local_presence' then ${PREFIX_SCORE} else 0 end) as score
        from nums n
      ) sc
    ) s
    where s.best = 1
      and s.i = (case when camp.caller_id_strategy = 'least_recently_used' then pk.rn - 1 else pk.rr end) % s.k
  ) n
),
dnc_marked as (
  update contacts c set status = 'dnc', last_outcome = 'dnc', updated_at = now()
  from cand where c.id = cand.id and cand.is_dnc
  returning c.id
),
claimed as (
  update contacts c set status = 'in_call', attempts = c.attempts + 1, last_call_id = a.call_id,
    claimed_at = now(), claimed_by = $4, updated_at = now()
  from assigned a where c.id = a.id
  returning c.id, c.campaign_id, c.phone, c.name, c.timezone, c.fields, c.attempts, a.call_id, a.caller_id, a.number_id, a.rn
),
ins as (
  insert into calls (id, campaign_id, contact_id, direction, phone, caller_id, status, attempt, worker)
  select call_id, campaign_id, id, 'outbound', phone, caller_id, 'initiated', attempts, $4 from claimed
  returning id
),
used as (
  update phone_numbers p set last_used_at = now(), use_count = p.use_count + u.n
  from (select number_id, count(*) as n from assigned group by number_id) u
  where p.id = u.number_id
    and p.id in (select l.id from phone_numbers l where l.id in (select number_id from assigned) for update skip locked)
  returning p.id
)
select (select count(*) from dnc_marked)::int as dnc_skipped,
  (select count(*) from ins)::int as inserted,
  (select coalesce(json_agg(json_build_object(
      'callId', cl.call_id, 'contactId', cl.id, 'campaignId', cl.campaign_id, 'phone', cl.phone, 'name', cl.name,
      'timezone', cl.timezone, 'effectiveTimezone', coalesce(cl.timezone, camp.timezone), 'fields', cl.fields,
      'attempt', cl.attempts, 'callerId', cl.caller_id, 'callerIdNumberId', cl.number_id, 'amdEnabled', camp.amd_enabled
    ) order by cl.rn), '[]'::json) from claimed cl, camp) as claimed
`;

/** Claim up to `limit` eligible contacts of a campaign (see the module comment for the rules). */
export async function claimContacts(q: Queryable, o: ClaimOptions): Promise<ClaimResult> {
  const limit = Math.max(1, Math.min(1000, Math.floor(o.limit ?? 1)));
  const r = await q.query<{ dnc_skipped: number; inserted: number; claimed: ClaimedContact[] | string }>(CLAIM_SQL, [
    o.campaignId,
    limit,
    o.now ?? null,
    o.worker ?? null,
    Math.max(2, Math.min(64, Math.floor(o.concurrency ?? 4) + 1)),
  ]);
  const row = r.rows[0];
  if (!row) return { claimed: [], dncSkipped: 0 };
  const claimed = (typeof row.claimed === 'string' ? JSON.parse(row.claimed) : row.claimed) as ClaimedContact[];
  for (const c of claimed) {
    c.callId = Number(c.callId);
    c.fields = c.fields ?? {};
  }
  return { claimed, dncSkipped: Number(row.dnc_skipped) };
}

/**
 * The straightforward claim (one row per statement, FOR UPDATE SKIP LOCKED, eligibility checked per
 * row). Kept only as the benchmark's floor; the queue never uses it.
 */
export const NAIVE_CLAIM_SQL = `
with cand as (
  select c.id from contacts c join campaigns k on k.id = c.campaign_id
  where c.campaign_id = $1 and k.status = 'running' and c.status = 'pending' and c.next_attempt_at <= coalesce($3::timestamptz, now())
    and c.attempts < k.max_attempts
    and (coalesce($3::timestamptz, now()) at time zone coalesce(c.timezone, k.timezone))::time >= k.window_start
    and (coalesce($3::timestamptz, now()) at time zone coalesce(c.timezone, k.timezone))::time < k.window_end
    and not exists (select 1 from dnc d where d.phone = c.phone and (d.campaign_id is null or d.campaign_id = c.campaign_id))
  order by c.next_attempt_at, c.id
  limit 1
  for update of c skip locked
)
update contacts c set status = 'in_call', attempts = c.attempts + 1, claimed_at = now(), claimed_by = $2
from cand where c.id = cand.id
returning c.id`;
