-- name: do-not-call kept off the queue: no contact is pending while its number is listed in its scope (swept by triggers whoever writes), so the claim reads no do-not-call table
--
-- The invariant: a contact is never `pending` while its number is on the global list (dnc.campaign_id
-- null) or on its campaign's list. The claim takes only `pending` contacts, so it needs no do-not-call
-- probe (src/store/claim.ts). Kept by triggers, whoever writes (API, outbox, importer, a test, psql):
--
--  * a number added to a list (dnc insert, or an update of its phone / campaign): every `pending`
--    contact with it in scope becomes `dnc` (last_outcome `dnc`);
--  * contacts inserted `pending` whose number is listed become `dnc` at the end of the statement;
--  * a contact becoming `pending` again (a retry after its call, a claim released, a removal from a
--    list reopening it) or changing number or campaign while `pending` is checked before the write:
--    listed, it becomes `dnc` instead.
--
-- Races (READ COMMITTED; the lock key 7421004, the others are 7421001-7421003):
--  * a list addition first locks every contact with the number (FOR UPDATE, any status), so it waits
--    for a claim, a call outcome or a reopen in flight on one of them, and then sweeps with a snapshot
--    taken after that commit. A claim never waits: it skips a locked contact (SKIP LOCKED) and
--    rechecks `pending` on one swept since its snapshot (PostgreSQL re-reads the newest version of
--    a row it locks). A contact claimed just before the addition commits is in a call; when that call
--    ends, its retry finds the number listed and the contact closes as `dnc`.
--  * a contact inserted, or given a new number or campaign, is a row the addition cannot see until it
--    commits: the two are ordered by the advisory lock 7421004, taken SHARED by a list addition (before
--    its sweep) and EXCLUSIVE by the contact side (before its check), each held until commit. Whichever
--    comes second sees the other's committed rows. List additions do not wait for each other.
--  * the contact importer (src/campaign/import.ts) inserts its chunks with the check deferred
--    (`ai_dialer.dnc_settle` = 'deferred', transaction-local) and settles its numbers at the end with
--    contacts_dnc_settle(), so the lock is held for that last step only, never for a whole import.

create function contacts_dnc_listed(p_phone text, p_campaign int) returns boolean language sql stable as $$
  select exists (select 1 from dnc d where d.phone = p_phone and (d.campaign_id is null or d.campaign_id = p_campaign))
$$;

-- a list addition: lock the contacts with the added numbers (waiting for writers in flight), order
-- against contact inserts (shared), then sweep the pending ones in scope
create function dnc_sweep_contacts(p_phones text[]) returns int language plpgsql as $$
declare
  n int;
begin
  perform 1 from contacts c where c.phone = any (p_phones) order by c.id for update;
  perform pg_advisory_xact_lock_shared(7421004);
  update contacts c set status = 'dnc', last_outcome = 'dnc', updated_at = now()
    where c.phone = any (p_phones) and c.status = 'pending' and contacts_dnc_listed(c.phone, c.campaign_id);
  get diagnostics n = row_count;
  return n;
end $$;

create function dnc_added_sweep() returns trigger language plpgsql as $$
begin
  perform dnc_sweep_contacts(array(select distinct n.phone from dnc_new n));
  return null;
end $$;

create trigger dnc_added_sweep after insert on dnc referencing new table as dnc_new
  for each statement execute function dnc_added_sweep();

create function dnc_moved_sweep() returns trigger language plpgsql as $$
begin
  perform dnc_sweep_contacts(array[new.phone]);
  return null;
end $$;

create trigger dnc_moved_sweep after update of phone, campaign_id on dnc for each row
  when (new.phone is distinct from old.phone or new.campaign_id is distinct from old.campaign_id)
  execute function dnc_moved_sweep();

-- the importer's last step (its inserts deferred the check): the listed pending contacts of the campaign
-- with these numbers become `dnc`
create function contacts_dnc_settle(p_campaign int, p_phones text[]) returns int language plpgsql as $$
declare
  n int;
begin
  perform pg_advisory_xact_lock(7421004);
  -- a join on the numbers, not `phone = any (p_phones)`: the planner would walk the campaign's pending
  -- contacts testing each against the whole array (an import of 100k rows took minutes)
  update contacts c set status = 'dnc', last_outcome = 'dnc', updated_at = now()
    from (select distinct x.phone from unnest(p_phones) as x(phone)) p
    where c.campaign_id = p_campaign and c.phone = p.phone and c.status = 'pending'
      and contacts_dnc_listed(c.phone, c.campaign_id);
  get diagnostics n = row_count;
  return n;
end $$;

create function contacts_dnc_inserted() returns trigger language plpgsql as $$
begin
  if current_setting('ai_dialer.dnc_settle', true) = 'deferred'
     or not exists (select 1 from new_rows n where n.status = 'pending') then
    return null;
  end if;
  perform pg_advisory_xact_lock(7421004);
  update contacts c set status = 'dnc', last_outcome = 'dnc', updated_at = now()
    where c.id in (select n.id from new_rows n where n.status = 'pending' and contacts_dnc_listed(n.phone, n.campaign_id))
      and c.status = 'pending';
  return null;
end $$;

create trigger contacts_dnc_inserted after insert on contacts referencing new table as new_rows
  for each statement execute function contacts_dnc_inserted();

create function contacts_dnc_pending() returns trigger language plpgsql as $$
begin
  if new.phone is distinct from old.phone or new.campaign_id is distinct from old.campaign_id then
    perform pg_advisory_xact_lock(7421004);
  end if;
  if contacts_dnc_listed(new.phone, new.campaign_id) then
    new.status := 'dnc';
    new.last_outcome := 'dnc';
  end if;
  return new;
end $$;

create trigger contacts_dnc_pending before update of status, phone, campaign_id on contacts for each row
  when (new.status = 'pending' and (old.status is distinct from 'pending' or new.phone is distinct from old.phone
        or new.campaign_id is distinct from old.campaign_id))
  execute function contacts_dnc_pending();

-- the contacts already queued: swept once
select pg_advisory_xact_lock(7421004);
update contacts c set status = 'dnc', last_outcome = 'dnc', updated_at = now()
  where c.status = 'pending' and contacts_dnc_listed(c.phone, c.campaign_id);
