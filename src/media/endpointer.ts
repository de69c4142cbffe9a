/**
 * Endpointing for stream mode: 20 ms frames of the caller's audio in, "the caller started speaking" and
 * "here is the caller's utterance" out. Every frame is classified by the WebRTC voice activity detector
 * (src/media/vad.ts); an energy threshold is never what decides speech.
 *
 * Time is the stream's own clock: frame n (counted from creation or the last reset) covers
 * [20n, 20n + 20) ms. So `endMs` is the end of the last voiced frame and the `utterance` event is
 * returned by the push of the frame that completes `endSilenceMs` of silence after it, i.e. at stream
 * time `endMs + endSilenceMs`: the endpoint silence the caller waits is exactly the setting.
 *
 * Rules:
 *  - a run of voiced frames becomes speech once it holds `minSpeechMs` of voiced frames, with gaps of at
 *    most `candidateGapMs` inside it (shorter blips, clicks and coughs are dropped); `speech_start.atMs` is
 *    the start of the run's first voiced frame;
 *  - speech ends after `endSilenceMs` without a voiced frame (pauses between words are shorter);
 *  - an utterance reaching `maxUtteranceMs` is cut (`reason: 'max'`); speech that goes on starts a new one;
 *  - `audio` is the utterance from `padMs` before `startMs` to `padMs` after `endMs` (recognisers do better
 *    with a little context), as 8 kHz 16-bit samples.
 *
 * Early transcription: once the speech has been followed by `earlyMs` of silence (less than `endSilenceMs`),
 * a `pause` event carries the utterance so far, bounds and audio exactly as the `utterance` event will if the
 * caller stays silent until the end of the turn (so its transcription can start now and be used then); a
 * voiced frame after it gives `resume` (that early audio is no longer the utterance). At most one `pause`
 * per silence; it is never earlier than `padMs` (the audio after the speech must be complete).
 *
 * Echo (barge-in): while we play a prompt, the caller's line carries some of it back. Pass the frame we
 * are sending as `push(frame, playing)`: a voiced frame then counts as the caller's speech only when its
 * level is above the loudest played frame of the last `echoWindowMs` minus `echoMarginDb`. Our prompt
 * looped back 20 dB down stays below that (the default margin is 10 dB), a caller talking over the prompt
 * at a normal level is above it. A `speech_start` while playing is the barge-in signal.
 */
import { parseNumber } from '../util/config';
import { Vad, type VadMode } from './vad';

export const FRAME_MS = 20;
export const FRAME_SAMPLES = 160;
export const SAMPLE_RATE = 8000;
/** Frames the tape holds at first (640 ms: the pre-roll and a short answer; it grows for a longer one). */
const TAPE_FRAMES = 32;

export type EndpointEvent =
  | { kind: 'speech_start'; atMs: number }
  | { kind: 'pause'; startMs: number; endMs: number; audio: Int16Array }
  | { kind: 'resume'; atMs: number }
  | { kind: 'utterance'; startMs: number; endMs: number; audio: Int16Array; reason: 'silence' | 'max' | 'dtmf' };

export interface EndpointerOptions {
  /** Silence after speech that ends the caller's turn, ms (default 600; 500-700 suits conversation). */
  endSilenceMs: number;
  /** Voiced audio needed before a sound counts as speech, ms (default 120). */
  minSpeechMs: number;
  /**
   * Silence after speech at which the utterance so far is offered for early transcription (`pause`), ms
   * (default 300; 0: off; at least `padMs`, and only when under `endSilenceMs`).
   */
  earlyMs: number;
  /** Longest utterance before it is cut and handed on, ms (default 30000). */
  maxUtteranceMs: number;
  /** WebRTC VAD aggressiveness 0..3 (default 3: fewest false positives on line noise). */
  vadMode: VadMode;
  /** Largest unvoiced gap inside a run that is still becoming speech, ms (default 100). */
  candidateGapMs: number;
  /** Audio kept before the start and after the end of an utterance, ms (default 100). */
  padMs: number;
  /** A voiced frame must be louder than the played audio minus this many dB to count as the caller (default 10). */
  echoMarginDb: number;
  /** How far back the played audio's level is remembered (covers the echo's delay), ms (default 300). */
  echoWindowMs: number;
  /** A voiced frame must be this many dB above the line's noise floor to count (trims the VAD's hangover, default 4). */
  floorMarginDb: number;
}

