/**
 * Sentence-streamed speech: sentences in (from `splitSentences` over a streamed reply), speech out in
 * order, each sentence synthesised (through the TTS cache) as soon as it arrives, up to `lookahead`
 * sentences ahead of the one being played, so the next one is ready when the current one ends.
 */
import { speakSamples, type TtsSamples, type TtsService } from '../speech/tts';

export interface SpeakOptions {
  signal?: AbortSignal;
  /** Sentences synthesised ahead of the consumer (default 2). */
  lookahead?: number;
}

/**
 * Yields each sentence's speech in order. A synthesis failure is thrown when its sentence's turn comes
 * (earlier sentences are still yielded); stopping the iteration (barge-in) or aborting stops taking
 * sentences.
 */
export async function* speakSentences(
  tts: TtsService,
  sentences: AsyncIterable<string>,
  opts: SpeakOptions = {},
): AsyncIterable<TtsSamples> {
  const lookahead = Math.max(1, opts.lookahead ?? 2);
  const it = sentences[Symbol.asyncIterator]();
  const queue: Array<Promise<TtsSamples>> = [];
  let ended = false;
  let stopped = false;
  let failure: { err: unknown } | undefined;
  let wakeConsumer: (() => void) | undefined;
  let wakeFiller: (() => void) | undefined;
  const notify = () => {
    const w = wakeConsumer;
    wakeConsumer = undefined;
    w?.();
  };
  const filler = (async () => {
    try {
      for (;;) {
        while (queue.length >= lookahead && !stopped) await new Promise<void>((r) => (wakeFiller = r));
        if (stopped || opts.signal?.aborted) return;
        const n = await it.next();
        if (n.done || stopped) return;
        const p = speakSamples(tts, n.value, { signal: opts.signal });
        p.catch(() => undefined); // observed when its turn comes
        queue.push(p);
        notify();
      }
    } catch (err) {
      failure = { err };
    } finally {
      ended = true;
      notify();
    }
  })();
  try {
    for (;;) {
      while (!queue.length && !ended) await new Promise<void>((r) => (wakeConsumer = r));
      if (!queue.length) {
        if (failure) throw failure.err;
        return;
      }
      const head = queue.shift() as Promise<TtsSamples>;
      const w = wakeFiller;
      wakeFiller = undefined;
      w?.();
      yield await head;
    }
  } finally {
    stopped = true;
    const w = wakeFiller;
    wakeFiller = undefined;
    w?.();
    if (!ended) await it.return?.();
    void filler;
  }
}
