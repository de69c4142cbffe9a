-- name: transfers to a human: where the call went, how (blind or attended) and how it ended
--
-- agi-hangup writes it (src/calls/records.ts transferred()): {"to": "sales@ai-dialer-transfer",
-- "mode": "blind" | "attended", "status": "transferred" (blind) | "answered" | "no_answer" | "busy" |
-- "congestion" | "unavailable" | "caller_hung_up" | "failed", "dialStatus": "ANSWER", "whisper": true,
-- "at": "<ISO time>", "elapsedMs": 14230}. An attended transfer that did not reach the agent is kept too.

alter table calls add column transfer jsonb;
