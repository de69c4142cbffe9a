/**
 * Call records and their turns: the journal every part of the lifecycle writes to.
 * Status moves forward only: a final status is never overwritten by a late event.
 */
import { namedStatement, type Queryable } from './db';
import { DialerError } from '../util/errors';

export type CallStatus =
  | 'initiated'
  | 'ringing'
  | 'in_progress'
  | 'completed'
  | 'failed'
  | 'no_answer'
  | 'busy'
  | 'congestion'
  | 'cancelled'
  | 'machine';

export const FINAL_STATUSES: readonly CallStatus[] = [
  'completed',
  'failed',
  'no_answer',
  'busy',
  'congestion',
  'cancelled',
  'machine',
];
export const OPEN_STATUSES: readonly CallStatus[] = ['initiated', 'ringing', 'in_progress'];

export interface CallRow {
  id: number;
  campaign_id: number | null;
  contact_id: number | null;
  direction: 'outbound' | 'inbound';
  phone: string | null;
  caller_id: string | null;
  status: CallStatus;
  outcome: string | null;
  reason: string | null;
  attempt: number;
  hangup_cause: number | null;
  dial_status: string | null;
  amd_status: string | null;
  amd_cause: string | null;
  channel_id: string | null;
  agi_uniqueid: string | null;
  /** SHA-256 of the call's CALL_TOKEN (src/agi/call-token.ts) and the AGI session that drives it. */
  agi_token_hash?: string | null;
  agi_session?: string | null;
  worker: string | null;
  transcript: string | null;
  /** Whole-call recording, relative to RECORDINGS_DIR (src/calls/call-recordings.ts). */
  recording_path?: string | null;
  recording_deleted_at?: Date | null;
  metadata: Record<string, unknown>;
  created_at: Date;
  answered_at: Date | null;
  ended_at: Date | null;
  duration_ms: number | null;
  talk_ms: number | null;
}

export interface TurnRow {
  id: number;
  call_id: number;
  seq: number;
  user_text: string | null;
  bot_text: string | null;
  confidence: number | null;
  action: string | null;
  record_ms: number | null;
  stt_ms: number | null;
  llm_ms: number | null;
  tts_ms: number | null;
  playback_ms: number | null;
  total_ms: number | null;
  engines: Record<string, unknown>;
  error: string | null;
  media: string | null;
  interrupted: boolean;
  played_text: string | null;
  endpoint_ms: number | null;
  llm_first_token_ms: number | null;
  tts_first_audio_ms: number | null;
  reply_latency_ms: number | null;
  created_at: Date;
}

export interface TurnInput {
  seq: number;
  userText?: string | null;
  botText?: string | null;
  confidence?: number | null;
  action?: string | null;
  timing?: {
    recordMs?: number;
    sttMs?: number;
    llmMs?: number;
    ttsMs?: number;
    playbackMs?: number;
    endpointMs?: number;
    llmFirstTokenMs?: number;
    ttsFirstAudioMs?: number;
    replyLatencyMs?: number;
  };
  engines?: Record<string, unknown>;
  error?: string | null;
  /** Stream mode (migration 025): how the turn was heard and spoken, barge-in. */
  media?: string | null;
  interrupted?: boolean;
  playedText?: string | null;
}

const finalList = FINAL_STATUSES.map((s) => `'${s}'`).join(',');

/** Create an inbound call record (outbound records are created by the campaign claim). */
export async function createInboundCall(
  q: Queryable,
  c: {
    phone?: string | null;
    callerId?: string | null;
    channel?: string | null;
    uniqueid?: string | null;
    campaignId?: number | null;
    /** The FastAGI session that drives it (src/agi/admit.ts). */
    agiSession?: string | null;
  },
): Promise<CallRow> {
  const r = await q.query<CallRow>(
    `insert into calls (direction, phone, caller_id, status, channel_id, agi_uniqueid, campaign_id, answered_at, agi_session)
     values ('inbound', $1, $2, 'in_progress', $3, $4, $5, now(), $6) returning *`,
    [
      c.phone ?? null,
      c.callerId ?? null,
      c.channel ?? null,
      c.uniqueid ?? null,
      c.campaignId ?? null,
      c.agiSession ?? null,
    ],
  );
  return r.rows[0];
}

