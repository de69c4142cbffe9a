/**
 * espeak-ng: the offline default. Text goes on stdin (never argv), WAV comes back on stdout
 * (`--stdout`, 22050 Hz mono 16-bit; the RIFF sizes are left unset by the pipe, which parseWav handles).
 */
import { StageError } from '../util/errors';
import { runProcess } from './proc';
import type { SynthOptions, TtsEngine } from './tts';

export interface EspeakOptions {
  /** Program path (default `espeak-ng` on the PATH). */
  bin?: string;
  /** Voice, e.g. `en-us`, `en-gb`, `de`, `en-us+f3` (default `en-us`). */
  voice?: string;
  /** Words per minute, 80..450 (default 160). */
  speed?: number;
  /** Pitch 0..99 (default 50). */
  pitch?: number;
}

const VOICE = /^[A-Za-z0-9][A-Za-z0-9_+\-./]{0,63}$/;

export class EspeakEngine implements TtsEngine {
  readonly name = 'espeak-ng';
  readonly voice: string;
  readonly identity: string;
  private readonly bin: string;
  private readonly speed: number;
  private readonly pitch: number;

  constructor(opts: EspeakOptions = {}) {
    this.bin = opts.bin || 'espeak-ng';
    this.voice = opts.voice || 'en-us';
    this.speed = opts.speed ?? 160;
    this.pitch = opts.pitch ?? 50;
    if (!VOICE.test(this.voice))
      throw new StageError('tts', 'not_configured', `invalid espeak-ng voice "${this.voice}"`, { engine: this.name });
    if (!Number.isFinite(this.speed) || this.speed < 80 || this.speed > 450) {
      throw new StageError(
        'tts',
        'not_configured',
        `espeak-ng speed must be 80..450 words per minute (got ${opts.speed})`,
        { engine: this.name },
      );
    }
    if (!Number.isFinite(this.pitch) || this.pitch < 0 || this.pitch > 99) {
      throw new StageError('tts', 'not_configured', `espeak-ng pitch must be 0..99 (got ${opts.pitch})`, {
        engine: this.name,
      });
    }
    this.identity = `espeak-ng|${this.voice}|${Math.round(this.speed)}|${Math.round(this.pitch)}`;
  }

  async synthesize(text: string, opts: SynthOptions): Promise<Buffer> {
    const args = [
      '--stdout',
      '-v',
      this.voice,
      '-s',
      String(Math.round(this.speed)),
      '-p',
      String(Math.round(this.pitch)),
    ];
    const r = await runProcess(this.bin, args, {
      stage: 'tts',
      engine: this.name,
      timeoutMs: opts.timeoutMs,
      stdin: text,
      signal: opts.signal,
    });
    if (r.stdout.length < 44) {
      throw new StageError(
        'tts',
        'bad_response',
        `espeak-ng wrote no audio${r.stderr ? `: ${r.stderr.trim().slice(0, 200)}` : ''}`,
        { engine: this.name },
      );
    }
    return r.stdout;
  }
}
