-- name: campaign queue: max_concurrent per campaign across every worker (settings.concurrency_scope campaign|worker)
--
-- The contact claim (src/store/claim.ts explains every rule): claim_contacts(campaign, limit, now,
-- worker, slack) returns one row (dnc_skipped, inserted, claimed json). Replaces version 4's function
-- (see 004-claim-function.sql). To change the claim, add a migration with `create or replace function`.
create or replace function claim_contacts(int, int, timestamptz, text, int)
  returns table (o_dnc_skipped int, o_inserted int, o_claimed json)
  language plpgsql volatile
  set plan_cache_mode = force_generic_plan
as $fn$
#variable_conflict use_column
declare
  v_free int;    -- contacts this call may claim
  v_shared boolean;
  v_max int;
  v_open int;
begin
  v_free := $2;
  -- settings.concurrency_scope 'campaign' (default): max_concurrent counts the open calls of every
  -- worker, under a per-campaign advisory lock; 'worker': each worker keeps its own cap ($2).
  select coalesce(k.settings ->> 'concurrency_scope', 'campaign') = 'campaign', k.max_concurrent
    into v_shared, v_max
    from campaigns k where k.id = $1;
  if v_shared then
    perform pg_advisory_xact_lock(7421002, $1);
    select count(*)::int into v_open
      from calls c where c.campaign_id = $1 and c.status in ('initiated','ringing','in_progress');
    v_free := least($2, greatest(0, v_max - v_open));
    if v_free <= 0 then
      return query select 0, 0, '[]'::json;
      return;
    end if;
  end if;
return query
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
    limit v_free * $5::int
  ) x
  order by x.next_attempt_at, x.id
  limit v_free * $5::int
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
  limit v_free
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
          (case when camp.caller_id_strategy = 'local_presence' then (case
            when left(pk.phone, 5) = left(n.number, 5) then 5
            when left(pk.phone, 4) = left(n.number, 4) then 4
            when left(pk.phone, 3) = left(n.number, 3) then 3
            when left(pk.phone, 2) = left(n.number, 2) then 2
            else 0 end) else 0 end) as score
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
    ) order by cl.rn), '[]'::json) from claimed cl, camp) as claimed;
end
$fn$;
