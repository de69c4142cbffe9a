-- name: whole-call recordings: the file of a call (relative to RECORDINGS_DIR) and when retention deleted it
--
-- A campaign with settings.recording.enabled records every call with MixMonitor (the dialplan writes
-- RECORDINGS_DIR/calls/call-<id>.wav); the call row names the file. Files of calls that ended more than
-- settings.recording.retentionDays ago are deleted (src/calls/call-recordings.ts): recording_deleted_at.

alter table calls add column recording_path text;
alter table calls add column recording_deleted_at timestamptz;
create index calls_recordings_kept on calls (ended_at) where recording_path is not null and recording_deleted_at is null;
