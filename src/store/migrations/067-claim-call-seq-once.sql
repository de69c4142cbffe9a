-- name: contact claim looks the calls' id sequence up once per claim, not once per claimed contact
--
-- Version 66's claim_contacts with one change: the call id of each claimed contact was
-- nextval(pg_get_serial_sequence('calls', 'id')). pg_get_serial_sequence is STABLE, so PostgreSQL runs it for
-- every row (never folded into the cached plan): each claimed contact paid a parse of 'calls', a relation lookup,
-- a scan of pg_depend for the column's sequence and a text-to-regclass cast of its name. Now the sequence is
-- looked up once per claim into a regclass variable (after the checks that return early, so a claim with
-- no room or no running campaign looks nothing up) and each row only calls nextval. Why (issue #17, measured in
-- docs/contributing/benchmarks.md, session 23): at 4 workers x 8 the claim's backend CPU is what the statements
-- queue for on two cores. Same output (4 columns, o_room as in 66), same rules, locks and order; the same
-- sequence, so call ids come from where they always did.
create or replace function claim_contacts(int, int, timestamptz, text, int)
  returns table (o_dnc_skipped int, o_inserted int, o_claimed json, o_room int)
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
  v_ins int;
  v_json json;
  v_kz text[];   -- the zone keys whose mark this claim raises
  v_k text;
  v_cur timestamptz;
  v_low timestamptz;
  v_len time;
  v_used int[];
  v_call_seq regclass;  -- the calls' id sequence, looked up once per claim (was once per claimed contact)
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
      -- one sort for both arrays: the numbers sorted in a subquery and aggregated in that order (the PostgreSQL
      -- manual's "sorted subquery" form; nothing at this level joins or reorders them), where an ordered
      -- aggregate per array sorted them twice
      select array_agg(x.id) as ids, array_agg(x.number) as nums from (
        select p.id, p.number from phone_numbers p
        where p.active and p.campaign_id = k.id
        order by case when k.caller_id_strategy = 'least_recently_used' then p.last_used_at end nulls first, p.id
      ) x
    ) n
    where k.id = $1 and k.status = 'running';
  -- not running, or no active caller-ID number: nothing is claimed (and nothing locked)
  if not found or v_ids is null then
    return query select 0, 0, '[]'::json, 0;
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
    return query select 0, 0, '[]'::json, 0;
    return;
  end if;
  -- positions 1..v_free over the locked slots, each slot as far as its room (its running total v_upto)
  for v_i in 1 .. coalesce(array_length(v_shards, 1), 0) loop
    exit when v_prev >= v_free;
    v_slot_of := v_slot_of || array_fill(v_shards[v_i], array[least(v_upto[v_i], v_free) - v_prev]);
    v_prev := least(v_upto[v_i], v_free);
  end loop;
  -- the calling window's length, wrapped to a day: 09:00-20:00 is 11:00, 22:00-06:00 is 08:00, equal ends 00:00
  -- (never open, as before)
  v_len := time '00:00' + (v_we - v_ws);
  -- the calls' id sequence, looked up once here, only by a claim that may take a contact (see the header)
  v_call_seq := pg_get_serial_sequence('calls', 'id')::regclass;
