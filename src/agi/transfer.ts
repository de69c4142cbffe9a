/**
 * Handing a call to a human.
 *
 * - Blind: the AGI session sets where the dialplan continues (SET CONTEXT, SET EXTENSION, SET PRIORITY)
 *   and ends without hanging up, so Asterisk carries on there.
 * - Attended: the AGI session itself dials the agent (EXEC Dial of `Local/<exten>@<context>`, the same
 *   destination a blind transfer continues at). When the agent answers, Dial's `U()` option runs the
 *   shipped `ai-dialer-whisper` subroutine on the agent's leg: it plays the whisper (`AI_WHISPER`,
 *   inherited from the caller's channel) to the agent only, then the two are bridged. The caller hears
 *   ringing meanwhile. Dial returns when the bridge ends, or at once when the agent is busy, rejects, or
 *   does not answer within the timeout: then DIALSTATUS says why and the call is still ours (fallback).
 */
import { StageError, DialerError } from '../util/errors';
import type { AgiSession } from './types';

export const DEFAULT_TRANSFER_CONTEXT = 'ai-dialer-transfer';
/** The dialplan subroutine (asterisk-config/extensions-agi.conf) that plays the whisper to the agent. */
export const WHISPER_SUBROUTINE = 'ai-dialer-whisper';

export interface TransferTarget {
  context: string;
  extension: string;
}

/** `exten` or `exten@context`; only dialplan-safe characters, so nothing can be injected. */
export function parseTransferTarget(destination: unknown, defaultContext = DEFAULT_TRANSFER_CONTEXT): TransferTarget {
  const d = typeof destination === 'string' ? destination.trim() : '';
  const m = /^([A-Za-z0-9_+*#.-]{1,40})(?:@([A-Za-z0-9_-]{1,40}))?$/.exec(d);
  if (!m)
    throw new DialerError(
      'agi_bad_transfer',
      `transfer destination must be "extension" or "extension@context" (got ${JSON.stringify(d).slice(0, 60)})`,
    );
  if (!/^[A-Za-z0-9_-]{1,40}$/.test(defaultContext))
    throw new DialerError('agi_bad_transfer', `bad transfer context "${defaultContext}"`);
  return { extension: m[1], context: m[2] ?? defaultContext };
}

/** Point the channel at the target and close the AGI session (the channel stays up). */
export async function transferCall(session: AgiSession, target: TransferTarget): Promise<void> {
  await session.command(`SET CONTEXT ${target.context}`);
  await session.command(`SET EXTENSION ${target.extension}`);
  await session.command('SET PRIORITY 1');
  session.close();
}

/** How an attended transfer ended. */
export type AttendedStatus =
  /** the agent answered, heard the whisper and was bridged to the caller (the bridge has ended since) */
  | 'answered'
  /** rang for the whole timeout */
  | 'no_answer'
  /** busy, or rejected the call (SIP 486 / 603) */
  | 'busy'
  /** the network could not reach the agent (SIP 503, no route) */
  | 'congestion'
  | 'unavailable'
  /** the caller hung up while the agent's phone rang */
  | 'caller_hung_up'
  | 'failed';

export interface AttendedResult {
  status: AttendedStatus;
  /** Asterisk's DIALSTATUS (ANSWER, NOANSWER, BUSY, CONGESTION, CHANUNAVAIL, CANCEL, ...); '' when unknown. */
  dialStatus: string;
  /** The caller's line is gone (hung up while ringing, or during/after the bridge). */
  callerHungUp: boolean;
  /** Time from the dial to Dial's return, ms (ringing plus the bridged conversation when answered). */
  elapsedMs: number;
}

export interface AttendedOptions {
  /** How long the agent's phone rings, seconds (Dial's timeout). */
  timeoutSeconds: number;
  /** Audio played to the agent before the bridge: a path WITHOUT extension that Asterisk can read. */
  whisperPath?: string;
}

/** A whisper path goes into Playback() in the dialplan: only characters that cannot end its argument. */
export function checkWhisperPath(p: string): string {
  if (!/^[A-Za-z0-9_/.+-]{1,400}$/.test(p) || p.includes('..'))
    throw new DialerError('agi_bad_transfer', `whisper audio path has characters the dialplan cannot take safely`);
  return p;
}

/** DIALSTATUS to how the attended transfer ended. */
export function attendedStatus(dialStatus: string): AttendedStatus {
  switch (dialStatus.toUpperCase()) {
    case 'ANSWER':
      return 'answered';
    case 'NOANSWER':
      return 'no_answer';
    case 'BUSY':
      return 'busy';
    case 'CONGESTION':
      return 'congestion';
    case 'CHANUNAVAIL':
      return 'unavailable';
    case 'CANCEL':
      return 'caller_hung_up';
    default:
      return 'failed';
  }
}

/**
 * Dial the agent from the caller's channel and wait: resolves when the agent was bridged and the bridge
 * ended, or when the agent was not reached (the caller's line is still ours then, unless it hung up).
 */
export async function attendedTransfer(
  session: AgiSession,
  target: TransferTarget,
  opts: AttendedOptions,
): Promise<AttendedResult> {
  const timeout = Math.max(1, Math.min(600, Math.round(opts.timeoutSeconds)));
  // `_`: inherited by the channel Dial creates (the agent's leg), where the whisper subroutine reads it
  await session.setVariable('_AI_WHISPER', opts.whisperPath ? checkWhisperPath(opts.whisperPath) : '');
  const t0 = Date.now();
  let result: number;
  try {
    // g: the call stays ours when the agent hangs up first; no AGI timeout: the bridge lasts as long as
    // the conversation with the agent
    const r = await session.exec(
      'Dial',
      `Local/${target.extension}@${target.context},${timeout},gU(${WHISPER_SUBROUTINE})`,
      0,
    );
    result = r.result;
  } catch (err) {
    if (!(err instanceof StageError && err.kind === 'hangup')) throw err;
    result = -1;
  }
  if (result === -2) throw new StageError('agi', 'not_installed', 'Asterisk has no Dial application (app_dial.so)');
  // GET VARIABLE is one of the AGI commands Asterisk still answers on a hung-up channel
  const dialStatus = ((await session.getVariable('DIALSTATUS', { evenIfHungUp: true }).catch(() => '')) ?? '')
    .trim()
    .toUpperCase();
  const callerHungUp = result < 0 || session.hungUp;
  return {
    status: dialStatus ? attendedStatus(dialStatus) : callerHungUp ? 'caller_hung_up' : 'failed',
    dialStatus,
    callerHungUp,
    elapsedMs: Date.now() - t0,
  };
}
