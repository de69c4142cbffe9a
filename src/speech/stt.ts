/**
 * Speech to text: one interface, several engines. `transcribe` reads the recording (a WAV as
 * Asterisk writes it), answers empty audio and digital silence with an empty transcript without
 * asking the engine (so a silent caller is never an error and a Whisper model cannot hallucinate
 * words into silence), and times the engine.
 */
import { localFiles } from '../util/local-file';
import { performance } from 'perf_hooks';
import { StageError, errorMessage } from '../util/errors';
import { encodeWav, parseWav, toMono, type ParsedWav } from '../audio/wav';
import { VoskEngine, type SttStream, type VoskOptions, type VoskStreamOptions } from './stt-vosk';
import { OpenAiSttEngine, type OpenAiSttOptions } from './stt-openai';
import { SimSttEngine } from './stt-sim';
import { WyomingSttEngine, type WyomingSttOptions } from './wyoming';

export interface Transcript {
  text: string;
  /** 0..1 where the engine says (Vosk word confidences, Whisper segment log-probabilities). */
  confidence?: number;
  engine: string;
  /** Length of the audio, ms. */
  audioMs: number;
  /** Time taken, ms. */
  elapsedMs: number;
  /** True when the text was read back from a simulated recording (demo only), not recognised. */
  simulated?: boolean;
  /** Stream mode: recognised live while the caller spoke (elapsedMs is then the wait after the utterance ended). */
  live?: boolean;
  /**
   * Stream mode: transcribed early, when the caller paused, and the turn ended on that same audio (elapsedMs
   * is then the wait after the utterance ended; see src/media/live-stt.ts).
   */
  early?: boolean;
}

export interface SttRequest {
  /** Parsed audio (mono). */
  audio: ParsedWav;
  /** The WAV bytes as read (engines that upload a file send these). */
  wav: Buffer;
  timeoutMs: number;
  language?: string;
  signal?: AbortSignal;
  /** Partial hypotheses as they arrive (Vosk). */
  onPartial?: (text: string) => void;
}

export interface SttEngine {
  readonly name: string;
  recognize(req: SttRequest): Promise<{ text: string; confidence?: number; simulated?: boolean }>;
  /** A live recognition stream (engines that stream: Vosk), fed while the caller speaks (stream mode). */
  openStream?(o: VoskStreamOptions): SttStream;
}

/** Peak level (absolute 16-bit sample) at or below which a recording counts as digital silence (about -54 dBFS). */
export const SILENCE_PEAK = 64;

function peak(samples: Int16Array): number {
  let p = 0;
  for (let i = 0; i < samples.length; i++) {
    const v = samples[i] < 0 ? -samples[i] : samples[i];
    if (v > p) p = v;
  }
  return p;
}

/** Transcribe a WAV file or buffer with `engine`. */
export async function transcribe(
  engine: SttEngine,
  input: string | Buffer,
  opts: { timeoutMs?: number; language?: string; signal?: AbortSignal; onPartial?: (t: string) => void } = {},
): Promise<Transcript> {
  const t0 = performance.now();
  let wav: Buffer;
  if (typeof input === 'string') {
    try {
      wav = await localFiles.read(input);
    } catch (err) {
      throw new StageError(
        'stt',
        'invalid_input',
        `cannot read recording ${input}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`,
        { engine: engine.name },
      );
    }
  } else wav = input;
  let parsed: ParsedWav;
  if (wav.length <= 44 && wav.subarray(0, 4).toString('ascii') === 'RIFF') {
    // a header and nothing else: the caller hung up as the recording started
    return { text: '', engine: engine.name, audioMs: 0, elapsedMs: performance.now() - t0 };
  }
  try {
    parsed = parseWav(wav);
  } catch (err) {
    if (wav.length === 0) return { text: '', engine: engine.name, audioMs: 0, elapsedMs: performance.now() - t0 };
    throw new StageError('stt', 'invalid_input', `recording is not a 16-bit PCM WAV: ${errorMessage(err)}`, {
      engine: engine.name,
      cause: err,
    });
  }
  if (parsed.channels !== 1) parsed = { ...parsed, ...toMono(parsed) };
  const audioMs = parsed.durationMs;
  const sim = engine instanceof SimSttEngine;
  if (!sim && (parsed.samples.length === 0 || peak(parsed.samples) <= SILENCE_PEAK)) {
    return { text: '', engine: engine.name, audioMs, elapsedMs: performance.now() - t0 };
  }
  // Recognition time grows with the audio: the deadline is the configured timeout plus the recording's length.
  const timeoutMs = (opts.timeoutMs ?? 15000) + audioMs;
  const r = await engine.recognize({
    audio: parsed,
    wav,
    timeoutMs,
    language: opts.language,
    signal: opts.signal,
    onPartial: opts.onPartial,
  });
  const out = transcriptOf(r, engine.name, audioMs, performance.now() - t0);
  if (r.simulated) out.simulated = true;
  return out;
}

