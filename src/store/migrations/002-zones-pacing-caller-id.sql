-- name: campaign queue: time zones per campaign, pacing buckets, caller-id rotation
create table campaign_zones (
  campaign_id integer not null references campaigns(id) on delete cascade,
  tz text not null,
  primary key (campaign_id, tz)
);

-- campaign_zones: the distinct time zones of a campaign's contacts, kept by triggers on contacts
-- (an unknown zone name raises in `now() at time zone`, so a bad zone fails the insert or update)
create function contacts_zones_ins() returns trigger language plpgsql as $$
begin
  insert into campaign_zones (campaign_id, tz)
    select z.campaign_id, z.tz
    from (select distinct n.campaign_id, n.timezone as tz from new_rows n where n.timezone is not null) z
    where (now() at time zone z.tz) is not null
    on conflict do nothing;
  return null;
end $$;

create trigger contacts_zones_ins after insert on contacts
  referencing new table as new_rows
  for each statement execute function contacts_zones_ins();

create function contacts_zone_upd() returns trigger language plpgsql as $$
begin
  if new.timezone is not null then
    perform now() at time zone new.timezone;
    insert into campaign_zones (campaign_id, tz) values (new.campaign_id, new.timezone) on conflict do nothing;
  end if;
  return new;
end $$;

create trigger contacts_zone_upd before update of timezone, campaign_id on contacts
  for each row when (new.timezone is distinct from old.timezone or new.campaign_id <> old.campaign_id)
  execute function contacts_zone_upd();

insert into campaign_zones (campaign_id, tz)
  select distinct campaign_id, timezone from contacts where timezone is not null
  on conflict do nothing;

create table rate_limits (
  key text primary key,
  rate double precision not null check (rate > 0),
  burst double precision not null check (burst > 0),
  tokens double precision not null,
  updated_at timestamptz not null default now()
);

create sequence caller_id_rr;

create index calls_worker_open on calls (worker, created_at) where status in ('initiated','ringing','in_progress');
