-- name: campaign queue: maintained open-call counters (16 slots per campaign) instead of a count per claim; claim reads candidates by zone with every rule in the scan
--
-- campaign_slots: each campaign's open calls (initiated / ringing / in_progress) counted in 16 slot rows;
-- slot k may hold max_concurrent / 16 calls (+1 for the first max_concurrent % 16 slots), so the slots
-- together hold exactly max_concurrent. Every open call of a campaign carries the slot it is counted in
-- (calls.slot); triggers on calls keep `used` exact on every insert, status change, campaign change and
-- delete, whoever writes the call (the claim, the API, a test, a reconcile). The claim locks only the
-- slot rows it takes capacity from (FOR UPDATE SKIP LOCKED, each connection starting at its own slot),
-- so claims of one campaign do not queue behind each other's commit and no claim counts open calls.

create table campaign_slots (
  campaign_id integer not null references campaigns(id) on delete cascade,
  shard smallint not null check (shard between 0 and 15),
  used integer not null default 0,
  primary key (campaign_id, shard)
);

insert into campaign_slots (campaign_id, shard) select k.id, g from campaigns k cross join generate_series(0, 15) g;

create function campaigns_slots_ins() returns trigger language plpgsql as $$
begin
  insert into campaign_slots (campaign_id, shard)
    select n.id, g from new_rows n cross join generate_series(0, 15) g
    on conflict do nothing;
  return null;
end $$;

create trigger campaigns_slots_ins after insert on campaigns
  referencing new table as new_rows
  for each statement execute function campaigns_slots_ins();

alter table calls add column slot smallint;

-- existing open calls: counted in slot id % 16
update calls set slot = id % 16 where campaign_id is not null and status in ('initiated','ringing','in_progress');
update campaign_slots s set used = x.n
  from (select campaign_id, slot, count(*)::int as n from calls where slot is not null
          and campaign_id is not null and status in ('initiated','ringing','in_progress') group by campaign_id, slot) x
  where s.campaign_id = x.campaign_id and s.shard = x.slot;

-- an open call of a campaign written without a slot (not by the claim) is counted in the slot with the
-- most room left (read without a lock: should it land in a full slot, the claim subtracts every slot's
-- excess from what it may take, so the cap still holds)
create function calls_slot_assign() returns trigger language plpgsql as $$
begin
  select s.shard into new.slot
    from campaign_slots s join campaigns k on k.id = s.campaign_id
    where s.campaign_id = new.campaign_id
    order by (k.max_concurrent / 16 + (s.shard < k.max_concurrent % 16)::int) - s.used desc, s.shard
    limit 1;
  if new.slot is null then
    new.slot := new.id % 16;
  end if;
  return new;
end $$;

create trigger calls_slot_assign before insert or update of status, campaign_id, slot on calls for each row
  when (new.slot is null and new.campaign_id is not null and new.status in ('initiated','ringing','in_progress'))
  execute function calls_slot_assign();

-- inserts: one update per (campaign, slot) per statement, the slot rows locked in key order first (two
-- multi-row inserts counting in the same slots never deadlock)
create function calls_slots_ins() returns trigger language plpgsql as $$
begin
  perform 1 from campaign_slots s
    where (s.campaign_id, s.shard) in (select n.campaign_id, n.slot from new_rows n
            where n.slot is not null and n.campaign_id is not null and n.status in ('initiated','ringing','in_progress'))
    order by s.campaign_id, s.shard
    for update;
  update campaign_slots s set used = s.used + x.n
    from (select n.campaign_id, n.slot, count(*)::int as n from new_rows n
            where n.slot is not null and n.campaign_id is not null and n.status in ('initiated','ringing','in_progress')
            group by n.campaign_id, n.slot) x
    where s.campaign_id = x.campaign_id and s.shard = x.slot;
  return null;
end $$;

create trigger calls_slots_ins after insert on calls
  referencing new table as new_rows
  for each statement execute function calls_slots_ins();

-- status / campaign / slot changes and deletes: only rows whose counted state changes fire
create function calls_slots_chg() returns trigger language plpgsql as $$
begin
  if tg_op in ('UPDATE', 'DELETE') and old.slot is not null and old.campaign_id is not null
     and old.status in ('initiated','ringing','in_progress') then
    update campaign_slots set used = used - 1 where campaign_id = old.campaign_id and shard = old.slot;
  end if;
  if tg_op = 'UPDATE' and new.slot is not null and new.campaign_id is not null
     and new.status in ('initiated','ringing','in_progress') then
    update campaign_slots set used = used + 1 where campaign_id = new.campaign_id and shard = new.slot;
  end if;
  return null;
