-- name: campaign queue: drop contacts_due (the claim reads contacts_due_zone; one index less to keep on import and retry)
drop index if exists contacts_due;
