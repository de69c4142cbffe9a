-- name: contact claim: open zones in random order, LATERAL per zone with SKIP LOCKED, no do-not-call probe (migration 30 keeps listed numbers off the queue), caller IDs from one read of the campaign's numbers
--
-- Replaces version 18's claim_contacts; src/store/claim.ts explains every rule. What changed:
--  * no do-not-call probe: a pending contact's number is on no list in its scope (migration 30), so a
--    claim never comes back empty because its candidate was listed; o_dnc_skipped is always 0;
--  * the open zones are taken in random order, each read from the head of its slice of
--    contacts_due_zone (LATERAL, FOR UPDATE SKIP LOCKED) until the batch is full: a claim reads the
--    contacts it takes plus the ones other claimers hold, not limit x slack rows of every open zone.
--    Within a zone the oldest due contact goes first; across zones every open zone with due contacts
--    is served alike (before: the oldest due contact across zones first, which read every open zone);
--  * the campaign, the slots' excess and the campaign's active numbers (in caller-ID order) in one
--    query; the caller ID is then picked by position (round robin, least recently used) or, for
--    local presence only, by scoring the numbers against each contact.
create or replace function claim_contacts(int, int, timestamptz, text, int)
  returns table (o_dnc_skipped int, o_inserted int, o_claimed json)
  language plpgsql volatile
  set plan_cache_mode = force_generic_plan
as $fn$
#variable_conflict use_column
declare
  v_now timestamptz := coalesce($3, now());
  v_free int;    -- contacts this call may claim
  v_shared boolean;
  v_max int;
  v_tz text;
  v_ws time;
  v_we time;
  v_attempts int;
  v_amd boolean;
  v_lru boolean;
  v_lp boolean;
  v_ids int[];      -- the campaign's active numbers, in caller-ID order
  v_nums text[];
  v_shards smallint[] := '{}';  -- the slot rows this call holds (locked), in order
  v_upto int[] := '{}';         -- running total of their free capacity
  v_got int := 0;
  v_off int := pg_backend_pid() % 16;
  v_shard smallint;
  v_room int;
  v_over int := 0;  -- calls counted beyond their slot's share (max_concurrent lowered, calls written outside the claim)
