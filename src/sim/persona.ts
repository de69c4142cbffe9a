/**
 * A simulated callee: how the phone answers (ARI side) and what the person says and does once the
 * conversation runs (AGI side). Both halves of the simulator read the same persona.
 */

export type DialBehaviour = 'answer' | 'busy' | 'no_answer' | 'congestion' | 'unreachable';

export interface Utterance {
  /** What the callee says (written into the recording's WAV, with the text in a `simu` chunk). */
  text?: string;
  /** A real WAV file to return instead of synthesising (stream mode: streamed as it is, pauses included). */
  wav?: string;
  /** DTMF digit pressed during the recording (ends it with `(dtmf)`); in stream mode, sent right after the speech (or alone). */
  dtmf?: string;
  /** Silence before speaking, ms. */
  pauseMs?: number;
  /** Hang up in the middle of this recording (`(hangup)` reply, then `HANGUP`); in stream mode, after saying it. */
  hangup?: boolean;
  /** Stream mode: start talking this long after our prompt began (talk over it: barge-in). */
  bargeInAfterMs?: number;
  /** Stream mode: send this much noise instead of speech. */
  noiseMs?: number;
  /** Stream mode: say nothing this turn (the no-input path). */
  silent?: boolean;
}

export interface Persona {
  name?: string;
  dial?: {
    behaviour: DialBehaviour;
    /** Ring time before answering (or before busy/congestion is signalled), ms. */
    ringMs?: number;
  };
  /** What Asterisk's AMD() would decide for this callee. */
  amd?: 'HUMAN' | 'MACHINE' | 'NOTSURE';
  /**
   * An answering machine: how much of its greeting is left when the AGI starts (AMD() returns while it
   * still plays), and its beep; then it records in silence. WaitForSilence sees silence only after both.
   */
  voicemail?: { greetingMs?: number; beepMs?: number };
  /** Said in order, one per RECORD FILE; after the last one the callee stays silent. */
  utterances?: Array<string | Utterance>;
  /** Hang up during the Nth STREAM FILE (1-based), after N ms of it. */
  hangupDuringPlayback?: { index: number; afterMs?: number };
  /** Hang up after the call has been up this long, ms. */
  hangupAfterMs?: number;
  /**
   * The human an attended transfer dials (EXEC Dial from AGI): answers after `ringMs` (default 1000), hears
   * the whisper, talks `talkMs` (default 2000) and hangs up; or is busy, never answers, or cannot be reached.
   */
  agent?: {
    behaviour: 'answer' | 'no_answer' | 'busy' | 'congestion' | 'unavailable';
    ringMs?: number;
    talkMs?: number;
  };
}

/** Normalise an utterance entry. */
export function utteranceAt(p: Persona, index: number): Utterance | undefined {
  const u = p.utterances?.[index];
  if (u === undefined) return undefined;
  return typeof u === 'string' ? { text: u } : u;
}

/**
 * The demo's callees: the last digit of the number picks a behaviour, so a demo campaign of
 * simulated numbers shows every path. Tests set personas explicitly instead.
 */
export function demoPersona(phone: string): Persona {
  const d = Number(phone.replace(/\D/g, '').slice(-1) || '0');
  switch (d) {
    case 1:
      return { name: 'busy', dial: { behaviour: 'busy', ringMs: 800 } };
    case 2:
      return { name: 'no answer', dial: { behaviour: 'no_answer' } };
    case 3:
      return {
        name: 'hangs up mid-call',
        dial: { behaviour: 'answer', ringMs: 1500 },
        utterances: ['Who is this?', { text: 'I am busy', hangup: true }],
      };
    case 4:
      return {
        name: 'do not call',
        dial: { behaviour: 'answer', ringMs: 1200 },
        utterances: ['Please do not call me again.'],
      };
    default:
      return {
        name: 'talker',
        dial: { behaviour: 'answer', ringMs: 1000 + d * 200 },
        utterances: ['Yes, this is me.', 'Tuesday at ten works for me.', 'No, that is all, thank you.'],
      };
  }
}
