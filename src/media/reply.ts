/**
 * Stream mode's speaking: a reply (its whole text, or its tokens as the LLM produces them) is split into
 * sentences; each is synthesized (cached as in record mode) while the one before it plays, and its audio
 * goes to the caller as paced frames the moment it exists. An engine that streams (Wyoming) sends its
 * audio chunks straight on as they arrive. Barge-in stops it; the result says what the caller heard.
 */
import { performance } from 'perf_hooks';
import { resample } from '../audio/wav';
import { normaliseTtsText, type TtsService } from '../speech/tts';
import { StageError } from '../util/errors';
import { splitSentences } from './sentences';
import { speakSentences } from './speak';
import type { MediaSession, PlayResult } from './session';

export interface SpokenReply {
  /** Everything that was to be said (all sentences). */
  text: string;
  /** What the caller heard: the whole text, or up to the cut (by words, in proportion) when interrupted. */
  playedText: string;
  play: PlayResult;
  sentences: number;
  /** The first piece spoken (a sentence, or the reply's first clause). */
  firstText?: string;
  /** Start to the first audio of the reply (synthesis of the first sentence, or a stream's first chunk), ms. */
  ttsFirstAudioMs?: number;
  /** Time spent synthesizing, all sentences, ms. */
  ttsMs: number;
  /** Every sentence came from the cache. */
  cached: boolean;
  engine: string;
  voice: string;
}

/** The reply's first piece may be a clause of at least this many characters (see SplitOptions). */
export const FIRST_CLAUSE_CHARS = 8;

async function* once(text: string): AsyncIterable<string> {
  yield text;
}

/**
 * Speak `reply` on `media`. `reply` is the text, or its pieces as they come (LLM tokens). Resolves once
 * it has been played, stopped by barge-in, or the media ended.
 */
export async function speakOnStream(
  media: MediaSession,
  svc: TtsService,
  reply: string | AsyncIterable<string>,
  opts: { signal?: AbortSignal; streamEngine?: boolean; escapeDigits?: string } = {},
): Promise<SpokenReply> {
  const t0 = performance.now();
  const engine = svc.engine;
  const said: Array<{ text: string; samples: number }> = [];
  let firstAudioAt: number | undefined;
  let synthMs = 0;
  let allCached = true;
  let failure: unknown;
  // the first clause is spoken as soon as it is there ("Thank you,"), the rest sentence by sentence
  const sentences = splitSentences(typeof reply === 'string' ? once(reply) : reply, {
    firstClauseChars: FIRST_CLAUSE_CHARS,
  });
  const streaming = opts.streamEngine !== false && typeof engine.synthesizeStream === 'function';

  async function* audio(): AsyncGenerator<Int16Array> {
    if (streaming) {
      // the engine's chunks go on as they come (not cached): Wyoming's audio-chunk events
      allCached = false;
      for await (const sentence of sentences) {
        const clean = normaliseTtsText(sentence);
        if (!clean) continue;
        const s0 = performance.now();
        const part = { text: clean, samples: 0 };
        said.push(part);
        for await (const c of (engine.synthesizeStream as NonNullable<typeof engine.synthesizeStream>)(clean, {
          timeoutMs: svc.timeoutMs,
          signal: opts.signal,
        })) {
          const samples = new Int16Array(c.pcm.buffer.slice(c.pcm.byteOffset, c.pcm.byteOffset + c.pcm.length));
          const pcm = resample({ sampleRate: c.rate, channels: c.channels, samples }, 8000).samples;
          if (!pcm.length) continue;
          if (firstAudioAt === undefined) firstAudioAt = performance.now();
          part.samples += pcm.length;
          yield pcm;
        }
        synthMs += performance.now() - s0;
      }
      return;
    }
    // the next sentences are synthesized (through the cache) while one plays (src/media/speak.ts)
    for await (const part of speakSentences(svc, sentences, { signal: opts.signal })) {
      synthMs += part.elapsedMs;
      if (!part.cached) allCached = false;
      if (!part.samples.length) continue;
      if (firstAudioAt === undefined) firstAudioAt = performance.now();
      said.push({ text: part.text, samples: part.samples.length });
      yield part.samples;
    }
  }

  const gen = audio();
  // a synthesis failure ends the playback; it is thrown after whatever could be said was said
  const guarded = (async function* () {
    try {
      yield* gen;
    } catch (err) {
      failure = err;
    }
  })();
  const play = await media.play(guarded, { signal: opts.signal, escapeDigits: opts.escapeDigits });
  // a synthesis that failed (before or mid-audio) is the node's failure, after what could be said was said;
  // the text ending early (the LLM's stream cut, e.g. at a Deploy) once the reply was under way is not;
  // a caller who hung up ended it anyway
  const ttsFailed = failure instanceof StageError && failure.stage === 'tts';
  if (failure && !play.hungUp && (ttsFailed || said.length === 0)) throw failure;
  const text = said.map((p) => p.text).join(' ');
  return {
    text,
    playedText: play.interrupted || play.digit !== undefined ? heardText(said, Math.round(play.playedMs * 8)) : text,
    play,
    sentences: said.length,
    firstText: said[0]?.text,
    ttsFirstAudioMs: firstAudioAt === undefined ? undefined : Math.round(firstAudioAt - t0),
    ttsMs: Math.round(synthMs),
    cached: allCached && said.length > 0,
    engine: engine.name,
    voice: engine.voice,
  };
}

/** The text up to `playedSamples`: whole sentences, then the share of the cut one's words. */
export function heardText(parts: Array<{ text: string; samples: number }>, playedSamples: number): string {
  const out: string[] = [];
  let left = playedSamples;
  for (const p of parts) {
    if (left >= p.samples) {
      out.push(p.text);
      left -= p.samples;
      continue;
    }
    const words = p.text.split(/\s+/).filter(Boolean);
    const n = p.samples > 0 ? Math.floor((words.length * left) / p.samples) : 0;
    if (n > 0) out.push(words.slice(0, n).join(' '));
    break;
  }
  return out.join(' ');
}
