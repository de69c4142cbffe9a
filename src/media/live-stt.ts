/**
 * Live speech to text in stream mode: an STT engine that streams (Vosk's WebSocket) is fed the caller's
 * audio while the caller speaks, so its partial hypotheses reach the flow as they come and the final
 * transcript is there the moment the endpointer ends the utterance.
 *
 * Early transcription (engines that do not stream: OpenAI-compatible, Wyoming, sim): when the caller has
 * paused for the endpointer's `earlyMs` (300 ms, under the 600 ms that end the turn), the utterance so far
 * is sent to the engine at once. If the caller stays silent, the utterance the turn ends with is that same
 * audio and stt-transcribe takes the early result (there, or on its way) instead of asking again: the
 * engine's time is spent inside the end-of-turn silence. If the caller speaks again, the early request is
 * aborted and its result dropped.
 *
 * Who transcribes a call's speech: an stt-transcribe node offers itself here (`offerLiveStt`): live when
 * its engine streams, early otherwise (unless its early transcription is off). The media session asks
 * `liveSttFor(sessionId, want)` when the caller starts speaking (`open`) or pauses (`early`): the node that
 * last transcribed this call, else the only one offered that can (the usual flow has one transcribe node).
 * With several and none bound yet, nothing is done ahead and the utterance is transcribed whole when it
 * ends, as before.
 */
import { performance } from 'perf_hooks';
import type { SttStream } from '../speech/stt-vosk';
import type { Transcript } from '../speech/stt';

export interface LiveSttContext {
  /** The AGI session of the call (key of its media). */
  sessionId: string;
  /** The msg.call the flow last passed for this call's media (for partial results sent to the flow). */
  call?: object;
  /** Partial hypotheses of this utterance, as the engine sends them. */
  onPartial(text: string): void;
}

/** What an early transcription is told besides the audio. */
export interface EarlySttContext {
  sessionId: string;
  call?: object;
  /** Simulator runs: what the simulated callee said in this audio (the sim engine reads it back). */
  simText?: string;
  /** Aborted when the caller speaks again (or the media ends) before the turn ends. */
  signal: AbortSignal;
}

/** A node's offer to transcribe live (`open`) or early (`early`). */
export interface LiveSttProvider {
  /** Engine name (msg.transcript.engine). */
  readonly engine: string;
  /** Open a recognition stream for one utterance (throws or returns undefined when it cannot). */
  open?(ctx: LiveSttContext): SttStream | undefined;
  /** Transcribe the utterance so far (8 kHz 16-bit mono), the caller having paused. */
  early?(audio: Int16Array, ctx: EarlySttContext): Promise<Transcript>;
}

/** One utterance's early transcription, kept with the utterance (CapturedUtterance.early). */
export interface EarlyTranscript {
  /** Who was asked (stt-transcribe uses the result only when it is that node). */
  by: LiveSttProvider;
  result: Promise<Transcript>;
  /** Wall time (performance.now) it was asked. */
  startedAt: number;
}

const providers = new Set<LiveSttProvider>();
const bound = new Map<string, LiveSttProvider>();

/** Offer `p` for live transcription; the returned function withdraws it (node closed). */
export function offerLiveStt(p: LiveSttProvider): () => void {
  providers.add(p);
  return () => {
    providers.delete(p);
    for (const [k, v] of bound) if (v === p) bound.delete(k);
  };
}

/** `p` transcribes this call (it handled one of its utterances). */
export function bindLiveStt(sessionId: string, p: LiveSttProvider): void {
  if (!providers.has(p)) return;
  bound.delete(sessionId); // keep insertion order = recency, for the cap below
  bound.set(sessionId, p);
  if (bound.size > 20000) bound.delete(bound.keys().next().value as string);
}

/** The provider that transcribes this call's next utterance live (`open`) or early (`early`), if any. */
export function liveSttFor(sessionId: string, want: 'open' | 'early' = 'open'): LiveSttProvider | undefined {
  const b = bound.get(sessionId);
  if (b) return b[want] ? b : undefined;
  let only: LiveSttProvider | undefined;
  for (const p of providers) {
    if (!p[want]) continue;
    if (only) return undefined;
    only = p;
  }
  return only;
}

/** The call's media ended: forget its binding. */
export function forgetLiveStt(sessionId: string): void {
  bound.delete(sessionId);
}

/** One utterance's live transcription, kept with the utterance. */
export interface LiveTranscript {
  engine: string;
  /** The final result: resolves once the engine answered the end of stream. */
  result: Promise<{ text: string; confidence?: number }>;
  /** Partial hypotheses received. */
  partials: number;
  /** Wall time (performance.now) the final result arrived. */
  finalAt?: number;
}

/**
 * The utterance's early transcript when `by` made it, once there (the wait, not the engine's time, is its
 * `elapsedMs`; `early: true`). undefined: there is none, another node made it, or it failed (the caller of
 * this transcribes the utterance whole, which reports the failure if it persists). Rejects when `signal`
 * aborts first.
 */
export async function takeEarly(
  u: { early?: EarlyTranscript },
  by: LiveSttProvider | undefined,
  signal?: AbortSignal,
): Promise<Transcript | undefined> {
  const e = u.early;
  if (!e || !by || e.by !== by) return undefined;
  u.early = undefined; // used once
  const t0 = performance.now();
  let onAbort: (() => void) | undefined;
  try {
    const r = await Promise.race([
      e.result,
      new Promise<never>((_, reject) => {
        onAbort = () => reject(signal?.reason ?? new Error('aborted'));
        if (signal?.aborted) onAbort();
        else signal?.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    return { ...r, elapsedMs: performance.now() - t0, early: true };
  } catch (err) {
    if (signal?.aborted) throw err;
    return undefined;
  } finally {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}
