-- name: campaign queue: due contacts by time zone (claim scans only open zones)
create index contacts_due_zone on contacts (campaign_id, (coalesce(timezone, '')), next_attempt_at, id) where status = 'pending';
