/**
 * Leaving a message on an answering machine (AMD said MACHINE): wait until its greeting and beep are
 * over, then play the message. Asterisk's AMD() returns while the greeting still plays; a message
 * played at once lands in the greeting and is lost. As VICIdial and the Asterisk AI Voice Agent do,
 * we wait for the silence that follows the beep (the machine is recording then) with
 * `WaitForSilence(ms,1,timeout)`, run through AGI EXEC. WaitForSilence counts silent frames it
 * receives: phones and trunks send them continuously (see docs/operations/asterisk.md).
 */
import { performance } from 'perf_hooks';
import { StageError } from '../util/errors';
import type { AgiSession } from './types';

export interface BeepWaitOptions {
  /** Silence that means "the beep is over and the machine records", ms (default 1500). */
  silenceMs?: number;
  /** Give up waiting after this many seconds and speak anyway (default 20). */
  timeoutSeconds?: number;
}

export const BEEP_WAIT_DEFAULTS = { silenceMs: 1500, timeoutSeconds: 20 } as const;

export interface BeepWaitResult {
  /**
   * WaitForSilence's WAITSTATUS: SILENCE, TIMEOUT, HANGUP or ERROR ('' when not set); UNAVAILABLE when
   * Asterisk lacks the application (EXEC answers result=-2).
   */
  status: string;
  waitedMs: number;
  hungUp: boolean;
}

/** Clamp the options to what WaitForSilence accepts and a call can afford. */
export function beepWaitOptions(o: BeepWaitOptions = {}): Required<BeepWaitOptions> {
  const ms = Number(o.silenceMs);
  const to = Number(o.timeoutSeconds);
  return {
    silenceMs: Number.isFinite(ms) && ms >= 200 && ms <= 10000 ? Math.round(ms) : BEEP_WAIT_DEFAULTS.silenceMs,
    timeoutSeconds: Number.isFinite(to) && to >= 1 && to <= 120 ? Math.round(to) : BEEP_WAIT_DEFAULTS.timeoutSeconds,
  };
}

/** Wait for the end of the greeting and beep; a caller gone is `hungUp`, not an error. */
export async function waitForBeepEnd(s: AgiSession, opts: BeepWaitOptions = {}): Promise<BeepWaitResult> {
  const o = beepWaitOptions(opts);
  const t0 = performance.now();
  const waited = (): number => Math.round(performance.now() - t0);
  try {
    const r = await s.exec('WaitForSilence', `${o.silenceMs},1,${o.timeoutSeconds}`, (o.timeoutSeconds + 5) * 1000);
    // -2: Asterisk has no WaitForSilence (app_waitforsilence.so not loaded): the message is played at once
    if (r.result === -2) return { status: 'UNAVAILABLE', waitedMs: waited(), hungUp: false };
    if (r.result < 0) return { status: 'HANGUP', waitedMs: waited(), hungUp: true };
    const status = ((await s.getVariable('WAITSTATUS')) ?? '').toUpperCase();
    return { status, waitedMs: waited(), hungUp: status === 'HANGUP' };
  } catch (err) {
    if (err instanceof StageError && err.kind === 'hangup')
      return { status: 'HANGUP', waitedMs: waited(), hungUp: true };
    throw err;
  }
}
