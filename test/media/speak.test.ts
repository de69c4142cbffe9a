/**
 * Sentence-streamed speech: the first sentence's audio comes out while the reply is still being generated,
 * the next sentence is synthesised while the current one plays, the cache serves a repeated sentence, a
 * failure surfaces at its own sentence. Real espeak-ng for the audio where it is installed.
 */
import { execFileSync } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { encodeWav } from '../../src/audio/wav';
import { speakSentences } from '../../src/media/speak';
import { splitSentences } from '../../src/media/sentences';
import { TextQueue } from '../../src/llm/stream';
import { AudioCache } from '../../src/speech/tts-cache';
import { EspeakEngine } from '../../src/speech/tts-espeak';
import { TtsService, type SynthOptions, type TtsEngine } from '../../src/speech/tts';
import { StageError } from '../../src/util/errors';
import { describeWith } from '../helpers/tools';
import { waitFor } from '../helpers/wait';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'speak-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;
const cache = () => new AudioCache(path.join(tmp, `c${++dirs}`));

/** An engine whose every synthesis waits for the test to release it; 100 ms of 16 kHz tone per word. */
class GatedEngine implements TtsEngine {
  readonly name = 'gated';
  readonly voice = 'v';
  readonly identity = 'gated|1';
  readonly started: string[] = [];
  private gates = new Map<string, () => void>();
  failOn?: string;
  synthesize(text: string, _o: SynthOptions): Promise<Buffer> {
    this.started.push(text);
    return new Promise((resolve, reject) => {
      this.gates.set(text, () => {
        if (text === this.failOn) return reject(new StageError('tts', 'network', 'engine down', { engine: this.name }));
        const n = 1600 * text.split(' ').length;
        resolve(
          encodeWav({ sampleRate: 16000, channels: 1, samples: new Int16Array(n).map((_, i) => (i % 40) * 200) }),
        );
      });
    });
  }
  release(text: string): void {
    this.gates.get(text)?.();
  }
}

const tick = () => new Promise((r) => setImmediate(r));
const until = (cond: () => boolean) => waitFor(cond, 5000, 'the engine to be asked', 5);

describe('speakSentences', () => {
  test('sentence one is spoken while the reply is still generated; sentence two is synthesised during it', async () => {
    const engine = new GatedEngine();
    const tokens = new TextQueue();
    const out = speakSentences(new TtsService(engine, cache()), splitSentences(tokens))[Symbol.asyncIterator]();
    tokens.push('Hello there. ');
    tokens.push('How are');
    const first = out.next();
    await until(() => engine.started.length === 1);
    expect(engine.started).toEqual(['Hello there.']);
    engine.release('Hello there.');
    const a = await first;
    expect(a.value).toMatchObject({ text: 'Hello there.', cached: false, durationMs: 200 });
    expect((a.value as { samples: Int16Array }).samples.length).toBe(1600); // 8 kHz now
    tokens.push(' you? Bye.');
    await until(() => engine.started.length === 2);
    // the third sentence is only known at the end of the tokens (its dot could be "Bye.5")
    tokens.end();
    await until(() => engine.started.length === 3);
    expect(engine.started).toEqual(['Hello there.', 'How are you?', 'Bye.']);
    engine.release('Bye.');
    engine.release('How are you?');
    expect((await out.next()).value).toMatchObject({ text: 'How are you?' });
    expect((await out.next()).value).toMatchObject({ text: 'Bye.' });
    expect((await out.next()).done).toBe(true);
  });

  test('a sentence said before comes from the cache', async () => {
    const engine = new GatedEngine();
    const svc = new TtsService(engine, cache());
    const q1 = new TextQueue();
    q1.push('Thank you. Goodbye.');
    q1.end();
    const run = (async () => {
      const r = [];
      for await (const s of speakSentences(svc, splitSentences(q1))) r.push(s);
      return r;
    })();
    await until(() => engine.started.length === 2);
    engine.release('Thank you.');
    engine.release('Goodbye.');
    expect((await run).map((s) => s.cached)).toEqual([false, false]);
    const q2 = new TextQueue();
    q2.push('Goodbye.');
    q2.end();
    const again = [];
    for await (const s of speakSentences(svc, splitSentences(q2))) again.push(s);
    expect(again.map((s) => [s.text, s.cached])).toEqual([['Goodbye.', true]]);
    expect(engine.started).toHaveLength(2);
  });

  test('a failing sentence is thrown at its turn, after the sentences before it', async () => {
    const engine = new GatedEngine();
    engine.failOn = 'Two.';
    const q = new TextQueue();
    q.push('One. Two. Three.');
    q.end();
    const got: string[] = [];
    const run = (async () => {
      for await (const s of speakSentences(new TtsService(engine, cache()), splitSentences(q))) got.push(s.text);
    })();
    await until(() => engine.started.length >= 2);
    engine.release('One.');
    engine.release('Two.');
    await expect(run).rejects.toMatchObject({ code: 'tts_network' });
    expect(got).toEqual(['One.']);
  });

  test('stopping early (barge-in) stops taking sentences from the reply', async () => {
    const engine = new GatedEngine();
    const q = new TextQueue();
    q.push('First. Second. Third. Fourth. Fifth.');
    const svc = new TtsService(engine, cache());
    const run = (async () => {
      for await (const s of speakSentences(svc, splitSentences(q), { lookahead: 1 })) {
        expect(s.text).toBe('First.');
        break;
      }
    })();
    // the sentence being played and `lookahead` more are synthesised; nothing after the stop
    await until(() => engine.started.length === 2);
    engine.release('First.');
    await run;
    engine.release('Second.');
    q.end();
    for (let i = 0; i < 20; i++) await tick();
    expect(engine.started).toEqual(['First.', 'Second.']);
  });
});

function has(bin: string): boolean {
  try {
    execFileSync(bin, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describeWith(
  'espeak-ng',
  has('espeak-ng'),
  'apt-get install espeak-ng',
)('with espeak-ng', () => {
  test('each sentence is real 8 kHz speech of plausible length', async () => {
    const q = new TextQueue();
    q.push('Good morning. Your appointment is on Tuesday at 3.30 in the afternoon.');
    q.end();
    const svc = new TtsService(new EspeakEngine({ voice: 'en-us', speed: 160 }), cache());
    const out = [];
    for await (const s of speakSentences(svc, splitSentences(q))) out.push(s);
    expect(out.map((s) => s.text)).toEqual([
      'Good morning.',
      'Your appointment is on Tuesday at 3.30 in the afternoon.',
    ]);
    expect(out[0].durationMs).toBeGreaterThan(400);
    expect(out[1].durationMs).toBeGreaterThan(out[0].durationMs * 2);
    for (const s of out) expect(Math.abs(s.samples.length / 8 - s.durationMs)).toBeLessThanOrEqual(1);
  });
});