/** The conversation started (AGI session arrived): status in_progress unless already final. */
export async function markInProgress(
  q: Queryable,
  callId: number,
  c: { channel?: string | null; uniqueid?: string | null; amdStatus?: string | null; amdCause?: string | null } = {},
): Promise<boolean> {
  const r = await q.query(
    `update calls set status = 'in_progress', answered_at = coalesce(answered_at, now()),
        channel_id = coalesce($2, channel_id), agi_uniqueid = coalesce($3, agi_uniqueid),
        amd_status = coalesce($4, amd_status), amd_cause = coalesce($5, amd_cause)
      where id = $1 and status not in (${finalList})`,
    [callId, c.channel ?? null, c.uniqueid ?? null, c.amdStatus ?? null, c.amdCause ?? null],
  );
  return r.rowCount > 0;
}

/** Record that the far end answered (from ARI). */
export async function markAnswered(q: Queryable, callId: number, channelId?: string | null): Promise<boolean> {
  const r = await q.query(
    `update calls set answered_at = coalesce(answered_at, now()), channel_id = coalesce($2, channel_id),
        status = case when status in ('initiated','ringing') then 'in_progress' else status end
      where id = $1 and status not in (${finalList})`,
    [callId, channelId ?? null],
  );
  return r.rowCount > 0;
}

const MARK_ANSWERED_IN_SQL = namedStatement(
  'aid_mark_answered_in',
  `with u as (
       update calls set answered_at = coalesce(answered_at, now()), channel_id = coalesce($2, channel_id),
          status = case when status in ('initiated','ringing') then 'in_progress' else status end
        where id = $1 and status not in (${finalList}))
     select campaign_id from calls where id = $1`,
);

/** markAnswered, and the call's campaign (null when it has none or is unknown), in one statement. */
export async function markAnsweredIn(q: Queryable, callId: number, channelId?: string | null): Promise<number | null> {
  const r = await q.query<{ campaign_id: number | null }>(MARK_ANSWERED_IN_SQL, [callId, channelId ?? null]);
  return r.rows[0]?.campaign_id ?? null;
}

/** Append (or replace, by seq) one conversation turn with its per-stage timing. */
export async function appendTurn(q: Queryable, callId: number, t: TurnInput): Promise<TurnRow> {
  // Never written to a closed call (a late or forged session cannot rewrite a finished conversation).
  const [row] = await appendTurns(q, [{ callId, turn: t }]);
  if (!row) throw new DialerError('call_closed', `call ${callId} is closed or unknown: turn ${t.seq} not stored`);
  return row;
}

/**
 * appendTurns' statement: $1 is a JSON array of turn rows. Prepared once per connection; each row's call is
 * found by its primary key (a lateral probe), so the cost of a turn write never grows with the calls table.
 */
