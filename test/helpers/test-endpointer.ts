/**
 * A test double of the endpointer contract (src/media/endpointer.ts is the real one, a VAD): speech is
 * a 20 ms frame whose mean absolute level is over `threshold`. Deterministic, so media-path tests
 * assert timings of the path itself, not of a detector.
 */
import type { EndpointEvent, MediaEndpointer } from '../../src/media/session';

export class TestEndpointer implements MediaEndpointer {
  private ms = 0;
  private speaking = false;
  private startMs = 0;
  private lastVoiceMs = 0;
  private frames: Int16Array[] = [];
  private run = 0;

  constructor(
    private readonly o: {
      endSilenceMs?: number;
      threshold?: number;
      startFrames?: number;
      maxUtteranceMs?: number;
    } = {},
  ) {}

  push(frame: Int16Array): EndpointEvent[] {
    const out: EndpointEvent[] = [];
    let sum = 0;
    for (let i = 0; i < frame.length; i++) sum += Math.abs(frame[i]);
    const voiced = sum / frame.length > (this.o.threshold ?? 500);
    const at = this.ms;
    this.ms += 20;
    if (!this.speaking) {
      this.run = voiced ? this.run + 1 : 0;
      if (this.run >= (this.o.startFrames ?? 2)) {
        this.speaking = true;
        this.startMs = at - 20 * (this.run - 1);
        this.lastVoiceMs = this.ms;
        this.frames = [];
        out.push({ kind: 'speech_start', atMs: this.startMs });
      }
    } else if (voiced) this.lastVoiceMs = this.ms;
    if (this.speaking) {
      this.frames.push(Int16Array.from(frame));
      const silence = this.ms - this.lastVoiceMs;
      const long = this.ms - this.startMs >= (this.o.maxUtteranceMs ?? 30000);
      if (silence >= (this.o.endSilenceMs ?? 600) || long) {
        const n = this.frames.reduce((a, f) => a + f.length, 0);
        const audio = new Int16Array(n);
        let off = 0;
        for (const f of this.frames) {
          audio.set(f, off);
          off += f.length;
        }
        out.push({
          kind: 'utterance',
          startMs: this.startMs,
          endMs: this.lastVoiceMs,
          audio,
          reason: long ? 'max' : 'silence',
        });
        this.speaking = false;
        this.run = 0;
      }
    }
    return out;
  }

  /** The speech so far (what a live recogniser is fed at speech start). */
  speechAudio(): Int16Array {
    return this.speaking ? this.joined() : new Int16Array(0);
  }

  /** End the speech now (a key ended the turn). */
  flush(): EndpointEvent | undefined {
    if (!this.speaking) return undefined;
    this.speaking = false;
    this.run = 0;
    return { kind: 'utterance', startMs: this.startMs, endMs: this.ms, audio: this.joined(), reason: 'dtmf' };
  }

  private joined(): Int16Array {
    const audio = new Int16Array(this.frames.length * 160);
    this.frames.forEach((f, i) => audio.set(f, i * 160));
    return audio;
  }

  isSpeaking(): boolean {
    return this.speaking;
  }

  reset(): void {
    this.speaking = false;
    this.run = 0;
    this.frames = [];
  }
}
