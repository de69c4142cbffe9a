/**
 * Build v1 event payloads from the msg contract of docs/reference/msg.md (msg.call, msg.turn, msg.event, ...).
 * Every builder validates what it produced against the schema and throws a DialerError naming the
 * problem, so a malformed msg is reported at the node that received it and never reaches the broker.
 */
import { DialerError } from '../util/errors';
import { CALL_OUTCOMES, CALL_STATUSES, EventType, SCHEMA_VERSION, isEventType, validateEvent } from './schema';
import { Topics, topics as defaultTopics } from './topics';
import type { MsgTransfer } from '../types/msg';

export type Id = string | number;

interface Base {
  v: number;
  type: EventType;
  ts: string;
}
interface CallIds {
  callId: Id;
  campaignId: Id | null;
  contactId?: Id | null;
  phone?: string;
}
export interface CallStartedEvent extends Base, CallIds {
  type: 'call_started';
  phone: string;
  callerId?: string | null;
  contactName?: string | null;
}
export interface CallAnsweredEvent extends Base, CallIds {
  type: 'call_answered';
  channel?: string | null;
  amd?: string | null;
}
export interface StatusEvent extends Base, CallIds {
  type: 'status';
  status: (typeof CALL_STATUSES)[number];
  detail?: string | null;
  /** A transfer to a human (agi-hangup). */
  transfer?: MsgTransfer;
  /** Writes of this call wait for the database (true) or are all stored again (false). */
  writePending?: boolean;
}
export interface Timing {
  recordMs?: number;
  sttMs?: number;
  llmMs?: number;
  ttsMs?: number;
  playbackMs?: number;
  totalMs?: number;
  endpointMs?: number;
  llmFirstTokenMs?: number;
  ttsFirstAudioMs?: number;
  replyLatencyMs?: number;
}
export interface ConversationTurnEvent extends Base, CallIds {
  type: 'conversation_turn';
  seq: number;
  userText?: string | null;
  botText?: string | null;
  confidence?: number | null;
  action?: string | null;
  /** The caller's words were read back from the simulator, not recognised from speech (demo only). */
  simulated?: boolean;
  timing: Timing;
  media?: 'record' | 'stream';
  interrupted?: boolean;
  playedText?: string;
  /** This turn is not in the database yet: it is retried until the database is back. */
  writePending?: boolean;
}
export interface TranscriptLine {
  seq: number;
  userText?: string | null;
  botText?: string | null;
}
export interface CallEndedEvent extends Base, CallIds {
  type: 'call_ended';
  outcome: (typeof CALL_OUTCOMES)[number];
  durationMs: number;
  hangupCause?: number | null;
  transcript: TranscriptLine[];
}
export interface CampaignProgressEvent extends Base {
  type: 'campaign_progress';
  campaignId: Id;
  state?: string | null;
  total?: number;
  queued: number;
  retrying: number;
  nextRetryAt?: string | null;
  dialing: number;
  active: number;
  completed: number;
  failed: number;
  no_answer: number;
  busy: number;
  /** calls that reached an answering machine (outcome machine) */
  machine: number;
  dnc_skipped: number;
  percent: number;
}
export type DialerEvent =
  CallStartedEvent | CallAnsweredEvent | StatusEvent | ConversationTurnEvent | CallEndedEvent | CampaignProgressEvent;

/** Where an event goes: topic, QoS, retain. */
export interface Routed {
  topic: string;
  event: DialerEvent;
  qos: 0 | 1;
  retain: boolean;
}

/** A flow's msg: untyped input. Every field read here is checked by the event schema (checked()) before it leaves. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped flow input, validated by validateEvent
type Msg = Record<string, any>;

function bad(message: string): DialerError {
  return new DialerError('event_invalid', message);
}

// Events of one millisecond share their timestamp string (one Date and one toISOString per ms, not per event).
let isoAt = NaN;
let iso = '';
function nowIso(now?: number): string {
  const t = now ?? Date.now();
  if (t !== isoAt) {
    iso = new Date(t).toISOString();
    isoAt = t;
  }
  return iso;
}

/**
 * `o` without its undefined fields: `o` itself when it has none, else a copy. (Not `delete`: an object
 * that lost a field is a slow dictionary to V8, for the schema check and JSON.stringify alike.)
 */
