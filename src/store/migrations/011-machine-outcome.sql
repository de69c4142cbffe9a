-- name: call outcome machine (an answering machine: voicemail left or not), its own call status
--
-- AMD said MACHINE: the default flow leaves the campaign's voicemail message after the beep (or none)
-- and ends the call with outcome `machine`, retried after retry_policy.machine seconds like the other
-- unfinished outcomes (src/store/campaigns.ts).

alter table calls drop constraint if exists calls_status_check;
alter table calls add constraint calls_status_check
  check (status in ('initiated','ringing','in_progress','completed','failed','no_answer','busy','congestion','cancelled','machine'));
