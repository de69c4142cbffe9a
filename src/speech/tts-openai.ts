/**
 * Any OpenAI-compatible speech endpoint: `POST {baseUrl}/audio/speech` with
 * `{model, input, voice, response_format: "wav"}` and a bearer API key; the answer is WAV bytes
 * (OpenAI speaks at 24 kHz; other servers at their own rate).
 */
import { StageError } from '../util/errors';
import { bearer, checkBaseUrl, httpRequest, joinUrl } from './http';
import type { SynthOptions, TtsEngine } from './tts';

export interface OpenAiTtsOptions {
  /** Base URL including the API version, e.g. `https://api.openai.com/v1`, `http://kokoro:8880/v1`. */
  baseUrl: string;
  model: string;
  voice: string;
  apiKey?: string;
  /** 0.25..4 */
  speed?: number;
}

export class OpenAiTtsEngine implements TtsEngine {
  readonly name = 'openai';
  readonly voice: string;
  readonly identity: string;
  private readonly opts: OpenAiTtsOptions;

  constructor(opts: OpenAiTtsOptions) {
    this.opts = opts;
    this.voice = opts.voice;
    if (opts.speed !== undefined && (!Number.isFinite(opts.speed) || opts.speed < 0.25 || opts.speed > 4)) {
      throw new StageError('tts', 'not_configured', `speed must be 0.25..4 (got ${opts.speed})`, { engine: this.name });
    }
    this.identity = `openai|${opts.baseUrl}|${opts.model}|${opts.voice}|${opts.speed ?? ''}`;
  }

  async synthesize(text: string, opts: SynthOptions): Promise<Buffer> {
    const base = checkBaseUrl(this.opts.baseUrl, 'tts', this.name, 'TTS base URL (TTS_BASE_URL)');
    const body: Record<string, unknown> = {
      model: this.opts.model,
      input: text,
      voice: this.opts.voice,
      response_format: 'wav',
    };
    if (this.opts.speed !== undefined) body.speed = this.opts.speed;
    const res = await httpRequest({
      url: joinUrl(base, '/audio/speech'),
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'audio/wav', ...bearer(this.opts.apiKey) },
      body: JSON.stringify(body),
      timeoutMs: opts.timeoutMs,
      stage: 'tts',
      engine: this.name,
      signal: opts.signal,
    });
    const head = res.body.subarray(0, 4).toString('ascii');
    if (head !== 'RIFF') {
      const type = String(res.headers['content-type'] ?? 'unknown type');
      throw new StageError(
        'tts',
        'bad_response',
        `expected WAV audio, got ${type} (${res.body.length} bytes); does the server support response_format "wav"?`,
        { engine: this.name },
      );
    }
    return res.body;
  }
}