function strip<T extends object>(o: T): T {
  const r = o as Record<string, unknown>;
  let holes = false;
  for (const k in r) {
    if (r[k] === undefined) {
      holes = true;
      break;
    }
  }
  if (!holes) return o;
  const out: Record<string, unknown> = {};
  for (const k in r) if (r[k] !== undefined) out[k] = r[k];
  return out as T;
}

function checked<T extends DialerEvent>(event: T): T {
  const e = strip(event);
  const errs = validateEvent(e);
  if (errs.length) throw bad(`${e.type} event is invalid: ${errs.slice(0, 5).join('; ')}`);
  return e;
}

function callOf(msg: Msg): Msg {
  const call = msg.call;
  if (!call || typeof call !== 'object') throw bad('msg.call is missing: a call event needs msg.call.id');
  if (call.id === undefined || call.id === null || call.id === '') throw bad('msg.call.id is missing');
  return call;
}

function callIds(call: Msg): CallIds {
  return strip({
    callId: call.id,
    campaignId: call.campaignId ?? null,
    contactId: call.contactId ?? call.contact?.id ?? undefined,
    phone: call.phone ?? call.contact?.phone ?? undefined,
  });
}

/** callIds(call) written into `e` (no intermediate object; named stores, see conversationTurn). */
function putCallIds(e: Msg, call: Msg): void {
  e.callId = call.id;
  e.campaignId = call.campaignId ?? null;
  const contactId = call.contactId ?? call.contact?.id ?? undefined;
  if (contactId !== undefined) e.contactId = contactId;
  const phone = call.phone ?? call.contact?.phone ?? undefined;
  if (phone !== undefined) e.phone = phone;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export function callStarted(msg: Msg, now?: number): CallStartedEvent {
  const call = callOf(msg);
  return checked({
    v: SCHEMA_VERSION,
    type: 'call_started',
    ts: nowIso(now),
    ...callIds(call),
    phone: call.phone ?? call.contact?.phone,
    callerId: call.callerId ?? undefined,
    contactName: call.contact?.name ?? undefined,
  } as CallStartedEvent);
}

export function callAnswered(msg: Msg, now?: number): CallAnsweredEvent {
  const call = callOf(msg);
  return checked({
    v: SCHEMA_VERSION,
    type: 'call_answered',
    ts: nowIso(now),
    ...callIds(call),
    channel: call.channel ?? undefined,
    amd: call.amd?.status ?? undefined,
  } as CallAnsweredEvent);
}

/** Status from msg.status (string or {status, detail}), else msg.call.status, else msg.payload (string). */
export function status(msg: Msg, now?: number): StatusEvent {
  const call = callOf(msg);
  const s = msg.status ?? call.status ?? (typeof msg.payload === 'string' ? msg.payload : undefined);
  const st = typeof s === 'object' && s !== null ? s.status : s;
  const detail = typeof s === 'object' && s !== null ? s.detail : undefined;
  if (typeof st !== 'string') throw bad(`status event needs msg.status (one of ${CALL_STATUSES.join(', ')})`);
  return checked({
    v: SCHEMA_VERSION,
    type: 'status',
    ts: nowIso(now),
    ...callIds(call),
    status: st,
    detail,
    transfer: typeof s === 'object' && s !== null && s.transfer ? s.transfer : undefined,
    writePending:
      typeof s === 'object' && s !== null && typeof s.writePending === 'boolean' ? s.writePending : undefined,
  } as StatusEvent);
}

/**
 * A call's writes wait for the database (pending > 0), or are stored again (pending 0): a `status`
 * event with `writePending` (from the outbox, src/store/outbox.ts).
 */
export function writePendingEvent(
  w: { callId: number; campaignId: number | null; pending: number; status: string },
  now?: number,
): StatusEvent {
  const st = (CALL_STATUSES as readonly string[]).includes(w.status) ? w.status : 'in_progress';
  return checked({
    v: SCHEMA_VERSION,
    type: 'status',
    ts: nowIso(now),
    callId: w.callId,
    campaignId: w.campaignId,
    status: st,
    detail: w.pending > 0 ? `${w.pending} write(s) waiting for the database` : 'writes stored',
    writePending: w.pending > 0,
  } as StatusEvent);
}

/** The most frequent event (one per turn of every call): built field by field, in the same order as the others. */
export function conversationTurn(msg: Msg, now?: number): ConversationTurnEvent {
  const call = callOf(msg);
  const turn = msg.turn;
  if (!turn || typeof turn !== 'object') throw bad('conversation_turn needs msg.turn (seq, userText, botText, timing)');
  const t = turn.timing ?? {};
  // named stores, not put(o, k, v): a keyed store with ever-changing keys is megamorphic (slow) in V8
  const timing: Timing = {};
  let n: number | undefined;
  if ((n = num(t.recordMs)) !== undefined) timing.recordMs = n;
  if ((n = num(t.sttMs)) !== undefined) timing.sttMs = n;
  if ((n = num(t.llmMs)) !== undefined) timing.llmMs = n;
  if ((n = num(t.ttsMs)) !== undefined) timing.ttsMs = n;
  if ((n = num(t.playbackMs)) !== undefined) timing.playbackMs = n;
  if ((n = num(t.totalMs)) !== undefined) timing.totalMs = n;
  if ((n = num(t.endpointMs)) !== undefined) timing.endpointMs = n;
  if ((n = num(t.llmFirstTokenMs)) !== undefined) timing.llmFirstTokenMs = n;
  if ((n = num(t.ttsFirstAudioMs)) !== undefined) timing.ttsFirstAudioMs = n;
  if ((n = num(t.replyLatencyMs)) !== undefined) timing.replyLatencyMs = n;
  const e: Msg = { v: SCHEMA_VERSION, type: 'conversation_turn', ts: nowIso(now) };
  putCallIds(e, call);
  let x: unknown;
  if (turn.seq !== undefined) e.seq = turn.seq;
  if ((x = turn.userText ?? msg.transcript?.text ?? undefined) !== undefined) e.userText = x;
  if ((x = turn.botText ?? msg.reply?.text ?? undefined) !== undefined) e.botText = x;
  if ((x = turn.confidence ?? msg.transcript?.confidence ?? undefined) !== undefined) e.confidence = x;
  if ((x = turn.action ?? msg.reply?.action?.type ?? undefined) !== undefined) e.action = x;
  if (turn.simulated || msg.transcript?.simulated) e.simulated = true;
  e.timing = timing;
  if (turn.media === 'stream' || turn.media === 'record') e.media = turn.media;
  if (turn.interrupted === true) {
    e.interrupted = true;
    if (typeof turn.playedText === 'string') e.playedText = turn.playedText;
  }
  if (turn.writePending === true) e.writePending = true;
  return checked(e as ConversationTurnEvent);
}

/** Transcript from msg.call.transcript / msg.callTranscript / msg.history: [{seq,userText,botText}] or chat-style [{role,content}]. */
function transcriptOf(msg: Msg, call: Msg): TranscriptLine[] {
  const src = call.transcript ?? msg.callTranscript ?? msg.history ?? [];
  if (!Array.isArray(src)) throw bad('call_ended: the transcript (msg.call.transcript) must be an array of turns');
  const out: TranscriptLine[] = [];
  let seq = 0;
  for (const line of src) {
    if (!line || typeof line !== 'object') throw bad('call_ended: every transcript line must be an object');
    if ('role' in line && 'content' in line) {
      // chat history: system lines are not part of the transcript
      if (line.role === 'assistant') out.push({ seq: seq++, botText: String(line.content) });
      else if (line.role === 'user') out.push({ seq: seq++, userText: String(line.content) });
      continue;
    }
    out.push(strip({ seq: line.seq, userText: line.userText ?? undefined, botText: line.botText ?? undefined }));
  }
  return out;
}

export function callEnded(msg: Msg, now?: number): CallEndedEvent {
  const call = callOf(msg);
  const outcome = call.outcome ?? msg.outcome;
  if (typeof outcome !== 'string') throw bad(`call_ended needs msg.call.outcome (one of ${CALL_OUTCOMES.join(', ')})`);
  let durationMs = num(call.durationMs) ?? num(msg.durationMs);
  if (durationMs === undefined && call.startedAt) {
    const started = Date.parse(String(call.startedAt));
    if (Number.isFinite(started)) durationMs = Math.max(0, (now ?? Date.now()) - started);
  }
  if (durationMs === undefined) throw bad('call_ended needs msg.call.durationMs (or msg.call.startedAt)');
  return checked({
    v: SCHEMA_VERSION,
    type: 'call_ended',
    ts: nowIso(now),
    ...callIds(call),
    outcome,
    durationMs: Math.round(durationMs),
    hangupCause: call.hangupCause ?? undefined,
    transcript: transcriptOf(msg, call),
  } as CallEndedEvent);
}

const COUNTERS = [
  'queued',
  'retrying',
  'dialing',
  'active',
  'completed',
  'failed',
  'no_answer',
  'busy',
  'machine',
  'dnc_skipped',
] as const;

/** Progress from msg.progress (else msg.payload): {campaignId, queued, dialing, ...}; percent computed when absent. */
export function campaignProgress(msg: Msg, now?: number): CampaignProgressEvent {
  const p = msg.progress ?? msg.payload;
  if (!p || typeof p !== 'object')
    throw bad(
      'campaign_progress needs msg.progress {campaignId, queued, dialing, active, completed, failed, no_answer, busy, dnc_skipped}',
    );
  const campaignId = p.campaignId ?? msg.campaignId ?? msg.call?.campaignId;
  const e: Record<string, unknown> = {
    v: SCHEMA_VERSION,
    type: 'campaign_progress',
    ts: nowIso(now),
    campaignId,
    state: p.state ?? undefined,
  };
  for (const c of COUNTERS) e[c] = p[c] ?? 0;
  if (p.nextRetryAt !== undefined) e.nextRetryAt = p.nextRetryAt === null ? null : String(p.nextRetryAt);
  const done = ['completed', 'failed', 'no_answer', 'busy', 'machine', 'dnc_skipped'].reduce(
    (a, k) => a + (Number(e[k]) || 0),
    0,
  );
  const total = p.total ?? COUNTERS.reduce((a, k) => a + (Number(e[k]) || 0), 0);
  e.total = total;
  e.percent = p.percent ?? (total > 0 ? Math.min(100, Math.round((done / total) * 1000) / 10) : 0);
  return checked(e as unknown as CampaignProgressEvent);
}

const BUILDERS: Record<EventType, (msg: Msg, now?: number) => DialerEvent> = {
  call_started: callStarted,
  call_answered: callAnswered,
  status,
  conversation_turn: conversationTurn,
  call_ended: callEnded,
  campaign_progress: campaignProgress,
};

/** Build the event of `type` (default msg.event) from a msg. */
export function buildEvent(msg: Msg, type?: string, now?: number): DialerEvent {
  const t = type || msg.event;
  if (!isEventType(t))
    throw bad(`unknown event type ${JSON.stringify(t)}: set msg.event to one of ${Object.keys(BUILDERS).join(', ')}`);
  return BUILDERS[t](msg, now);
}

/** Topic, QoS and retain flag of an event: lifecycle QoS 1; campaign progress QoS 1 retained. */
export function route(event: DialerEvent, t: Topics = defaultTopics): Routed {
  if (event.type === 'campaign_progress')
    return { topic: t.campaignStatus(event.campaignId), event, qos: 1, retain: true };
  return { topic: t.callEvents(event.callId), event, qos: 1, retain: false };
}
