/**
 * Live speech to text in stream mode: an STT engine that streams (Vosk's WebSocket) is fed the caller's
 * audio while the caller speaks, so its partial hypotheses reach the flow as they come and the final
 * transcript is there the moment the endpointer ends the utterance.
 *
 * Who transcribes a call's speech: an stt-transcribe node whose engine streams offers itself here
 * (`offerLiveStt`). The media session asks `liveSttFor(sessionId)` when the caller starts speaking: the
 * node that last transcribed this call, else the only one offered (the usual flow has one transcribe
 * node). With several and none bound yet, nothing is fed live and the utterance is transcribed whole
 * when it ends, as before.
 */
import type { SttStream } from '../speech/stt-vosk';

export interface LiveSttContext {
  /** The AGI session of the call (key of its media). */
  sessionId: string;
  /** The msg.call the flow last passed for this call's media (for partial results sent to the flow). */
  call?: object;
  /** Partial hypotheses of this utterance, as the engine sends them. */
  onPartial(text: string): void;
}

/** A node's offer to transcribe live. */
export interface LiveSttProvider {
  /** Engine name (msg.transcript.engine). */
  readonly engine: string;
  /** Open a recognition stream for one utterance (throws or returns undefined when it cannot). */
  open(ctx: LiveSttContext): SttStream | undefined;
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

/** The provider that transcribes this call's next utterance live, if any. */
export function liveSttFor(sessionId: string): LiveSttProvider | undefined {
  const b = bound.get(sessionId);
  if (b) return b;
  if (providers.size === 1) return providers.values().next().value as LiveSttProvider;
  return undefined;
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