with
-- the campaign's zones inside the calling window now, in random order, each with its key in
-- contact_queue ('' for the contacts without a zone of their own: the campaign's)
zones as materialized (
  select z.k, random() as r, coalesce(h.low, '-infinity') as low from (
    select cz.tz as k, cz.tz from campaign_zones cz where cz.campaign_id = $1
    union all
    select '', v_tz
  ) z
  left join contact_queue_head h on h.campaign_id = $1 and h.zone = z.k
  -- inside the window [start, end) (end before start: across midnight): the local time's distance after the
  -- start, wrapped to a day (time + interval wraps), below the window's length (v_len); one conversion per zone
  where time '00:00' + ((v_now at time zone z.tz)::time - v_ws) < v_len
  order by 2
),
-- zone by zone, the oldest due queue entries nobody else holds, locked; stops once v_free are taken
cand as materialized (
  select x.contact_id, x.next_attempt_at, zones.k, zones.r
  from zones cross join lateral (
    select q.contact_id, q.next_attempt_at from contact_queue q
    where q.campaign_id = $1 and q.zone = zones.k and q.next_attempt_at >= zones.low and q.next_attempt_at <= v_now
      and q.attempts < v_attempts
    order by q.next_attempt_at, q.contact_id
    limit v_free
    for update of q skip locked
  ) x
  limit v_free
),
-- the contacts themselves, locked (skipped if another transaction holds one), every rule checked again on the
-- row (PostgreSQL re-reads the newest version of a row changed since this statement began)
locked as (
  select c.id, c.phone, cand.r, cand.next_attempt_at
  from cand join contacts c on c.id = cand.contact_id
  where c.campaign_id = $1 and c.status = 'pending' and coalesce(c.timezone, '') = cand.k
    and c.next_attempt_at <= v_now and c.attempts < v_attempts
  for update of c skip locked
),
picked as (
  select l.id, l.phone, row_number() over (order by l.r, l.next_attempt_at, l.id) as rn,
    nextval('caller_id_rr') as rr, nextval(v_call_seq) as call_id
  from locked l
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
)
select
  (select count(*) from ins)::int,
  (select array_agg(distinct coalesce(cl.timezone, '')) from claimed cl where cl.call_id % 8 = 0),
  (select coalesce(json_agg(json_build_object(
      'callId', cl.call_id, 'contactId', cl.id, 'campaignId', cl.campaign_id, 'phone', cl.phone, 'name', cl.name,
      'timezone', cl.timezone, 'effectiveTimezone', coalesce(cl.timezone, v_tz), 'fields', cl.fields,
      'attempt', cl.attempts, 'callerId', cl.caller_id, 'callerIdNumberId', cl.number_id, 'amdEnabled', v_amd
    ) order by cl.rn), '[]'::json) from claimed cl)
,
  (select array_agg(cl.number_id) from claimed cl)
into v_ins, v_kz, v_json, v_used;
  -- the caller IDs' use (last_used_at, use_count: least_recently_used orders by it), best effort as before: a
  -- number another claim holds at this instant is skipped (SKIP LOCKED), never waited for. A statement of its
  -- own after the claim: one row by its key at batch 1
  if cardinality(v_used) = 1 then
    update phone_numbers p set last_used_at = now(), use_count = p.use_count + 1
      where p.id = (select l.id from phone_numbers l where l.id = v_used[1] for update skip locked);
  elsif v_used is not null then
    update phone_numbers p set last_used_at = now(), use_count = p.use_count + u.n
      from (select x.id, count(*)::int as n from unnest(v_used) x(id) group by x.id) u
      where p.id = u.id and p.id in (select l.id from phone_numbers l where l.id = any (v_used) for update skip locked);
  end if;
  -- the zones of the contacts claimed whose call id is a multiple of 8 (a zone's mark is raised once per about 8
  -- contacts claimed in it: its cost shared by 8 claims, at most a few dozen entries left behind it between two
  -- raises): low up to the zone's oldest row left (attempts below the campaign's max_attempts, read again here),
  -- if no other claim is raising it and no writer is putting a row in (the zone's lock, tried, never waited
  -- for); the statements after the lock take their snapshots after it
  if v_kz is not null then
    foreach v_k in array v_kz loop
      continue when not pg_try_advisory_xact_lock(hashtextextended($1 || '/' || v_k, 7421005));
      select h.low into v_cur from contact_queue_head h where h.campaign_id = $1 and h.zone = v_k;
      select q.next_attempt_at into v_low from contact_queue q
        where q.campaign_id = $1 and q.zone = v_k and q.next_attempt_at >= coalesce(v_cur, '-infinity')
          and q.attempts < (select k.max_attempts from campaigns k where k.id = $1)
        order by q.next_attempt_at
        limit 1;
      v_low := coalesce(v_low, 'infinity');
      if v_cur is null then
        insert into contact_queue_head (campaign_id, zone, low) values ($1, v_k, v_low)
          on conflict (campaign_id, zone) do update set low = excluded.low;
      elsif v_low > v_cur then
        update contact_queue_head h set low = v_low where h.campaign_id = $1 and h.zone = v_k;
      end if;
    end loop;
  end if;
  return query select 0, v_ins, v_json, v_free;
end
$fn$;
