-- name: campaign leases (owner + heartbeat per runtime running a campaign); no claim of a contact with an open call
--
-- campaign_leases: one row per (campaign, owner) while a runtime runs the campaign; the owner renews
-- heartbeat_at every LEASE_TTL / 3 (src/store/leases.ts). A running campaign without a live lease is
-- stalled and taken over by any runtime with a campaign queue (src/campaign/manager.ts).
--
-- contacts_no_claim_while_open: a contact that still has an open call (initiated / ringing /
-- in_progress: a channel for it may still be up in Asterisk) is never claimed. The claim (006) marks a
-- contact in_call with an UPDATE; this trigger drops that row from the update, so the contact is not
-- returned by the claim and no second call is created for it (docs/operations/resilience.md).

create table campaign_leases (
  campaign_id integer not null references campaigns(id) on delete cascade,
  owner text not null,
  instance text not null,
  host text,
  pid integer,
  acquired_at timestamptz not null default now(),
  heartbeat_at timestamptz not null default now(),
  primary key (campaign_id, owner)
);

create index calls_open_contact on calls (contact_id) where status in ('initiated','ringing','in_progress');

create function contacts_no_claim_while_open() returns trigger language plpgsql as $$
begin
  if exists (select 1 from calls oc where oc.contact_id = new.id and oc.status in ('initiated','ringing','in_progress')) then
    return null;
  end if;
  return new;
end
$$;

create trigger contacts_no_claim_while_open before update of status on contacts for each row
  when (new.status = 'in_call' and old.status is distinct from 'in_call')
  execute function contacts_no_claim_while_open();
