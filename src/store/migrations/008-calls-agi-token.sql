-- name: calls: per-call AGI token hash and the session that drives the call (a FastAGI session can only drive a call it was given)
-- calls.agi_token_hash: SHA-256 (hex) of the call's CALL_TOKEN channel variable (src/agi/call-token.ts);
-- calls.agi_session: the FastAGI session admitted to drive the call (set once, atomically).
alter table calls add column if not exists agi_token_hash text;
alter table calls add column if not exists agi_session text;