end $$;

create trigger calls_slots_upd after update of status, campaign_id, slot on calls for each row
  when ((old.status in ('initiated','ringing','in_progress')) is distinct from (new.status in ('initiated','ringing','in_progress'))
        or old.campaign_id is distinct from new.campaign_id or old.slot is distinct from new.slot)
  execute function calls_slots_chg();

create trigger calls_slots_del after delete on calls for each row
  when (old.slot is not null and old.campaign_id is not null and old.status in ('initiated','ringing','in_progress'))
  execute function calls_slots_chg();

-- The contact claim (src/store/claim.ts explains every rule). Replaces version 6's function.
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
  select coalesce(k.settings ->> 'concurrency_scope', 'campaign') = 'campaign', k.max_concurrent
    into v_shared, v_max
    from campaigns k where k.id = $1 and k.status = 'running';
  if not found then
    return query select 0, 0, '[]'::json;
    return;
  end if;
  if v_shared then
    select coalesce(sum(greatest(0, s.used - (v_max / 16 + (s.shard < v_max % 16)::int))), 0)::int into v_over
      from campaign_slots s where s.campaign_id = $1;
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
with clock as (select coalesce($3::timestamptz, now()) as now),
camp as (
  select c.id, c.timezone, c.window_start, c.window_end, c.max_attempts, c.caller_id_strategy, c.amd_enabled
  from campaigns c where c.id = $1
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
-- the oldest due contacts of each open zone, every rule but do-not-call checked in the scan (a
-- contact out of attempts never stands in the way), no lock yet
pre as (
  select x.id, x.next_attempt_at
  from open_keys ok cross join camp cross join clock cross join lateral (
    select c2.id, c2.next_attempt_at from contacts c2
    where c2.campaign_id = camp.id and c2.status = 'pending' and coalesce(c2.timezone, '') = ok.k
      and c2.next_attempt_at <= clock.now and c2.attempts < camp.max_attempts
    order by c2.next_attempt_at, c2.id
    limit v_free * $5::int
  ) x
  order by x.next_attempt_at, x.id
  limit v_free * $5::int
),
-- lock the first v_free of them nobody else holds; every rule checked again on the locked row
cand as (
  select c.id, c.phone, c.next_attempt_at
  from contacts c, camp, clock
  where c.id in (select pre.id from pre)
    and c.campaign_id = $1 and c.status = 'pending' and c.next_attempt_at <= clock.now and c.attempts < camp.max_attempts
    and coalesce(c.timezone, camp.timezone) in (select tz from open_zones)
    and exists (select 1 from nums)
  order by c.next_attempt_at, c.id
  limit v_free
  for update of c skip locked
),
-- do-not-call: checked on the locked candidates only
checked as (
  select cand.id, cand.phone, cand.next_attempt_at,
    exists (select 1 from dnc d where d.phone = cand.phone and (d.campaign_id is null or d.campaign_id = $1)) as is_dnc
  from cand
),
picked as (
  select checked.id, checked.phone, row_number() over (order by checked.next_attempt_at, checked.id) as rn,
    nextval('caller_id_rr') as rr, nextval(pg_get_serial_sequence('calls', 'id')) as call_id
  from checked where not checked.is_dnc
),
assigned as (
  select pk.id, pk.call_id, pk.rn, n.id as number_id, n.number as caller_id,
    v_shards[(select min(i) from generate_subscripts(v_upto, 1) i where v_upto[i] >= pk.rn)] as slot
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
  from checked where c.id = checked.id and checked.is_dnc
  returning c.id
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
select (select count(*) from dnc_marked)::int as dnc_skipped,
  (select count(*) from ins)::int as inserted,
  (select coalesce(json_agg(json_build_object(
      'callId', cl.call_id, 'contactId', cl.id, 'campaignId', cl.campaign_id, 'phone', cl.phone, 'name', cl.name,
      'timezone', cl.timezone, 'effectiveTimezone', coalesce(cl.timezone, camp.timezone), 'fields', cl.fields,
      'attempt', cl.attempts, 'callerId', cl.caller_id, 'callerIdNumberId', cl.number_id, 'amdEnabled', camp.amd_enabled
    ) order by cl.rn), '[]'::json) from claimed cl, camp) as claimed;
end
$fn$;
