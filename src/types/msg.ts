/**
 * The msg contract: what every node of the package reads from and writes to `msg`.
 * Node-RED clones messages, so live objects never travel in `msg`: only ids that point into
 * registries (the AGI session by `msg.call.sessionId`). Documented for users in
 * docs/reference/msg.md; this file is the single source for the code.
 */
import type { AgiCall } from '../agi/call';
import type { LlmAction, ReplySource } from '../llm/types';

/** Per-stage timing of one conversation turn, in milliseconds. */
export interface TurnTiming {
  recordMs?: number;
  /** Stream mode: silence waited after the caller's speech before the turn was ended. */
  endpointMs?: number;
  /** Stream mode: request to the LLM's first token (the whole reply when the engine does not stream). */
  llmFirstTokenMs?: number;
  /** Stream mode: text to the first audio of the reply. */
  ttsFirstAudioMs?: number;
  /** Stream mode: end of the caller's speech to our first audio frame on the wire (what the caller waits). */
  replyLatencyMs?: number;
  sttMs?: number;
  llmMs?: number;
  ttsMs?: number;
  playbackMs?: number;
  [stage: string]: number | undefined;
}

/** `msg.call`: the call a message belongs to (set by fastagi-in, ari-originate or campaign-queue). */
export interface MsgCall extends Partial<AgiCall> {
  id?: number | string;
  phone?: string;
  contact?: {
    id?: number;
    name?: string | null;
    phone?: string;
    timezone?: string | null;
    fields?: Record<string, unknown>;
    [key: string]: unknown;
  };
  outcome?:
    'answered' | 'completed' | 'busy' | 'no_answer' | 'congestion' | 'failed' | 'cancelled' | 'machine' | string;
  hangupCause?: number;
  dialStatus?: string;
  hungUp?: boolean;
  hungUpBy?: 'agi' | 'caller';
  transcript?: string;
  transferredTo?: string;
  /** agi-hangup: a transfer to a human, how it went (also stored on the call row). */
  transfer?: MsgTransfer;
  /** agi-hangup: the transcript is not stored yet (the database is unreachable; it is retried). */
  writePending?: boolean;
  [key: string]: unknown;
}

/** `msg.call.transfer`: a transfer to a human (agi-hangup). */
export interface MsgTransfer {
  /** `extension@context` the call went to (blind) or the agent dialled (attended). */
  to: string;
  mode: 'blind' | 'attended';
  /**
   * blind: `transferred`; attended: `answered` (the agent heard the whisper and was bridged),
   * `no_answer`, `busy`, `congestion`, `unavailable`, `caller_hung_up` or `failed`.
   */
  status: string;
  /** attended: Asterisk's DIALSTATUS. */
  dialStatus?: string;
  /** attended: whether the agent was played a whisper. */
  whisper?: boolean;
  /** attended, not answered: what happened next (`ai`: back to the conversation; `message`: told and hung up). */
  fallback?: 'ai' | 'message';
  at: string;
  /** attended: ringing, plus the conversation with the agent when answered, ms. */
  elapsedMs?: number;
}

/** `msg.turn`: the conversation turn being built; started by agi-record (seq 0 is the greeting). */
export interface MsgTurn {
  seq?: number;
  userText?: string;
  confidence?: number;
  botText?: string;
  action?: string;
  simulated?: boolean;
  /** `stream` or `record`: how the turn was heard and spoken. */
  media?: string;
  /** Stream mode: the caller talked over the reply and it was stopped (barge-in). */
  interrupted?: boolean;
  /** Stream mode, interrupted: the part of botText the caller heard. */
  playedText?: string;
  timing?: TurnTiming;
  engines?: Record<string, unknown>;
  /** llm-turn / tts-speak: this turn is not stored yet (the database is unreachable; it is retried). */
  writePending?: boolean;
  [key: string]: unknown;
}

/** `msg.recording`: set by agi-record (path WITH extension). */
export interface MsgRecording {
  path?: string;
  /** Stream mode: the utterance in the call's media session (the audio stays there; stt-transcribe reads it). */
  utteranceId?: string;
  /** `stream` when the turn was heard on the live stream (no file). */
  media?: 'stream' | 'record';
  /** Stream mode: it started while we were speaking (barge-in). */
  bargedIn?: boolean;
  durationMs?: number;
  digit?: string;
  /** Stream mode: every key pressed since the previous turn, in order (the one that ended it included). */
  digits?: string;
  hungUp?: boolean;
}

/** `msg.transcript`: set by stt-transcribe. */
export interface MsgTranscript {
  text: string;
  confidence?: number;
  engine?: string;
  audioMs?: number;
  elapsedMs?: number;
  simulated?: boolean;
  /** Stream mode: recognised live while the caller spoke (elapsedMs: the wait after the utterance ended). */
  live?: boolean;
}

/** `msg.partial`: stt-transcribe's third output in stream mode, a hypothesis while the caller speaks. */
export interface MsgPartial {
  text: string;
  /** 1, 2, ... within the utterance. */
  index: number;
  engine: string;
}

/** `msg.reply`: set by llm-turn. */
export interface MsgReply {
  text: string;
  done: boolean;
  /** Stream mode: the reply is still being generated; tts-speak speaks it as it comes and fills text/done/action. */
  streamId?: string;
  source?: ReplySource | string;
  action?: LlmAction | { type: string; [key: string]: unknown };
}

/** `msg.error`: on a node's failure output (its second output). */
export interface MsgError {
  stage: string;
  kind: string;
  engine?: string;
  message: string;
}

/** Event types call-broadcast publishes (`msg.event`). */
export type MsgEventType =
  'call_started' | 'call_answered' | 'status' | 'conversation_turn' | 'call_ended' | 'campaign_progress';

/** A message as the dialer's nodes see it. Every field is optional: each node checks what it needs. */
export interface DialerMsg {
  _msgid?: string;
  payload?: unknown;
  topic?: string;
  call?: MsgCall;
  turn?: MsgTurn;
  recording?: MsgRecording;
  transcript?: MsgTranscript;
  partial?: MsgPartial;
  reply?: MsgReply;
  error?: MsgError;
  event?: MsgEventType | string;
  /** For call-broadcast's `status` event: the status and a detail (agi-hangup sets it for a transfer). */
  status?: string | { status: string; detail?: string; transfer?: MsgTransfer };
  /** Set by the flow before agi-hangup: this call's transfer mode and whisper text (instead of the node's). */
  transfer?: { mode?: 'blind' | 'attended'; whisper?: string };
  [key: string]: unknown;
}
