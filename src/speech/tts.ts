/**
 * Text to speech: one interface, several engines, one output format.
 *
 * Every engine returns a 16-bit PCM WAV at whatever rate it speaks; `TtsService` converts it to what
 * Asterisk plays (8 kHz, 16-bit, mono, band-limited resampling via `toAsteriskWav`), caches it by
 * engine + voice + text, and hands back the path to play (without `.wav`, as STREAM FILE wants).
 */
import { localFiles } from '../util/local-file';
import path from 'path';
import { performance } from 'perf_hooks';
import { StageError, errorMessage } from '../util/errors';
import { parseWav, toAsteriskWav, WavError } from '../audio/wav';
import { AudioCache, cacheKey, resolveAudioDir } from './tts-cache';
import { EspeakEngine, type EspeakOptions } from './tts-espeak';
import { PiperEngine, type PiperOptions } from './tts-piper';
import { OpenAiTtsEngine, type OpenAiTtsOptions } from './tts-openai';
import { SimTtsEngine } from './tts-sim';
import { WyomingTtsEngine, type WyomingTtsOptions } from './wyoming';

export interface SynthOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface TtsEngine {
  /** Engine name: `espeak-ng`, `piper`, `openai`, `wyoming`, `sim`. */
  readonly name: string;
  /** Voice label for logs and the turn record. */
  readonly voice: string;
  /** Everything that changes the audio besides the text (engine, voice, speed, model...): part of the cache key. */
  readonly identity: string;
  /** Synthesize `text`; resolves with a 16-bit PCM WAV (any rate, any channel count). */
  synthesize(text: string, opts: SynthOptions): Promise<Buffer>;
  /**
   * Optional (Wyoming has it): the audio piece by piece as the engine produces it, for a streaming
   * playback mode that forwards each piece to the caller at once. Not cached, not resampled.
   */
  synthesizeStream?(text: string, opts: SynthOptions): AsyncIterable<PcmChunk>;
}

/** A piece of interleaved 16-bit little-endian PCM as an engine produces it. */
export interface PcmChunk {
  rate: number;
  channels: number;
  pcm: Buffer;
}

export interface TtsResult {
  /** Full path of the 8 kHz WAV, WITH `.wav`. */
  file: string;
  /** Path for STREAM FILE: the same WITHOUT the extension. */
  playPath: string;
  durationMs: number;
  cached: boolean;
  /** Time taken by this request (cache lookup, or synthesis and conversion), ms. */
  elapsedMs: number;
  engine: string;
  voice: string;
  /** Let the cache evict the file again (call after playback). */
  release(): void;
  /** The WAV bytes when this call synthesized them (a miss): no need to read `file` back. */
  bytes?: Buffer;
}

/** Longest text synthesized in one request. */
export const MAX_TTS_CHARS = 2000;

/** Normalise text for synthesis (and the cache key): one line, no control characters, trimmed. */
export function normaliseTtsText(text: string): string {
  return String(text ?? '')
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ')
    .replace(/\s{2,}/g, ' ')
    .trim();
}

export class TtsService {
  readonly engine: TtsEngine;
  readonly cache: AudioCache;
  readonly timeoutMs: number;

  constructor(engine: TtsEngine, cache: AudioCache, timeoutMs = 15000) {
    this.engine = engine;
    this.cache = cache;
    this.timeoutMs = timeoutMs;
  }

  /**
   * `inMemory`: the caller uses `bytes` and never plays `file` (stream mode): a new synthesis is handed
   * over as soon as it exists, its cache file written in the background (AudioCache.get).
   */
  async speak(text: string, opts: { signal?: AbortSignal; inMemory?: boolean } = {}): Promise<TtsResult> {
    const t0 = performance.now();
    const engine = this.engine;
    const clean = normaliseTtsText(text);
    if (!clean) throw new StageError('tts', 'invalid_input', 'nothing to say (empty text)', { engine: engine.name });
    if (clean.length > MAX_TTS_CHARS) {
      throw new StageError(
        'tts',
        'invalid_input',
        `text too long (${clean.length} characters, at most ${MAX_TTS_CHARS})`,
        { engine: engine.name },
      );
    }
    const key = cacheKey(engine.identity, clean);
    let durationMs = 0;
    const got = await this.cache.get(
      key,
      async () => {
        const raw = await engine.synthesize(clean, { timeoutMs: this.timeoutMs, signal: opts.signal });
        let out: Buffer;
        try {
          out = toAsteriskWav(raw);
        } catch (err) {
          if (err instanceof WavError) {
            throw new StageError('tts', 'bad_response', `engine audio is not a 16-bit PCM WAV: ${err.message}`, {
              engine: engine.name,
              cause: err,
            });
          }
          throw new StageError('tts', 'bad_response', `cannot convert engine audio: ${errorMessage(err)}`, {
            engine: engine.name,
            cause: err,
          });
        }
        if (out.length <= 44)
          throw new StageError('tts', 'bad_response', 'engine returned no audio', { engine: engine.name });
        return out;
      },
      { inMemory: opts.inMemory },
    );
    // the cache knows the audio length from the WAV header (read when the file was made or first hit)
    if (got.durationMs === undefined) {
      got.release();
      throw new StageError('tts', 'bad_response', 'cached audio unreadable: unexpected WAV layout', {
        engine: engine.name,
      });
    }
    durationMs = got.durationMs;
    return {
      file: got.file,
      playPath: got.file.replace(/\.wav$/, ''),
      durationMs,
      cached: got.hit,
      elapsedMs: performance.now() - t0,
      engine: engine.name,
      voice: engine.voice,
      release: got.release,
      ...(got.bytes ? { bytes: got.bytes } : {}),
    };
  }
}