/**
 * Transcribe an utterance held in memory (stream mode: the endpointer's audio, 8 kHz 16-bit mono by
 * default): the WAV is built in memory and handed to the engine at once (OpenAI-compatible engines post
 * it as one file, Wyoming streams it, Vosk sends it); nothing touches the disk.
 */
export function transcribeSamples(
  engine: SttEngine,
  samples: Int16Array,
  opts: {
    sampleRate?: number;
    timeoutMs?: number;
    language?: string;
    signal?: AbortSignal;
    onPartial?: (t: string) => void;
    /** Simulator runs: what the simulated callee said (embedded for the sim engine, as in its recordings). */
    simText?: string;
  } = {},
): Promise<Transcript> {
  const wav = encodeWav({ sampleRate: opts.sampleRate ?? 8000, channels: 1, samples }, opts.simText);
  return transcribe(engine, wav, opts);
}

/** A transcript from an engine's own result (a live stream's final one): normalised like `transcribe`'s. */
export function transcriptOf(
  r: { text: string; confidence?: number },
  engine: string,
  audioMs: number,
  elapsedMs: number,
): Transcript {
  const out: Transcript = { text: normaliseTranscript(r.text), engine, audioMs, elapsedMs };
  if (r.confidence !== undefined && Number.isFinite(r.confidence))
    out.confidence = Math.max(0, Math.min(1, r.confidence));
  return out;
}

/** One line, no control characters, capped (transcripts flow into prompts, logs and events). */
export function normaliseTranscript(text: unknown): string {
  if (typeof text !== 'string') return '';
  return text
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ')
    .replace(/\s{2,}/g, ' ')
    .trim()
    .slice(0, 4000);
}

export type SttEngineName = 'vosk' | 'openai' | 'wyoming' | 'sim';

/**
 * Engine name from the node's setting, else STT_ENGINE. With neither: `sim` only in the embedded demo
 * (no ARI_URL, or AI_DIALER_SIMULATED=1 which `npm start` sets when it runs the built-in simulator); with a real Asterisk configured it is a not_configured
 * error, never a silent fallback to simulated text.
 */
export function resolveSttEngineName(
  configured: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): SttEngineName {
  const raw = (configured && configured.trim()) || (env.STT_ENGINE && env.STT_ENGINE.trim()) || '';
  const n = raw.toLowerCase();
  if (n === 'vosk') return 'vosk';
  if (n === 'openai' || n === 'openai-compatible' || n === 'whisper') return 'openai';
  if (n === 'wyoming') return 'wyoming';
  if (n === 'sim') return 'sim';
  if (n === '') {
    if (env.ARI_URL && env.ARI_URL.trim() && env.AI_DIALER_SIMULATED !== '1') {
      throw new StageError(
        'stt',
        'not_configured',
        'no STT engine set (STT_ENGINE=vosk, openai or wyoming, or the node setting)',
        { engine: 'none' },
      );
    }
    return 'sim';
  }
  throw new StageError('stt', 'not_configured', `unknown STT engine "${raw}" (vosk, openai, wyoming or sim)`, {
    engine: raw,
  });
}

export interface SttConfig {
  engine?: string;
  vosk?: Partial<VoskOptions>;
  openai?: Partial<OpenAiSttOptions>;
  wyoming?: Partial<WyomingSttOptions>;
}

export function createSttEngine(cfg: SttConfig, env: NodeJS.ProcessEnv = process.env): SttEngine {
  switch (resolveSttEngineName(cfg.engine, env)) {
    case 'vosk':
      return new VoskEngine({
        url: cfg.vosk?.url || env.VOSK_URL || 'ws://127.0.0.1:2700',
        chunkBytes: cfg.vosk?.chunkBytes,
      });
    case 'wyoming':
      return new WyomingSttEngine({
        host: cfg.wyoming?.host || env.WYOMING_STT_HOST || '127.0.0.1',
        port: cfg.wyoming?.port || env.WYOMING_STT_PORT || 10300,
        model: cfg.wyoming?.model || env.WYOMING_STT_MODEL || undefined,
        language: cfg.wyoming?.language || env.STT_LANGUAGE || undefined,
        chunkBytes: cfg.wyoming?.chunkBytes,
      });
    case 'openai':
      return new OpenAiSttEngine({
        baseUrl: cfg.openai?.baseUrl || env.STT_BASE_URL || '',
        model: cfg.openai?.model || env.STT_MODEL || 'whisper-1',
        apiKey: cfg.openai?.apiKey || env.STT_API_KEY || undefined,
        language: cfg.openai?.language || env.STT_LANGUAGE || undefined,
        responseFormat:
          cfg.openai?.responseFormat || (env.STT_RESPONSE_FORMAT as 'json' | 'verbose_json' | undefined) || 'json',
      });
    default:
      return new SimSttEngine();
  }
}
