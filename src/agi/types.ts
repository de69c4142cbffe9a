/**
 * The AGI session surface other modules and nodes rely on. The agi/ module implements it;
 * nodes look sessions up by id in the registry (msg.call.sessionId), because Node-RED clones msgs.
 */
import type { EventEmitter } from 'events';

/** A parsed reply line: `200 result=N (data) endpos=M`. */
export interface AgiReply {
  code: number;
  result: number;
  /** Text in parentheses after the result, e.g. `timeout`, `dtmf`, `hangup`, or a variable's value. */
  data?: string;
  endpos?: number;
  /** The raw line(s) as received. */
  raw: string;
}

export interface AgiEnvironment {
  /** Every agi_* key without its `agi_` prefix, e.g. `channel`, `uniqueid`, `network_script`. */
  [key: string]: string;
}

export interface PlaybackResult {
  /** Samples played (8 kHz), from endpos. */
  endpos: number;
  /** True when the file did not exist or could not be played (`result=-1 endpos=0`). */
  failed: boolean;
  /** Digit pressed to interrupt playback, if any. */
  digit?: string;
  /** True when the caller hung up during playback. */
  hungUp: boolean;
}

export interface RecordOptions {
  /** Full path WITHOUT extension: Asterisk appends `.<format>`. */
  path: string;
  format?: 'wav' | 'gsm' | 'sln';
  escapeDigits?: string;
  /** Maximum length in ms (-1: none). */
  maxMs: number;
  /** Seconds of silence that end the recording (0: none). */
  silenceSeconds?: number;
  beep?: boolean;
}

export interface RecordResult {
  /** Path WITH extension, as written by Asterisk. */
  file: string;
  endpos: number;
  durationMs: number;
  endedBy: 'silence_or_max' | 'dtmf' | 'hangup';
  digit?: string;
  hungUp: boolean;
}

export interface AgiSession extends EventEmitter {
  readonly id: string;
  readonly env: AgiEnvironment;
  /** True once Asterisk sent `HANGUP` or the socket closed. */
  readonly hungUp: boolean;
  /** The call this session belongs to, once known (set by fastagi-in; indexed by the registry). */
  callId?: string;
  answer(): Promise<AgiReply>;
  /** STREAM FILE of a full path WITHOUT extension; the timeout is derived from `durationMs` plus a margin. */
  streamFile(pathWithoutExt: string, opts?: { escapeDigits?: string; durationMs?: number }): Promise<PlaybackResult>;
  recordFile(opts: RecordOptions): Promise<RecordResult>;
  /** `evenIfHungUp`: also on a hung-up channel (Asterisk answers GET VARIABLE there while the AGI runs). */
  getVariable(name: string, opts?: { evenIfHungUp?: boolean }): Promise<string | undefined>;
  getFullVariable(expr: string): Promise<string | undefined>;
  setVariable(name: string, value: string): Promise<AgiReply>;
  /** EXEC an application; `timeoutMs` for a long-running one (WaitForSilence, Dial). */
  exec(app: string, args?: string, timeoutMs?: number): Promise<AgiReply>;
  waitForDigit(timeoutMs: number): Promise<string | undefined>;
  verbose(message: string, level?: number): Promise<AgiReply>;
  hangup(): Promise<AgiReply | undefined>;
  /** Raw escape hatch: the caller builds the command; arguments are still refused if they hold CR/LF. */
  command(line: string, timeoutMs?: number): Promise<AgiReply>;
  /** Close the socket (after HANGUP, or at node close). */
  close(): void;
  /** True once the session closed (its socket is gone; it emitted 'close'). */
  readonly closed?: boolean;
  /** True once the session is ending on our side (endPolitely): the flow's commands are refused. */
  readonly ending?: boolean;
  /** Goodbye + hangup by the session itself, wherever the conversation is (see FastAgiSession). */
  endPolitely?(
    reason: string,
    goodbye: (giveUp: AbortSignal) => Promise<{ path: string; durationMs: number; release?(): void } | undefined>,
  ): Promise<boolean>;
}