begin
  -- settings.concurrency_scope 'campaign' (default): max_concurrent counts the open calls of every
  -- worker (the campaign's slot rows); 'worker': each worker keeps its own cap ($2).
  select coalesce(k.settings ->> 'concurrency_scope', 'campaign') = 'campaign', k.max_concurrent, k.timezone,
      k.window_start, k.window_end, k.max_attempts, k.amd_enabled,
      k.caller_id_strategy = 'least_recently_used', k.caller_id_strategy = 'local_presence', n.ids, n.nums,
      (select coalesce(sum(greatest(0, s.used - (k.max_concurrent / 16 + (s.shard < k.max_concurrent % 16)::int))), 0)::int
         from campaign_slots s where s.campaign_id = k.id)
    into v_shared, v_max, v_tz, v_ws, v_we, v_attempts, v_amd, v_lru, v_lp, v_ids, v_nums, v_over
    from campaigns k cross join lateral (
      select array_agg(p.id order by o.ord nulls first, p.id) as ids,
        array_agg(p.number order by o.ord nulls first, p.id) as nums
      from phone_numbers p cross join lateral (
        select case when k.caller_id_strategy = 'least_recently_used' then p.last_used_at end as ord
      ) o
      where p.active and p.campaign_id = k.id
    ) n
    where k.id = $1 and k.status = 'running';
  -- not running, or no active caller-ID number: nothing is claimed (and nothing locked)
  if not found or v_ids is null then
    return query select 0, 0, '[]'::json;
    return;
  end if;
  if not v_shared then
    v_over := 0;
  end if;
  loop
    select s.shard, (v_max / 16 + (s.shard < v_max % 16)::int) - s.used into v_shard, v_room
      from campaign_slots s
      where s.campaign_id = $1 and s.shard <> all (v_shards)
        and (not v_shared or s.used < v_max / 16 + (s.shard < v_max % 16)::int)
      order by (s.shard + 16 - v_off) % 16
      limit 1
      for update skip locked;
    exit when not found;
    v_got := v_got + (case when v_shared then v_room else $2 end);
    v_shards := v_shards || v_shard;
    v_upto := v_upto || v_got;
    exit when v_got >= $2 + v_over;
  end loop;
  -- worker scope with every slot row busy: the calls are counted by the insert trigger instead
  v_free := case when not v_shared and v_got = 0 then $2 else least($2, v_got - v_over) end;
  if v_free <= 0 then
    return query select 0, 0, '[]'::json;
    return;
  end if;
return query
with
-- the campaign's zones inside the calling window now, in random order, each with its key in
-- contacts_due_zone ('' for the contacts without a zone of their own: the campaign's)
zones as materialized (
  select z.k, random() as r from (
    select cz.tz as k, cz.tz from campaign_zones cz where cz.campaign_id = $1
    union all
    select '', v_tz
  ) z cross join lateral (select (v_now at time zone z.tz)::time as local) t
  where case when v_ws <= v_we then t.local >= v_ws and t.local < v_we else t.local >= v_ws or t.local < v_we end
  order by 2
),
-- zone by zone, the oldest due contacts nobody else holds, locked; every rule but the window (the
-- zone's) is in the scan, and PostgreSQL checks it again on the newest version of a row that changed
-- since this statement began; stops once v_free are taken
cand as (
  select x.id, x.phone, x.next_attempt_at, zones.r
  from zones cross join lateral (
    select c.id, c.phone, c.next_attempt_at from contacts c
    where c.campaign_id = $1 and c.status = 'pending' and coalesce(c.timezone, '') = zones.k
      and c.next_attempt_at <= v_now and c.attempts < v_attempts
    order by c.next_attempt_at, c.id
    limit v_free
    for update of c skip locked
  ) x
  limit v_free
),
picked as (
  select cand.id, cand.phone, row_number() over (order by cand.r, cand.next_attempt_at, cand.id) as rn,
    nextval('caller_id_rr') as rr, nextval(pg_get_serial_sequence('calls', 'id')) as call_id
  from cand
),
-- the caller ID's position in v_ids: round robin by the shared sequence, least recently used by
-- position in the batch; local presence: the numbers sharing the longest prefix with the contact's
-- (all of them when none does), rotated by the shared sequence
assigned as (
  select pk.id, pk.call_id, pk.rn, v_ids[pos] as number_id, v_nums[pos] as caller_id,
    case when cardinality(v_shards) = 1 then v_shards[1]
      else v_shards[(select min(i) from generate_subscripts(v_upto, 1) i where v_upto[i] >= pk.rn)] end as slot
  from picked pk cross join lateral (
    select case
      when v_lp then (
        select s.i from (
          select sc.i, rank() over (order by sc.score desc) as best,
            row_number() over (partition by sc.score order by sc.i) - 1 as j,
            count(*) over (partition by sc.score) as k
          from (
            select u.i, (case
              when left(pk.phone, 5) = left(u.n, 5) then 5
              when left(pk.phone, 4) = left(u.n, 4) then 4
              when left(pk.phone, 3) = left(u.n, 3) then 3
              when left(pk.phone, 2) = left(u.n, 2) then 2
              else 0 end) as score
            from unnest(v_nums) with ordinality as u(n, i)
          ) sc
        ) s
        where s.best = 1 and s.j = pk.rr % s.k)
      when v_lru then 1 + (pk.rn - 1) % cardinality(v_ids)
      else 1 + pk.rr % cardinality(v_ids) end as pos
  ) p
),
claimed as (
  update contacts c set status = 'in_call', attempts = c.attempts + 1, last_call_id = a.call_id,
    claimed_at = now(), claimed_by = $4, updated_at = now()
  from assigned a where c.id = a.id
  returning c.id, c.campaign_id, c.phone, c.name, c.timezone, c.fields, c.attempts, a.call_id, a.caller_id, a.number_id, a.rn, a.slot
),
ins as (
  insert into calls (id, campaign_id, contact_id, direction, phone, caller_id, status, attempt, worker, slot)
  select call_id, campaign_id, id, 'outbound', phone, caller_id, 'initiated', attempts, $4, slot from claimed
  returning id
),
used as (
  update phone_numbers p set last_used_at = now(), use_count = p.use_count + u.n
  from (select number_id, count(*) as n from assigned group by number_id) u
  where p.id = u.number_id
    and p.id in (select l.id from phone_numbers l where l.id in (select number_id from assigned) for update skip locked)
  returning p.id
)
select 0,
  (select count(*) from ins)::int,
  (select coalesce(json_agg(json_build_object(
      'callId', cl.call_id, 'contactId', cl.id, 'campaignId', cl.campaign_id, 'phone', cl.phone, 'name', cl.name,
      'timezone', cl.timezone, 'effectiveTimezone', coalesce(cl.timezone, v_tz), 'fields', cl.fields,
      'attempt', cl.attempts, 'callerId', cl.caller_id, 'callerIdNumberId', cl.number_id, 'amdEnabled', v_amd
    ) order by cl.rn), '[]'::json) from claimed cl);
end
$fn$;