export const ENDPOINTER_DEFAULTS: Readonly<EndpointerOptions> = Object.freeze({
  endSilenceMs: 600,
  earlyMs: 300,
  minSpeechMs: 120,
  maxUtteranceMs: 30000,
  vadMode: 3,
  candidateGapMs: 100,
  padMs: 100,
  echoMarginDb: 10,
  echoWindowMs: 300,
  floorMarginDb: 4,
});

/**
 * Endpointer settings from node config values (strings or numbers, may be empty) over the environment
 * (STREAM_END_SILENCE_MS, STREAM_EARLY_STT_MS, STREAM_MIN_SPEECH_MS, STREAM_MAX_UTTERANCE_MS, STREAM_VAD_MODE)
 * over the defaults.
 */
export function endpointerOptions(
  cfg: {
    endSilenceMs?: unknown;
    earlyMs?: unknown;
    minSpeechMs?: unknown;
    maxUtteranceMs?: unknown;
    vadMode?: unknown;
  } = {},
  env: NodeJS.ProcessEnv = process.env,
): EndpointerOptions {
  const pick = (v: unknown, e: string | undefined, fallback: number, min: number, max: number) =>
    parseNumber(v, { min, max, integer: true }) ?? parseNumber(e, { min, max, integer: true }) ?? fallback;
  const d = ENDPOINTER_DEFAULTS;
  return {
    ...d,
    endSilenceMs: pick(cfg.endSilenceMs, env.STREAM_END_SILENCE_MS, d.endSilenceMs, 100, 5000),
    earlyMs: pick(cfg.earlyMs, env.STREAM_EARLY_STT_MS, d.earlyMs, 0, 5000),
    minSpeechMs: pick(cfg.minSpeechMs, env.STREAM_MIN_SPEECH_MS, d.minSpeechMs, 20, 2000),
    maxUtteranceMs: pick(cfg.maxUtteranceMs, env.STREAM_MAX_UTTERANCE_MS, d.maxUtteranceMs, 1000, 120000),
    vadMode: pick(cfg.vadMode, env.STREAM_VAD_MODE, d.vadMode, 0, 3) as VadMode,
  };
}

/** Level of a frame in dBFS (RMS; -Infinity for digital silence). */
export function frameDbfs(frame: Int16Array): number {
  let s = 0;
  for (let i = 0; i < frame.length; i++) s += frame[i] * frame[i];
  if (s === 0 || frame.length === 0) return -Infinity;
  return 10 * Math.log10(s / frame.length / (32768 * 32768));
}

const frames = (ms: number) => Math.max(1, Math.round(ms / FRAME_MS));

export class Endpointer {
  readonly options: EndpointerOptions;
  private readonly vad: Vad;
  /** Frames pushed since creation or reset. */
  private n = 0;
  /**
   * Recent frames (pre-roll while idle, the utterance while speaking), oldest first, contiguous in one
   * growing array: frame `f` (bufStart <= f < n) at sample (tapeOff + f - bufStart) x 160. One copy into it per
   * frame, no allocation per frame (a typed array per frame cost more than the VAD).
   */
  private tape = new Int16Array(TAPE_FRAMES * FRAME_SAMPLES);
  private tapeOff = 0;
  private bufStart = 0;
  private speaking = false;
  /** First voiced frame of the current candidate or utterance, -1 when none. */
  private start = -1;
  private lastVoiced = -1;
  private voicedCount = 0;
  /** A `pause` was given for the silence under way (a voiced frame then gives `resume`). */
  private paused = false;
  /** Silent frames after the speech that give `pause` (Infinity: off). */
  private readonly pauseFrames: number;
  /** Played levels (dBFS) of the last echoWindowMs, a ring. */
  private readonly echo: Float64Array;
  private echoAt = 0;
  /** Noise floor of the line, dBFS (NaN until the first frame). */
  private floor = NaN;
  private lastSample = 0;

  private constructor(vad: Vad, options: EndpointerOptions) {
    this.vad = vad;
    this.options = options;
    this.echo = new Float64Array(frames(options.echoWindowMs)).fill(-Infinity);
    const early = Math.max(frames(options.earlyMs), frames(options.padMs));
    this.pauseFrames = options.earlyMs > 0 && early < frames(options.endSilenceMs) ? early : Infinity;
  }