/** Speech as samples for stream mode (sent as 20 ms frames, never a file to play). */
export interface TtsSamples {
  text: string;
  /** 8 kHz 16-bit mono. */
  samples: Int16Array;
  durationMs: number;
  cached: boolean;
  elapsedMs: number;
  engine: string;
  voice: string;
}

/**
 * `speak` for stream mode: the same synthesis, conversion and cache (so a sentence said before costs a
 * cache read), handed back as samples. The cache entry is released at once: the samples are in memory.
 */
export async function speakSamples(
  tts: TtsService,
  text: string,
  opts: { signal?: AbortSignal } = {},
): Promise<TtsSamples> {
  const t0 = performance.now();
  // the samples are sent from memory: a new synthesis does not wait for its cache file to be written
  const r = await tts.speak(text, { ...opts, inMemory: true });
  try {
    const wav = parseWav(r.bytes ?? (await localFiles.read(r.file)));
    return {
      text: normaliseTtsText(text),
      samples: wav.samples,
      durationMs: r.durationMs,
      cached: r.cached,
      elapsedMs: performance.now() - t0,
      engine: r.engine,
      voice: r.voice,
    };
  } catch (err) {
    throw new StageError('tts', 'bad_response', `cached audio unreadable: ${errorMessage(err)}`, {
      engine: r.engine,
      cause: err,
    });
  } finally {
    r.release();
  }
}

export type TtsEngineName = 'espeak-ng' | 'piper' | 'openai' | 'wyoming' | 'sim';

export interface TtsConfig {
  /** Engine; empty: TTS_ENGINE, else espeak-ng. `espeak` is accepted for espeak-ng. */
  engine?: string;
  espeak?: EspeakOptions;
  piper?: Partial<PiperOptions>;
  openai?: Partial<OpenAiTtsOptions>;
  wyoming?: Partial<WyomingTtsOptions>;
}

/** Engine name from the node's setting or TTS_ENGINE; espeak-ng by default. */
export function resolveTtsEngineName(
  configured: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): TtsEngineName {
  const raw = (configured && configured.trim()) || (env.TTS_ENGINE && env.TTS_ENGINE.trim()) || 'espeak-ng';
  const n = raw.toLowerCase();
  if (n === 'espeak' || n === 'espeak-ng') return 'espeak-ng';
  if (n === 'piper') return 'piper';
  if (n === 'openai' || n === 'openai-compatible') return 'openai';
  if (n === 'wyoming') return 'wyoming';
  if (n === 'sim') return 'sim';
  throw new StageError(
    'tts',
    'not_configured',
    `unknown TTS engine "${raw}" (espeak-ng, piper, openai, wyoming or sim)`,
    {
      engine: raw,
    },
  );
}

/** Build an engine from settings; empty settings fall back to environment variables (see docs/engines/tts.md). */
export function createTtsEngine(cfg: TtsConfig, env: NodeJS.ProcessEnv = process.env): TtsEngine {
  const name = resolveTtsEngineName(cfg.engine, env);
  switch (name) {
    case 'sim':
      return new SimTtsEngine();
    case 'piper':
      return new PiperEngine({
        bin: cfg.piper?.bin || env.PIPER_BIN || 'piper',
        model: cfg.piper?.model || env.PIPER_MODEL || '',
        speaker: cfg.piper?.speaker ?? (env.PIPER_SPEAKER ? Number(env.PIPER_SPEAKER) : undefined),
        lengthScale: cfg.piper?.lengthScale ?? (env.PIPER_LENGTH_SCALE ? Number(env.PIPER_LENGTH_SCALE) : undefined),
      });
    case 'wyoming':
      return new WyomingTtsEngine({
        host: cfg.wyoming?.host || env.WYOMING_TTS_HOST || '127.0.0.1',
        port: cfg.wyoming?.port || env.WYOMING_TTS_PORT || 10200,
        voice: cfg.wyoming?.voice || env.WYOMING_TTS_VOICE || undefined,
        speaker: cfg.wyoming?.speaker || env.WYOMING_TTS_SPEAKER || undefined,
        language: cfg.wyoming?.language || undefined,
      });
    case 'openai':
      return new OpenAiTtsEngine({
        baseUrl: cfg.openai?.baseUrl || env.TTS_BASE_URL || '',
        model: cfg.openai?.model || env.TTS_MODEL || 'tts-1',
        voice: cfg.openai?.voice || env.TTS_VOICE || 'alloy',
        apiKey: cfg.openai?.apiKey || env.TTS_API_KEY || undefined,
        speed: cfg.openai?.speed,
      });
    default:
      return new EspeakEngine({
        bin: cfg.espeak?.bin || env.ESPEAK_BIN || 'espeak-ng',
        voice: cfg.espeak?.voice || env.TTS_VOICE || 'en-us',
        speed: cfg.espeak?.speed ?? (env.ESPEAK_SPEED ? Number(env.ESPEAK_SPEED) : undefined),
        pitch: cfg.espeak?.pitch,
      });
  }
}

/** One cache per directory per process, shared by every tts-speak node that uses it. */
const caches = new Map<string, AudioCache>();
export function sharedCache(audioDir?: string, maxBytes?: number, env: NodeJS.ProcessEnv = process.env): AudioCache {
  const dir = path.join(resolveAudioDir(audioDir, env), 'tts');
  let c = caches.get(dir);
  if (!c) {
    c = new AudioCache(dir, maxBytes ?? (env.TTS_CACHE_MB ? Number(env.TTS_CACHE_MB) * 1024 * 1024 : undefined));
    caches.set(dir, c);
  }
  return c;
}