const APPEND_TURNS_SQL = namedStatement(
  'aid_append_turns',
  `insert into call_turns (call_id, seq, user_text, bot_text, confidence, action, record_ms, stt_ms, llm_ms, tts_ms, playback_ms, total_ms, engines, error,
       media, interrupted, played_text, endpoint_ms, llm_first_token_ms, tts_first_audio_ms, reply_latency_ms)
     select v.call_id, v.seq, v.user_text, v.bot_text, v.confidence, v.action, v.record_ms, v.stt_ms, v.llm_ms, v.tts_ms,
            v.playback_ms, v.total_ms, coalesce(v.engines, '{}'::jsonb), v.error,
            v.media, coalesce(v.interrupted, false), v.played_text, v.endpoint_ms, v.llm_first_token_ms, v.tts_first_audio_ms,
            v.reply_latency_ms
       from jsonb_to_recordset($1::jsonb) as v(call_id integer, seq integer, user_text text, bot_text text,
            confidence double precision, action text, record_ms integer, stt_ms integer, llm_ms integer, tts_ms integer,
            playback_ms integer, total_ms integer, engines jsonb, error text, media text, interrupted boolean,
            played_text text, endpoint_ms integer, llm_first_token_ms integer, tts_first_audio_ms integer,
            reply_latency_ms integer)
       -- one primary-key probe a row, whatever the estimates (a semi join may hash the whole calls table)
       cross join lateral (select 1 from calls c where c.id = v.call_id and c.status not in (${finalList}) limit 1) open_call
     on conflict (call_id, seq) do update set user_text = excluded.user_text, bot_text = excluded.bot_text,
       confidence = excluded.confidence, action = excluded.action, record_ms = excluded.record_ms, stt_ms = excluded.stt_ms,
       llm_ms = excluded.llm_ms, tts_ms = excluded.tts_ms, playback_ms = excluded.playback_ms, total_ms = excluded.total_ms,
       engines = excluded.engines, error = excluded.error, media = excluded.media, interrupted = excluded.interrupted,
       played_text = excluded.played_text, endpoint_ms = excluded.endpoint_ms, llm_first_token_ms = excluded.llm_first_token_ms,
       tts_first_audio_ms = excluded.tts_first_audio_ms, reply_latency_ms = excluded.reply_latency_ms
     returning *`,
);

/**
 * appendTurn for many calls in one statement (one round trip; the outbox groups the turns that wait at
 * the same moment). Same rules: upsert by (call, seq), never into a closed call. Returns each input's row,
 * or undefined where the call is closed or unknown. Each (call, seq) at most once per batch.
 */
export async function appendTurns(
  q: Queryable,
  items: Array<{ callId: number; turn: TurnInput }>,
): Promise<Array<TurnRow | undefined>> {
  const rows = items.map(({ callId, turn: t }) => {
    const timing = t.timing ?? {};
    const parts = [timing.recordMs, timing.sttMs, timing.llmMs, timing.ttsMs, timing.playbackMs].filter(
      (v): v is number => typeof v === 'number',
    );
    return {
      call_id: callId,
      seq: t.seq,
      user_text: t.userText ?? null,
      bot_text: t.botText ?? null,
      confidence: t.confidence ?? null,
      action: t.action ?? null,
      record_ms: round(timing.recordMs),
      stt_ms: round(timing.sttMs),
      llm_ms: round(timing.llmMs),
      tts_ms: round(timing.ttsMs),
      playback_ms: round(timing.playbackMs),
      total_ms: round(parts.length ? parts.reduce((a, b) => a + b, 0) : undefined),
      engines: t.engines ?? {},
      error: t.error ?? null,
      media: t.media ?? null,
      interrupted: t.interrupted === true,
      played_text: t.playedText ?? null,
      endpoint_ms: round(timing.endpointMs),
      llm_first_token_ms: round(timing.llmFirstTokenMs),
      tts_first_audio_ms: round(timing.ttsFirstAudioMs),
      reply_latency_ms: round(timing.replyLatencyMs),
    };
  });
  const r = await q.query<TurnRow>(APPEND_TURNS_SQL, [JSON.stringify(rows)]);
  const by = new Map<string, TurnRow>();
  for (const row of r.rows) by.set(`${row.call_id}:${row.seq}`, row);
  return items.map((i) => by.get(`${i.callId}:${i.turn.seq}`));
}

function round(v: number | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? Math.round(v) : null;
}

/** The transcript of a call, built from its turns in order ("Agent: ...\nCaller: ..."). */
export async function buildTranscript(q: Queryable, callId: number): Promise<string> {
  return transcriptText(await transcriptTurns(q, callId));
}