  /** An endpointer for one call's inbound audio (8 kHz, 20 ms frames). */
  static async create(opts: Partial<EndpointerOptions> = {}): Promise<Endpointer> {
    const o: EndpointerOptions = { ...ENDPOINTER_DEFAULTS };
    for (const [k, v] of Object.entries(opts)) if (v !== undefined) (o as unknown as Record<string, number>)[k] = v;
    if (!(o.endSilenceMs >= FRAME_MS)) throw new RangeError('endSilenceMs must be at least 20');
    if (!(o.minSpeechMs >= FRAME_MS)) throw new RangeError('minSpeechMs must be at least 20');
    if (!(o.maxUtteranceMs > o.minSpeechMs)) throw new RangeError('maxUtteranceMs must exceed minSpeechMs');
    const vad = await Vad.create({ sampleRate: SAMPLE_RATE, mode: o.vadMode });
    return new Endpointer(vad, o);
  }

  /** True between `speech_start` and the `utterance` that ends it. */
  isSpeaking(): boolean {
    return this.speaking;
  }

  /** Stream time now (end of the last frame pushed), ms. */
  get nowMs(): number {
    return this.n * FRAME_MS;
  }

  /**
   * Classify one 20 ms frame (160 samples). `playing` is the frame we sent to the caller at the same time
   * (or null when silent): see the echo rule in the module comment.
   */
  push(frame: Int16Array, playing?: Int16Array | null): EndpointEvent[] {
    if (frame.length !== FRAME_SAMPLES)
      throw new RangeError(`endpointer frames are 160 samples (20 ms at 8 kHz), got ${frame.length}`);
    const o = this.options;
    const i = this.n++;
    const out: EndpointEvent[] = [];
    this.echo[this.echoAt] = playing ? frameDbfs(playing) : -Infinity;
    this.echoAt = (this.echoAt + 1) % this.echo.length;
    const level = this.emphasisedLevel(frame);
    const vadVoiced = this.vad.isSpeech(frame);
    if (Number.isNaN(this.floor)) this.floor = level;
    else if (!vadVoiced || level < this.floor) this.floor += 0.1 * (level - this.floor);
    let voiced = vadVoiced && level > this.floor + o.floorMarginDb;
    if (voiced) {
      let loudest = -Infinity;
      for (let k = 0; k < this.echo.length; k++) if (this.echo[k] > loudest) loudest = this.echo[k];
      if (loudest > -Infinity && frameDbfs(frame) <= loudest - o.echoMarginDb) voiced = false;
    }
    this.keep(frame);
    if (!this.speaking) {
      if (voiced) {
        if (this.start < 0) this.start = i;
        this.lastVoiced = i;
        this.voicedCount++;
        if (this.voicedCount >= frames(o.minSpeechMs)) {
          this.speaking = true;
          out.push({ kind: 'speech_start', atMs: this.start * FRAME_MS });
        }
      } else if (this.start >= 0 && i - this.lastVoiced > frames(o.candidateGapMs)) {
        this.start = -1;
        this.voicedCount = 0;
      }
      // keep the pre-roll: from padMs before the candidate (or before now) on
      const keepFrom = (this.start >= 0 ? this.start : i + 1) - frames(o.padMs);
      this.trim(keepFrom);
      if (this.speaking && i + 1 - this.start >= frames(o.maxUtteranceMs)) out.push(this.cut(i, 'max'));
      return out;
    }
    if (voiced) {
      this.lastVoiced = i;
      if (this.paused) {
        this.paused = false;
        out.push({ kind: 'resume', atMs: i * FRAME_MS });
      }
    }
    if (i - this.lastVoiced >= frames(o.endSilenceMs)) out.push(this.cut(i, 'silence'));
    else if (i + 1 - this.start >= frames(o.maxUtteranceMs)) out.push(this.cut(i, 'max'));
    else if (!this.paused && i - this.lastVoiced === this.pauseFrames) {
      // the audio the `utterance` will carry if the caller stays silent (cut() with reason 'silence')
      this.paused = true;
      const endFrame = this.lastVoiced + 1;
      const from = Math.max(this.bufStart, this.start - frames(o.padMs));
      out.push({
        kind: 'pause',
        startMs: this.start * FRAME_MS,
        endMs: endFrame * FRAME_MS,
        audio: this.held(from, endFrame + frames(o.padMs)),
      });
    }
    return out;
  }

  /**
   * The current speech so far (from `padMs` before its start to now), or an empty array when the caller
   * is not speaking: what a live recogniser is fed first when speech starts.
   */
  speechAudio(): Int16Array {
    if (!this.speaking) return new Int16Array(0);
    const from = Math.max(this.bufStart, this.start - frames(this.options.padMs));
    return this.held(from, this.n);
  }

