-- name: contact claim: a per-zone low-water mark on the due contacts' queue, so a claim never walks the entries its predecessors left at the zone's head
--
-- Replaces version 33's claim_contacts and the queue's insert triggers; src/store/claim.ts explains every rule.
-- Why (issue #17, measured in docs/contributing/benchmarks.md, session 15): a claim deletes the queue rows it
-- takes, and the deleted rows' entries stay in contact_queue_due until VACUUM; contacts out of attempts stay in
-- the queue (pending) where they are. Each claim starts its zone's scan at the zone's head, so it stepped over
-- every entry the claims before it had left (about one leaf page per 78 claims, LP_DEAD-skipped, but read): on a
-- campaign whose contacts share one zone, 20,000 claims put some 290 buffers into every later claim. VACUUM
-- does not repair it: it removes the dead entries, but the leaf pages keep the contacts out of attempts among
-- them, so no page empties and the scan still reads as many pages (measured: 288 buffers before and after).
-- Now:
--  * contact_queue_head holds, per (campaign, zone key), `low`: no queue row of that zone with
--    attempts < the campaign's max_attempts has next_attempt_at < low (a missing row: no bound). The claim's
--    zone scan starts at low, so it reads only the entries past it;
--  * low goes DOWN with every row entering the queue below it (the insert triggers, whoever writes:
--    import, re-queue after a call, a changed due time or attempts, a do-not-call removal), and to -infinity
--    for the whole campaign when max_attempts is raised;
--  * low goes UP only at the end of a claim, for the zones it took contacts from (once per about 8 contacts
--    claimed in a zone: those whose call id is a multiple of 8; the raise costs a few buffers), to the oldest row still
--    there (attempts < max_attempts), read with a snapshot taken after the claim holds the zone's advisory lock
--    (one bigint key per campaign and zone, `hashtextextended(campaign || '/' || zone, 7421005)`, tried, never
--    waited for: another claim raising, or a writer in flight, and this claim leaves low as it is). Every writer that
--    puts a row into a zone's queue holds the same lock SHARED until its commit, so while a claim raises no row
--    is on its way in unseen; a writer after it waits for that claim's commit (its remaining work and commit,
--    no lock waits) and then lowers low if its row is older;
--  * rollbacks: rows another transaction has deleted but not committed are still visible to the raising
--    claim's snapshot, so low stays at or below them; the raising claim's own deletions are invisible to it,
--    and its raise is rolled back with them. The queue stays an index, not the truth: every rule is still
--    checked on the contact row the claim locks, and a low too high could only delay a contact, never break a
--    rule.
--  * contact_queue's autovacuum: no longer needed for the claim's speed; its dead rows are still reclaimed by
--    the server's autovacuum, triggered from 2 % of the table changed instead of 20 %, so a real campaign's
--    queue (a million rows, a few hundred thousand claims a day) does not bloat for days between vacuums.
create table contact_queue_head (
  campaign_id integer not null references campaigns (id) on delete cascade,
  zone text not null,
  low timestamptz not null,
  primary key (campaign_id, zone)
);

alter table contact_queue set (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);

-- contacts inserted pending: the zones' locks shared (in one order: no deadlock with a max_attempts raise, the
-- only waiter for them exclusively), their queue rows in, then each zone's low lowered to its oldest new row
create or replace function contacts_queue_ins() returns trigger language plpgsql as $$
begin
  perform pg_advisory_xact_lock_shared(z.key)
    from (select distinct hashtextextended(n.campaign_id || '/' || coalesce(n.timezone, ''), 7421005) as key
            from new_rows n where n.status = 'pending') z
    order by z.key;
  insert into contact_queue (campaign_id, zone, next_attempt_at, contact_id, attempts)
    select n.campaign_id, coalesce(n.timezone, ''), n.next_attempt_at, n.id, n.attempts
      from new_rows n where n.status = 'pending';
  -- a statement of its own after the locks: its snapshot sees every raise committed before them
  update contact_queue_head h set low = m.low
    from (select n.campaign_id, coalesce(n.timezone, '') as zone, min(n.next_attempt_at) as low
            from new_rows n where n.status = 'pending' group by 1, 2) m
    where h.campaign_id = m.campaign_id and h.zone = m.zone and h.low > m.low;
  return null;