/** The stored turns of a call, in order: what `call_ended` carries as its whole transcript. */
export async function transcriptTurns(
  q: Queryable,
  callId: number,
): Promise<Array<{ seq: number; userText: string | null; botText: string | null }>> {
  const r = await q.query<{ seq: number; user_text: string | null; bot_text: string | null }>(
    'select seq, user_text, bot_text from call_turns where call_id = $1 order by seq',
    [callId],
  );
  return r.rows.map((t) => ({ seq: Number(t.seq), userText: t.user_text, botText: t.bot_text }));
}

/** The turns as the stored text transcript ("Caller: ..." / "Agent: ..." lines). */
export function transcriptText(turns: Array<{ userText: string | null; botText: string | null }>): string {
  const lines: string[] = [];
  for (const t of turns) {
    if (t.userText) lines.push(`Caller: ${t.userText}`);
    if (t.botText) lines.push(`Agent: ${t.botText}`);
  }
  return lines.join('\n');
}

/** Store the aggregated transcript (idempotent; the conversation ended): one statement. */
export async function finaliseTranscript(q: Queryable, callId: number): Promise<string> {
  // Once a closed call has its transcript, it is never rewritten. The text is transcriptText's, built in SQL.
  const r = await q.query<{ text: string }>(FINALISE_SQL, [callId]);
  return r.rows[0]?.text ?? '';
}

/** The transcript as transcriptText builds it ("Caller: ..." / "Agent: ..." lines in seq order), in SQL. */
export const TRANSCRIPT_SQL = `coalesce((select string_agg(v.line, E'\\n' order by t.seq, v.ord) from call_turns t
   cross join lateral (values (1, 'Caller: ' || nullif(t.user_text, '')), (2, 'Agent: ' || nullif(t.bot_text, ''))) v(ord, line)
   where t.call_id = $1), '')`;

const FINALISE_SQL = namedStatement(
  'aid_finalise_transcript',
  `with t as (select ${TRANSCRIPT_SQL} as text),
        u as (update calls set transcript = (select text from t)
               where id = $1 and (status not in (${finalList}) or transcript is null))
   select text from t`,
);

export interface OutcomeInput {
  status: Exclude<CallStatus, 'initiated' | 'ringing' | 'in_progress'>;
  outcome?: string;
  reason?: string | null;
  hangupCause?: number | null;
  dialStatus?: string | null;
  durationMs?: number | null;
  talkMs?: number | null;
}

/**
 * Close a call with its final status. Applied once: returns false when the call was already final
 * (a late or duplicate outcome changes nothing).
 */
export async function closeCall(q: Queryable, callId: number, o: OutcomeInput): Promise<boolean> {
  const r = await q.query(
    `update calls set status = $2, outcome = coalesce($3, $2), reason = coalesce($4, reason), hangup_cause = coalesce($5, hangup_cause),
        dial_status = coalesce($6, dial_status), ended_at = now(),
        duration_ms = coalesce($7, (extract(epoch from (now() - created_at)) * 1000)::integer),
        talk_ms = coalesce($8, case when answered_at is not null then (extract(epoch from (now() - answered_at)) * 1000)::integer end)
      where id = $1 and status not in (${finalList})`,
    [
      callId,
      o.status,
      o.outcome ?? null,
      o.reason ?? null,
      o.hangupCause ?? null,
      o.dialStatus ?? null,
      o.durationMs ?? null,
      o.talkMs ?? null,
    ],
  );
  return r.rowCount > 0;
}

/** A call with its turns, for the HTTP API and tests. */
export async function getCall(q: Queryable, callId: number): Promise<(CallRow & { turns: TurnRow[] }) | undefined> {
  const c = await q.query<CallRow>('select * from calls where id = $1', [callId]);
  if (!c.rows.length) return undefined;
  delete c.rows[0].agi_token_hash; // a secret's hash: never leaves the store
  const t = await q.query<TurnRow>('select * from call_turns where call_id = $1 order by seq', [callId]);
  return { ...c.rows[0], turns: t.rows };
}
