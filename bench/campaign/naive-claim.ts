/**
 * The straightforward claim (one row per statement, FOR UPDATE SKIP LOCKED, eligibility checked per
 * row). The benchmark's floor beside the real claim
 * (src/store/claim.ts); the queue never uses it. Parameters: campaign, worker, now.
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