end $$;

create or replace function contacts_queue_upd() returns trigger language plpgsql as $$
begin
  if old.status = 'pending' then
    delete from contact_queue q
      where q.campaign_id = old.campaign_id and q.zone = coalesce(old.timezone, '')
        and q.next_attempt_at = old.next_attempt_at and q.contact_id = old.id;
  end if;
  if new.status = 'pending' then
    perform pg_advisory_xact_lock_shared(hashtextextended(new.campaign_id || '/' || coalesce(new.timezone, ''), 7421005));
    insert into contact_queue (campaign_id, zone, next_attempt_at, contact_id, attempts)
      values (new.campaign_id, coalesce(new.timezone, ''), new.next_attempt_at, new.id, new.attempts);
    update contact_queue_head h set low = new.next_attempt_at
      where h.campaign_id = new.campaign_id and h.zone = coalesce(new.timezone, '') and h.low > new.next_attempt_at;
  end if;
  return null;
end $$;

-- max_attempts raised: contacts out of attempts (left below low) are due again: every zone of the campaign
-- unbounded, under the zones' locks (waits for a claim raising one, so no raise computed with the old
-- max_attempts lands after this)
create function campaigns_queue_head_reset() returns trigger language plpgsql as $$
begin
  perform pg_advisory_xact_lock(z.key)
    from (select hashtextextended(h.campaign_id || '/' || h.zone, 7421005) as key
            from contact_queue_head h where h.campaign_id = new.id) z
    order by z.key;
  update contact_queue_head h set low = '-infinity' where h.campaign_id = new.id;
  return null;
end $$;

create trigger campaigns_queue_head_reset after update of max_attempts on campaigns
  for each row when (new.max_attempts > old.max_attempts)
  execute function campaigns_queue_head_reset();

create function contacts_queue_head_truncate() returns trigger language plpgsql as $$
begin
  truncate contact_queue_head;
  return null;
end $$;

create trigger contacts_queue_head_truncate after truncate on contacts
  for each statement execute function contacts_queue_head_truncate();

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
  v_ins int;
  v_json json;
  v_kz text[];   -- the zone keys whose mark this claim raises
  v_k text;
  v_cur timestamptz;
  v_low timestamptz;
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
with
-- the campaign's zones inside the calling window now, in random order, each with its key in
-- contact_queue ('' for the contacts without a zone of their own: the campaign's)
zones as materialized (
  select z.k, random() as r, coalesce(h.low, '-infinity') as low from (
    select cz.tz as k, cz.tz from campaign_zones cz where cz.campaign_id = $1
    union all
    select '', v_tz
  ) z cross join lateral (select (v_now at time zone z.tz)::time as local) t
  left join contact_queue_head h on h.campaign_id = $1 and h.zone = z.k
  where case when v_ws <= v_we then t.local >= v_ws and t.local < v_we else t.local >= v_ws or t.local < v_we end
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
select
  (select count(*) from ins)::int,
  (select array_agg(distinct coalesce(cl.timezone, '')) from claimed cl where cl.call_id % 8 = 0),
  (select coalesce(json_agg(json_build_object(
      'callId', cl.call_id, 'contactId', cl.id, 'campaignId', cl.campaign_id, 'phone', cl.phone, 'name', cl.name,
      'timezone', cl.timezone, 'effectiveTimezone', coalesce(cl.timezone, v_tz), 'fields', cl.fields,
      'attempt', cl.attempts, 'callerId', cl.caller_id, 'callerIdNumberId', cl.number_id, 'amdEnabled', v_amd
    ) order by cl.rn), '[]'::json) from claimed cl)
into v_ins, v_kz, v_json;
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
  return query select 0, v_ins, v_json;
end
$fn$;
