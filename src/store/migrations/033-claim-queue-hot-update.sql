-- name: contact claim: the due contacts in a queue table of their own (contact_queue), so a claim's update of the contact is HOT (no index entry written) and the claim writes no index at all on contacts
--
-- Replaces version 32's claim_contacts and its due index; src/store/claim.ts explains every rule. Why
-- (issue #17, measured in docs/contributing/benchmarks.md): the due index on contacts was partial
-- (`where status = 'pending'`) and had `attempts` among its keys, so every claim's update of the contact
-- (status, attempts) was a non-HOT update: a new index entry in each of contacts' three other indexes
-- (primary key, (campaign, phone), phone), each on a leaf page of its own, so up to three full-page images
-- in the WAL after every checkpoint, and the commit's flush waited for them. Now:
--  * contact_queue holds one row per `pending` contact: (campaign, zone key, next attempt, contact, attempts),
--    kept by triggers on contacts whoever writes (insert, update of status / campaign / zone / due time /
--    attempts, delete, truncate); it has one index, contact_queue_due, the old due index's keys. It is an
--    index, not the truth: the claim re-checks every rule on the contact row it locks;
--  * no index on contacts names status, attempts or the claim's other columns, and contacts keeps 20 % of
--    each page free (fillfactor 80, for pages written from now on: room for a batch of 8 claims of
--    neighbouring contacts; a page is pruned of the versions its earlier claims left as it is read again), so
--    the claim's update is HOT: no index entry, the new version on the same page. The call's outcome
--    (in_call -> done or back to pending) is HOT too;
--  * the claim: open zones in random order, LATERAL per zone on contact_queue_due (FOR UPDATE SKIP LOCKED
--    of the queue row), then the contact itself locked with SKIP LOCKED and every rule checked again on it
--    (pending, due, attempts, its zone); the update's trigger deletes the queue row (no index write: the
--    entry is left to be cleaned, like any deleted row's). A claim never waits for a lock: a do-not-call
--    sweep holding the contact waits for the claim's queue row, never the other way round.
create table contact_queue (
  campaign_id integer not null,
  zone text not null,  -- the contact's own time zone, '' for none (the campaign's)
  next_attempt_at timestamptz not null,
  contact_id integer not null,
  attempts integer not null
);

insert into contact_queue (campaign_id, zone, next_attempt_at, contact_id, attempts)
  select c.campaign_id, coalesce(c.timezone, ''), c.next_attempt_at, c.id, c.attempts
    from contacts c where c.status = 'pending';

create index contact_queue_due on contact_queue (campaign_id, zone, next_attempt_at, contact_id, attempts);

drop index if exists contacts_due_zone_attempts;

alter table contacts set (fillfactor = 80);

-- contacts inserted pending enter the queue. Named to fire first among the insert triggers (PostgreSQL fires them
-- in name order): contacts_dnc_inserted then turns a listed one to `dnc`, and that update takes it out again
create function contacts_queue_ins() returns trigger language plpgsql as $$
begin
  insert into contact_queue (campaign_id, zone, next_attempt_at, contact_id, attempts)
    select n.campaign_id, coalesce(n.timezone, ''), n.next_attempt_at, n.id, n.attempts
      from new_rows n where n.status = 'pending';
  return null;
end $$;

create trigger contacts_a_queue_ins after insert on contacts referencing new table as new_rows
  for each statement execute function contacts_queue_ins();

-- a contact leaving `pending`, entering it, or changing a key while pending: its old entry out, its new one in
create function contacts_queue_upd() returns trigger language plpgsql as $$
begin
  if old.status = 'pending' then
    delete from contact_queue q
      where q.campaign_id = old.campaign_id and q.zone = coalesce(old.timezone, '')
        and q.next_attempt_at = old.next_attempt_at and q.contact_id = old.id;
  end if;
  if new.status = 'pending' then
    insert into contact_queue (campaign_id, zone, next_attempt_at, contact_id, attempts)
      values (new.campaign_id, coalesce(new.timezone, ''), new.next_attempt_at, new.id, new.attempts);
  end if;
  return null;
end $$;

create trigger contacts_queue_upd after update of status, campaign_id, timezone, next_attempt_at, attempts on contacts
  for each row
  when ((old.status = 'pending' or new.status = 'pending')
        and (old.status, old.campaign_id, old.timezone, old.next_attempt_at, old.attempts)
            is distinct from (new.status, new.campaign_id, new.timezone, new.next_attempt_at, new.attempts))
  execute function contacts_queue_upd();

-- contacts deleted (one by one, or a campaign's all at once by its cascade): one statement for all of them
create function contacts_queue_del() returns trigger language plpgsql as $$
begin
  delete from contact_queue q using old_rows o
    where o.status = 'pending' and q.campaign_id = o.campaign_id and q.zone = coalesce(o.timezone, '')
      and q.next_attempt_at = o.next_attempt_at and q.contact_id = o.id;
  return null;
end $$;

create trigger contacts_queue_del after delete on contacts referencing old table as old_rows
  for each statement execute function contacts_queue_del();

create function contacts_queue_truncate() returns trigger language plpgsql as $$
begin
  truncate contact_queue;
  return null;
end $$;

create trigger contacts_queue_truncate after truncate on contacts
  for each statement execute function contacts_queue_truncate();

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
-- contact_queue ('' for the contacts without a zone of their own: the campaign's)
zones as materialized (
  select z.k, random() as r from (
    select cz.tz as k, cz.tz from campaign_zones cz where cz.campaign_id = $1
    union all
    select '', v_tz
  ) z cross join lateral (select (v_now at time zone z.tz)::time as local) t
  where case when v_ws <= v_we then t.local >= v_ws and t.local < v_we else t.local >= v_ws or t.local < v_we end
  order by 2
),
-- zone by zone, the oldest due queue entries nobody else holds, locked; stops once v_free are taken
cand as materialized (
  select x.contact_id, x.next_attempt_at, zones.k, zones.r
  from zones cross join lateral (
    select q.contact_id, q.next_attempt_at from contact_queue q
    where q.campaign_id = $1 and q.zone = zones.k and q.next_attempt_at <= v_now and q.attempts < v_attempts
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
    nextval('caller_id_rr') as rr, nextval(pg_get_serial_sequence('calls', 'id')) as call_id
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
