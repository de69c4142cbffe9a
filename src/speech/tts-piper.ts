/**
 * Piper (the original system's engine): its command-line program with a voice model (`.onnx`, with
 * its `.onnx.json` beside it). Text goes on stdin as ONE line (piper speaks each input line as a
 * separate utterance), the WAV is written to `--output_file` at the voice's native rate (e.g. 22050 Hz).
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { randomBytes } from 'crypto';
import { StageError } from '../util/errors';
import { runProcess } from './proc';
import type { SynthOptions, TtsEngine } from './tts';

export interface PiperOptions {
  /** Program path (default `piper` on the PATH). */
  bin: string;
  /** Voice model path (`.onnx`). */
  model: string;
  /** Speaker id for multi-speaker voices. */
  speaker?: number;
  /** Speaking rate: >1 slower, <1 faster (piper's `--length_scale`). */
  lengthScale?: number;
  /** Directory for piper's output file (default the OS temp dir). */
  workDir?: string;
}

export class PiperEngine implements TtsEngine {
  readonly name = 'piper';
  readonly voice: string;
  readonly identity: string;
  private readonly opts: PiperOptions;

  constructor(opts: PiperOptions) {
    this.opts = opts;
    this.voice = opts.model ? path.basename(opts.model).replace(/\.onnx$/, '') : '';
    if (opts.speaker !== undefined && (!Number.isInteger(opts.speaker) || opts.speaker < 0)) {
      throw new StageError('tts', 'not_configured', `piper speaker must be a whole number >= 0 (got ${opts.speaker})`, {
        engine: this.name,
      });
    }
    if (
      opts.lengthScale !== undefined &&
      (!Number.isFinite(opts.lengthScale) || opts.lengthScale <= 0 || opts.lengthScale > 5)
    ) {
      throw new StageError(
        'tts',
        'not_configured',
        `piper length scale must be between 0 and 5 (got ${opts.lengthScale})`,
        { engine: this.name },
      );
    }
    this.identity = `piper|${opts.model}|${opts.speaker ?? ''}|${opts.lengthScale ?? ''}`;
  }

  async synthesize(text: string, opts: SynthOptions): Promise<Buffer> {
    const { bin, model } = this.opts;
    if (!model)
      throw new StageError('tts', 'not_configured', 'no piper voice model set (PIPER_MODEL or the node setting)', {
        engine: this.name,
      });
    if (!fs.existsSync(model))
      throw new StageError('tts', 'not_installed', `piper voice model not found: ${model}`, { engine: this.name });
    const out = path.join(this.opts.workDir || os.tmpdir(), `piper-${randomBytes(8).toString('hex')}.wav`);
    const args = ['--model', model, '--output_file', out];
    if (this.opts.speaker !== undefined) args.push('--speaker', String(this.opts.speaker));
    if (this.opts.lengthScale !== undefined) args.push('--length_scale', String(this.opts.lengthScale));
    try {
      await runProcess(bin, args, {
        stage: 'tts',
        engine: this.name,
        timeoutMs: opts.timeoutMs,
        stdin: text.replace(/[\r\n]+/g, ' ') + '\n',
        signal: opts.signal,
      });
      let buf: Buffer;
      try {
        buf = await fs.promises.readFile(out);
      } catch {
        throw new StageError('tts', 'bad_response', `piper finished but wrote no file`, { engine: this.name });
      }
      return buf;
    } finally {
      await fs.promises.rm(out, { force: true }).catch(() => undefined);
    }
  }
}