  /** End the current speech now (the caller pressed a key that ends the turn); undefined when not speaking. */
  flush(): EndpointEvent | undefined {
    if (!this.speaking || this.n === 0) return undefined;
    return this.cut(this.n - 1, 'dtmf');
  }

  /** Forget everything (a new call); the stream clock restarts at 0. */
  reset(): void {
    this.vad.reset();
    this.n = 0;
    this.tape = new Int16Array(TAPE_FRAMES * FRAME_SAMPLES);
    this.tapeOff = 0;
    this.bufStart = 0;
    this.speaking = false;
    this.start = -1;
    this.lastVoiced = -1;
    this.voicedCount = 0;
    this.paused = false;
    this.echo.fill(-Infinity);
    this.echoAt = 0;
    this.floor = NaN;
    this.lastSample = 0;
  }

  /** Free the detector. The endpointer cannot be used afterwards. */
  close(): void {
    this.vad.close();
  }

  /**
   * Level of the frame after pre-emphasis (y[n] = x[n] - 0.95 x[n-1]), dBFS: the hum and rumble that carry
   * most of a phone line's noise energy are damped, the consonants that end words are not.
   */
  private emphasisedLevel(frame: Int16Array): number {
    let s = 0;
    let prev = this.lastSample;
    for (let k = 0; k < frame.length; k++) {
      const y = frame[k] - 0.95 * prev;
      s += y * y;
      prev = frame[k];
    }
    this.lastSample = prev;
    return s === 0 ? -96 : Math.max(-96, 10 * Math.log10(s / frame.length / (32768 * 32768)));
  }

  /** Append the frame pushed last (index n - 1) to the tape. */
  private keep(frame: Int16Array): void {
    const held = this.n - 1 - this.bufStart;
    let at = this.tapeOff + held;
    if ((at + 1) * FRAME_SAMPLES > this.tape.length) {
      if (this.tapeOff > 0) {
        // move what is held to the front
        this.tape.copyWithin(0, this.tapeOff * FRAME_SAMPLES, at * FRAME_SAMPLES);
        this.tapeOff = 0;
        at = held;
      }
      if ((at + 1) * FRAME_SAMPLES > this.tape.length) {
        const grown = new Int16Array(this.tape.length * 2);
        grown.set(this.tape.subarray(0, at * FRAME_SAMPLES));
        this.tape = grown;
      }
    }
    this.tape.set(frame, at * FRAME_SAMPLES);
  }

  /** A copy of the held frames [from, to). */
  private held(from: number, to: number): Int16Array {
    if (to <= from) return new Int16Array(0);
    const at = this.tapeOff + from - this.bufStart;
    return this.tape.slice(at * FRAME_SAMPLES, (at + to - from) * FRAME_SAMPLES);
  }

  private trim(fromFrame: number): void {
    const drop = Math.min(Math.max(0, fromFrame - this.bufStart), this.n - this.bufStart);
    if (drop <= 0) return;
    this.bufStart += drop;
    this.tapeOff = this.n === this.bufStart ? 0 : this.tapeOff + drop;
  }

  /** End the utterance at frame `i` (the current one) and go back to idle. */
  private cut(i: number, reason: 'silence' | 'max' | 'dtmf'): EndpointEvent {
    const o = this.options;
    const endFrame = reason === 'silence' ? this.lastVoiced + 1 : i + 1;
    const from = Math.max(this.bufStart, this.start - frames(o.padMs));
    const to = Math.min(i + 1, endFrame + frames(o.padMs));
    const audio = this.held(from, to);
    const ev: EndpointEvent = {
      kind: 'utterance',
      startMs: this.start * FRAME_MS,
      endMs: endFrame * FRAME_MS,
      audio,
      reason,
    };
    this.speaking = false;
    this.paused = false;
    this.start = -1;
    this.lastVoiced = -1;
    this.voicedCount = 0;
    this.trim(i + 1 - frames(o.padMs));
    if (this.tape.length > TAPE_FRAMES * FRAME_SAMPLES * 4) {
      // a long utterance grew the tape: back to the idle size (what is held is the pre-roll)
      const small = new Int16Array(TAPE_FRAMES * FRAME_SAMPLES);
      const held = this.n - this.bufStart;
      small.set(this.tape.subarray(this.tapeOff * FRAME_SAMPLES, (this.tapeOff + held) * FRAME_SAMPLES));
      this.tape = small;
      this.tapeOff = 0;
    }
    return ev;
  }
}
