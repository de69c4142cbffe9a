/**
 * Any OpenAI-compatible transcription endpoint (OpenAI, faster-whisper servers such as speaches,
 * whisper.cpp's server with `--inference-path /v1/audio/transcriptions`): `POST {baseUrl}/audio/transcriptions`,
 * multipart fields `file` (the WAV), `model`, optional `language`, `response_format` (`json` or
 * `verbose_json`). With `verbose_json`, confidence is exp(mean segment avg_logprob).
 */
import { StageError } from '../util/errors';
import {
  bearer,
  checkBaseUrl,
  encodeMultipart,
  httpRequest,
  joinUrl,
  parseJsonBody,
  type MultipartField,
} from './http';
import type { SttEngine, SttRequest } from './stt';

export interface OpenAiSttOptions {
  baseUrl: string;
  model: string;
  apiKey?: string;
  /** ISO-639-1 code, e.g. `en`. */
  language?: string;
  responseFormat: 'json' | 'verbose_json';
}

interface TranscriptionBody {
  text?: unknown;
  segments?: Array<{ avg_logprob?: number; no_speech_prob?: number }>;
}

export class OpenAiSttEngine implements SttEngine {
  readonly name = 'openai';
  private readonly opts: OpenAiSttOptions;

  constructor(opts: OpenAiSttOptions) {
    this.opts = opts;
    if (opts.responseFormat !== 'json' && opts.responseFormat !== 'verbose_json') {
      throw new StageError(
        'stt',
        'not_configured',
        `response format must be json or verbose_json (got ${opts.responseFormat})`,
        { engine: this.name },
      );
    }
    if (opts.language && !/^[a-z]{2,3}(-[A-Za-z]{2,4})?$/.test(opts.language)) {
      throw new StageError(
        'stt',
        'not_configured',
        `language must be an ISO-639-1 code like "en" (got "${opts.language}")`,
        { engine: this.name },
      );
    }
  }

  async recognize(req: SttRequest): Promise<{ text: string; confidence?: number }> {
    const base = checkBaseUrl(this.opts.baseUrl, 'stt', this.name, 'STT base URL (STT_BASE_URL)');
    const fields: MultipartField[] = [
      { name: 'file', value: req.wav, filename: 'audio.wav', contentType: 'audio/wav' },
      { name: 'model', value: this.opts.model },
      { name: 'response_format', value: this.opts.responseFormat },
    ];
    const language = req.language || this.opts.language;
    if (language) fields.push({ name: 'language', value: language });
    const mp = encodeMultipart(fields);
    const res = await httpRequest({
      url: joinUrl(base, '/audio/transcriptions'),
      method: 'POST',
      headers: { 'Content-Type': mp.contentType, Accept: 'application/json', ...bearer(this.opts.apiKey) },
      body: mp.body,
      timeoutMs: req.timeoutMs,
      stage: 'stt',
      engine: this.name,
      signal: req.signal,
      maxBytes: 4 * 1024 * 1024,
    });
    const j = parseJsonBody<TranscriptionBody>(res, 'stt', this.name);
    if (!j || typeof j !== 'object' || typeof j.text !== 'string') {
      throw new StageError('stt', 'bad_response', 'answer has no "text" string', { engine: this.name });
    }
    const out: { text: string; confidence?: number } = { text: j.text };
    if (Array.isArray(j.segments)) {
      const lp = j.segments
        .map((s) => s?.avg_logprob)
        .filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
      if (lp.length) out.confidence = Math.exp(lp.reduce((a, b) => a + b, 0) / lp.length);
    }
    return out;
  }
}
