/**
 * The peer in the claim bench: the per-zone design of issue #17, written as strong as we can make it.
 * Preparation (not timed, `PEER_PREPARE_SQL`): every contact's zone made explicit (its own, else the
 * campaign's), do-not-call contacts swept to `dnc` beforehand, and a partial index on
 * (campaign, zone, next attempt) where pending. Per claim: the open zones in random order, LATERAL per
 * zone, `FOR UPDATE SKIP LOCKED`, then the contact marked `in_call` and a call record inserted (the same
 * write work as ours). It checks no do-not-call list at claim time (the sweep stands in for it), keeps
 * no concurrency cap and chooses no caller ID. Its copy has our queue table (migration 33) and its triggers
 * dropped. Parameters: campaign, batch, now, worker.
 */
export const PEER_PREPARE_SQL = [
  // our due contacts' queue (migration 33) and its triggers are ours, not the peer's: gone from its copy, so
  // the peer's updates pay no queue maintenance
  `drop trigger if exists contacts_a_queue_ins on contacts`,
  `drop trigger if exists contacts_queue_upd on contacts`,
  `drop trigger if exists contacts_queue_del on contacts`,
  `drop trigger if exists contacts_queue_truncate on contacts`,
  `drop table if exists contact_queue`,
  `update contacts c set timezone = k.timezone from campaigns k where k.id = c.campaign_id and c.timezone is null`,
  `update contacts c set status = 'dnc' where c.status = 'pending'
     and exists (select 1 from dnc d where d.phone = c.phone and (d.campaign_id is null or d.campaign_id = c.campaign_id))`,
  `create index peer_due on contacts (campaign_id, timezone, next_attempt_at) where status = 'pending'`,
  `vacuum analyze contacts`,
];

export const PEER_CLAIM_SQL = `
with k as (select id, window_start, window_end, max_attempts from campaigns where id = $1 and status = 'running'),
z as (
  select cz.tz from campaign_zones cz, k
  where cz.campaign_id = k.id
    and ($3::timestamptz at time zone cz.tz)::time >= k.window_start
    and ($3::timestamptz at time zone cz.tz)::time < k.window_end
  order by random()
),
cand as (
  select x.id from z, k cross join lateral (
    select c.id from contacts c
    where c.campaign_id = k.id and c.timezone = z.tz and c.status = 'pending'
      and c.next_attempt_at <= $3::timestamptz and c.attempts < k.max_attempts
    order by c.next_attempt_at
    limit $2
    for update of c skip locked
  ) x
  limit $2
),
upd as (
  update contacts c set status = 'in_call', attempts = c.attempts + 1, claimed_at = now(), claimed_by = $4
  from cand where c.id = cand.id
  returning c.id, c.campaign_id, c.phone, c.attempts
)
insert into calls (campaign_id, contact_id, direction, phone, caller_id, status, attempt, worker)
select campaign_id, id, 'outbound', phone, '+12125550100', 'initiated', attempts, $4 from upd
returning id`;
