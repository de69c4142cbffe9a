-- name: stream-mode turns: how the turn was heard and spoken, barge-in, and the caller's wait
--
-- media: 'record' (RECORD FILE / STREAM FILE) or 'stream' (AudioSocket); null for turns stored before.
-- interrupted / played_text: the caller talked over the reply (barge-in) and heard only played_text.
-- endpoint_ms: silence waited after the caller's speech; llm_first_token_ms, tts_first_audio_ms;
-- reply_latency_ms: end of the caller's speech to our first audio frame on the wire.
alter table call_turns
  add column media text,
  add column interrupted boolean not null default false,
  add column played_text text,
  add column endpoint_ms integer,
  add column llm_first_token_ms integer,
  add column tts_first_audio_ms integer,
  add column reply_latency_ms integer;
