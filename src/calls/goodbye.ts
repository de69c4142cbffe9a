/**
 * The polite end of a call that the dialer itself ends (shutdown or redeploy drain), wherever its
 * conversation is: the AGI session refuses the flow's next command, lets the one in flight (a RECORD,
 * a playback) end, plays the goodbye and hangs up (FastAgiSession.endPolitely).
 *
 * What the goodbye needs is noted here by the conversation nodes as the call goes on:
 * - llm-turn notes the call's goodbye line (its setting, rendered for the call);
 * - tts-speak notes its voice (synthesise a line, store it as the call's next turn before it is heard)
 *   and the last turn number it spoke.
 * fastagi-in forgets a call when its session ends. Bounded: at most MAX_CALLS calls are remembered.
 */
import { localFiles } from '../util/local-file';
import { sessionsByCallId } from '../agi/registry';
import type { AgiSession } from '../agi/types';
import { parseWav } from '../audio/wav';
import { endMedia } from '../media/handoff';
import { getMedia } from '../media/registry';
import type { MediaSession } from '../media/session';
import { within } from '../util/within';

/** Synthesise `text` for the call and store it as turn `seq` (before it is played). */
export type GoodbyeVoice = (
  text: string,
  seq: number,
) => Promise<{ path: string; durationMs: number; release?(): void } | undefined>;

/** Synthesise `text` in the call's voice, not stored as a turn (an attended transfer's whisper to the agent). */
export type CallSpeaker = (text: string) => Promise<{ path: string; durationMs: number; release?(): void }>;

interface Noted {
  line?: string;
  voice?: GoodbyeVoice;
  speaker?: CallSpeaker;
  seq: number;
}

const MAX_CALLS = 10_000;
const calls = new Map<string, Noted>();

/** Said when no llm-turn noted a line for the call. */
export const DEFAULT_GOODBYE = 'Thank you for your time. Goodbye.';

function noted(callId: string | number): Noted {
  const id = String(callId);
  let n = calls.get(id);
  if (!n) {
    if (calls.size >= MAX_CALLS) {
      const oldest = calls.keys().next().value;
      if (oldest !== undefined) calls.delete(oldest);
    }
    n = { seq: 0 };
    calls.set(id, n);
  }
  return n;
}

/** llm-turn: the line that ends this call politely. */
export function noteGoodbyeLine(callId: string | number, line: string): void {
  if (line.trim()) noted(callId).line = line;
}

/** tts-speak: how to say something on this call, and the turn it is about to speak. */
export function noteVoice(callId: string | number, voice: GoodbyeVoice, seq?: number, speaker?: CallSpeaker): void {
  const n = noted(callId);
  n.voice = voice;
  if (speaker) n.speaker = speaker;
  if (typeof seq === 'number' && Number.isInteger(seq) && seq > n.seq) n.seq = seq;
}

/** The call's voice (the TTS engine of its last tts-speak), when one spoke on it. */
export function speakerFor(callId: string | number | undefined): CallSpeaker | undefined {
  return callId === undefined ? undefined : calls.get(String(callId))?.speaker;
}

/** The call's AGI session ended. */
export function forgetCall(callId: string | number): void {
  calls.delete(String(callId));
}

/**
 * End the call's live AGI sessions politely (goodbye, then hangup; see the module comment). Returns the
 * number of sessions asked to end; each resolves on its own. 0: the call has no live session here.
 */
export function endCallPolitely(callId: string | number, reason: string): number {
  let n = 0;
  for (const s of sessionsByCallId(String(callId))) if (endSessionPolitely(s, reason)) n++;
  return n;
}

/**
 * How long calls get to hear their goodbye when a node closes under them (a Deploy removed or changed
 * fastagi-in or ari-originate): within Node-RED's nodeCloseTimeout (15 s), with room for the rest.
 */
export const POLITE_CLOSE_MS = 10_000;

/**
 * A node closing under live calls: each of `sessions` still in conversation is ended politely
 * (endSessionPolitely), and every one ending so, newly or already (a drain's goodbye under way), is
 * waited for until it closed, for at most `ms`. Resolves at once when none is ending (a stop drained
 * them before).
 */
export async function endPolitelyAndWait(
  sessions: Iterable<AgiSession>,
  reason: string,
  ms = POLITE_CLOSE_MS,
): Promise<void> {
  const ending: AgiSession[] = [];
  for (const s of sessions) {
    if (s.closed) continue;
    endSessionPolitely(s, reason);
    if (s.ending) ending.push(s); // not ready yet (no conversation): not ended politely, not waited for
  }
  if (!ending.length) return;
  await within(Promise.all(ending.map((s) => (s.closed ? undefined : new Promise((r) => s.once('close', r))))), ms);
}

/**
 * End one AGI session politely: its call's goodbye line in its call's voice (no voice noted yet, e.g.
 * before the greeting: hung up without one). False when it is gone or already ending.
 */
export function endSessionPolitely(s: AgiSession, reason: string): boolean {
  if (s.hungUp || s.ending || !s.endPolitely) return false;
  const id = s.callId;
  const say = async () => {
    const c = id === undefined ? undefined : calls.get(String(id));
    if (!c?.voice) return undefined;
    c.seq += 1;
    return c.voice(c.line ?? DEFAULT_GOODBYE, c.seq);
  };
  const media = getMedia(s.id);
  // stream mode: AudioSocket holds the channel (the AGI session waits in EXEC AudioSocket), so the
  // goodbye is said on the media; ending the media gives AGI control back for the HANGUP
  void s.endPolitely(reason, media ? (giveUp) => sayOnMedia(s, media, say, giveUp).then(() => undefined) : say);
  return true;
}

/**
 * The goodbye on a streaming call: what is being said now is said to its end (as record mode lets the
 * playback in flight end), then the goodbye, not cut by barge-in; then the media ends. Its audio is
 * waited for until the session gives up (`giveUp`: the media ends without it, so the session's HANGUP,
 * behind the EXEC AudioSocket, goes out); once it plays, it plays to its end. True when heard.
 */
async function sayOnMedia(
  s: AgiSession,
  media: MediaSession,
  say: () => ReturnType<GoodbyeVoice>,
  giveUp: AbortSignal,
): Promise<boolean> {
  let heard = false;
  const making = say().catch(() => undefined);
  try {
    const [audio] = await Promise.all([Promise.race([making, given(giveUp)]), media.whenQuiet()]);
    if (!audio) {
      void making.then((late) => late?.release?.()); // came too late: not kept
    } else {
      try {
        const wav = parseWav(await localFiles.read(`${audio.path}.wav`));
        await media.whenQuiet();
        const r = await media.play(wav.samples, { bargeIn: false });
        heard = r.playedMs > 0 && !r.hungUp;
      } finally {
        audio.release?.();
      }
    }
  } catch {
    /* the caller left, or the audio could not be read: hang up all the same */
  }
  await endMedia(s.id);
  return heard;
}

/** Resolves (undefined) once `signal` aborts. */
function given(signal: AbortSignal): Promise<undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise((r) => signal.addEventListener('abort', () => r(undefined), { once: true }));
}
