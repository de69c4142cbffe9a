-- name: campaign queue: drop calls_worker_open (reconciliation uses calls_open; one index less per claimed call)
drop index if exists calls_worker_open;
