-- name: contact claim: contacts out of attempts skipped inside the due index (attempts a key column, no heap read), caller ID and slot per batch position without subqueries in the common plan
--
-- Replaces version 31's claim_contacts and the due index; src/store/claim.ts explains every rule. What
-- changed (issue #17, measured in docs/contributing/benchmarks.md):
--  * contacts_due_zone_attempts carries `attempts` as its last key column, so `attempts < max_attempts`
--    is checked on the index entry: a pending contact out of attempts (max_attempts lowered, attempts
--    written by hand or an import) no longer costs a heap read on every claim of its zone. Before, such
--    contacts piled up at the head of each zone's slice as the contacts around them were claimed, and
--    every claim re-read them all (the buffers per claim grew with the number of claims made);
--  * the statement's plan is initialised on every call (executor start is the largest fixed cost of a
--    claim): local presence's scoring moved into claim_caller_lp(), called only for that strategy, and
--    the slot each batch position counts in is an array built in plpgsql before the statement
--    (v_slot_of), so round robin and least recently used no longer initialise the
--    scoring's window aggregates, sorts and the slot subquery.
create index contacts_due_zone_attempts on contacts (campaign_id, (coalesce(timezone, '')), next_attempt_at, id, attempts)
  where status = 'pending';
drop index if exists contacts_due_zone;

-- local presence: the position (1-based) in p_nums of the number sharing the longest prefix (5 down to 2
-- digits) with p_phone, all of them tying when none does, rotated among the best by p_rr
create or replace function claim_caller_lp(p_phone text, p_nums text[], p_rr bigint) returns int
  language sql immutable
as $$
  select s.i::int from (
    select sc.i, rank() over (order by sc.score desc) as best,
      row_number() over (partition by sc.score order by sc.i) - 1 as j,
      count(*) over (partition by sc.score) as k
    from (
      select u.i, (case
        when left(p_phone, 5) = left(u.n, 5) then 5
        when left(p_phone, 4) = left(u.n, 4) then 4
        when left(p_phone, 3) = left(u.n, 3) then 3
        when left(p_phone, 2) = left(u.n, 2) then 2
        else 0 end) as score
      from unnest(p_nums) with ordinality as u(n, i)
    ) sc
  ) s
  where s.best = 1 and s.j = p_rr % s.k
$$;

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
  v_slot_of smallint[] := '{}';  -- the slot batch position i counts in (v_slot_of[i]); empty: the insert trigger picks
  v_prev int := 0;
  v_i int;
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
  -- positions 1..v_free over the locked slots, each slot as far as its room (its running total v_upto)
  for v_i in 1 .. coalesce(array_length(v_shards, 1), 0) loop
    exit when v_prev >= v_free;
    v_slot_of := v_slot_of || array_fill(v_shards[v_i], array[least(v_upto[v_i], v_free) - v_prev]);
    v_prev := least(v_upto[v_i], v_free);
  end loop;
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
-- position in the batch; local presence: claim_caller_lp (the numbers sharing the longest prefix with
-- the contact's, all of them when none does, rotated by the shared sequence)
assigned as (
  select pk.id, pk.call_id, pk.rn, v_ids[p.pos] as number_id, v_nums[p.pos] as caller_id, v_slot_of[pk.rn] as slot
  from picked pk cross join lateral (
    select case
      when v_lp then claim_caller_lp(pk.phone, v_nums, pk.rr)
      when v_lru then 1 + (pk.rn - 1)::int % cardinality(v_ids)
      else 1 + (pk.rr % cardinality(v_ids))::int end as pos
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
