-- name: contact claim: a warm-up for new connections (the claim path compiled and planned before the first claim), index plans for the claim's trigger lookups whatever the statistics, and the do-not-call sweep of inserts planned per statement
--
-- Why (issue #17, measured in docs/contributing/benchmarks.md, session 16): the first claim on a new
-- connection compiles claim_contacts and every trigger function it fires (on contacts, calls, the
-- foreign keys), and plans each of their statements: 40-50 ms of backend CPU against 2-4 ms for a claim
-- on a warm connection. With claims paced at a fixed rate, that one statement delays the worker's next
-- few, which set the statement p99 at 4 workers x 8 at 5,000 contacts/s (10-30 ms stalls). The store now
-- runs claim_warm() once on each new PostgreSQL connection, before the connection serves anything.
--
-- claim_warm(): in a subtransaction it always rolls back, a throwaway running campaign (id = minus the
-- backend's pid: unique among live connections, no sequence value taken) with one caller ID and no
-- contact; claim_contacts on it (compiles the function and plans all its statements; nothing to claim, so
-- no sequence advances); then the claim's own writes by hand on one pending contact of the database, if
-- one is found among the 100 newest, locked with SKIP LOCKED (a claimer skips it for those few
-- milliseconds, as it skips any contact another claim holds): the contact marked in_call (its triggers: no
-- claim while a call is open, its queue row deleted), a call row with an explicit id (the slot triggers, the
-- foreign key checks), the caller ID's use. Everything is rolled back; nothing outside the transaction is
-- touched (no sequence, no notification). No contact is inserted: the insert triggers on contacts read
-- their transition table, and a plan cached for one warm-up row would be kept for every later import on
-- that connection (measured: 3,000 contacts inserted in 81 s after such a warm-up, 0.24 s without).
-- Returns null when warm, else the error's message (the store ignores it: a failed warm-up only leaves
-- the first claim cold).
--
-- contacts_no_claim_while_open and contacts_queue_upd: their lookups (calls by contact among the open
-- calls; the queue row by its key) are planned once per connection and cached. Planned while the table
-- is empty or its statistics say so (a new install; a server with autovacuum off never re-analyzes), the
-- plan is a sequential scan, kept for the connection's life: then every claimed contact read every open
-- call or the whole queue (measured: the no-open-call check scanned 5,644 call rows for each contact
-- after 5,760 claims on a copy whose statistics were taken with calls empty). Sequential scans are off
-- for these two functions, so their plans use the indexes whatever the statistics.
alter function contacts_no_claim_while_open() set enable_seqscan = off;
alter function contacts_queue_upd() set enable_seqscan = off;

create function claim_warm() returns text language plpgsql as $$
declare
  v_id int := -pg_backend_pid();
  v_got int;
  v_contact int;
begin
  begin
    insert into campaigns (id, name, status, timezone, window_start, window_end, max_concurrent, max_attempts)
      values (v_id, 'claim warm-up', 'running', 'UTC', '00:00', '23:59:59', 8, 1);
    insert into phone_numbers (id, campaign_id, number) values (v_id, v_id, '+10000000000');
    select o_inserted into v_got from claim_contacts(v_id, 8, null, 'claim warm-up', 2);
    select c.id into v_contact from contacts c
      where c.id = any (array(select x.id from (select n.id, n.status from contacts n order by n.id desc limit 100) x
                                where x.status = 'pending'))
        and c.status = 'pending'
      limit 1
      for update of c skip locked;
    if v_contact is not null then
      update contacts c set status = 'in_call', attempts = c.attempts + 1, last_call_id = v_id, claimed_at = now(),
          claimed_by = 'claim warm-up', updated_at = now()
        where c.id = v_contact;
    end if;
    insert into calls (id, campaign_id, contact_id, direction, phone, caller_id, status, attempt, worker, slot)
      values (v_id, v_id, v_contact, 'outbound', '+10000000001', '+10000000000', 'initiated', 1, 'claim warm-up', 0);
    update phone_numbers p set last_used_at = now(), use_count = p.use_count + 1 where p.id = v_id;
    raise sqlstate 'ZW001';
  exception
    when sqlstate 'ZW001' then
      return null;
    when others then
      return sqlerrm;
  end;
end $$;

-- contacts_dnc_inserted (migration 30): its sweep reads the statement's new rows (a transition table), and
-- PostgreSQL plans such a statement once per connection for the row count of its first run and keeps the
-- plan. After a first insert of one contact on a connection whose planner saw contacts as small (a new
-- database; statistics never taken), the plan kept was contacts outer, the new rows scanned again for every
-- contact with the do-not-call probe on each pair: every later import on that connection cost new rows x
-- contacts probes (measured on main at 8e7eef6: one contact, then 3,000 in one statement: 45 s; 1,000: 5.7 s).
-- Now the probe runs once per new row whatever the plan (the listed rows first, a materialized CTE), and the
-- sweep is dynamic SQL, planned for each statement's rows (one plan per insert statement, not per row).
create or replace function contacts_dnc_inserted() returns trigger language plpgsql as $$
begin
  if current_setting('ai_dialer.dnc_settle', true) = 'deferred'
     or not exists (select 1 from new_rows n where n.status = 'pending') then
    return null;
  end if;
  perform pg_advisory_xact_lock(7421004);
  execute $sql$
    with listed as materialized (
      select n.id from new_rows n where n.status = 'pending' and contacts_dnc_listed(n.phone, n.campaign_id)
    )
    update contacts c set status = 'dnc', last_outcome = 'dnc', updated_at = now()
      where c.id in (select l.id from listed l) and c.status = 'pending'$sql$;
  return null;
end $$;
