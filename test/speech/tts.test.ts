import fs from 'fs';
import os from 'os';
import path from 'path';
import http from 'http';
import type { AddressInfo } from 'net';
import { parseWav, encodeWav } from '../../src/audio/wav';
import { StageError } from '../../src/util/errors';
import { localFiles } from '../../src/util/local-file';
import { AudioCache, cacheKey, resolveAudioDir } from '../../src/speech/tts-cache';
import { TtsService, createTtsEngine, resolveTtsEngineName, type TtsEngine } from '../../src/speech/tts';
import { EspeakEngine } from '../../src/speech/tts-espeak';
import { PiperEngine } from '../../src/speech/tts-piper';
import { OpenAiTtsEngine } from '../../src/speech/tts-openai';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-tts-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function header(file: string) {
  const b = fs.readFileSync(file);
  return {
    riff: b.toString('ascii', 0, 4),
    wave: b.toString('ascii', 8, 12),
    format: b.readUInt16LE(20),
    channels: b.readUInt16LE(22),
    rate: b.readUInt32LE(24),
    bits: b.readUInt16LE(34),
    riffSize: b.readUInt32LE(4),
    dataSize: b.readUInt32LE(40),
    size: b.length,
  };
}

/** A tone as a WAV at `rate`. */
function tone(rate: number, ms: number, freq = 440, channels = 1): Buffer {
  const frames = Math.round((rate * ms) / 1000);
  const s = new Int16Array(frames * channels);
  for (let i = 0; i < frames; i++)
    for (let c = 0; c < channels; c++)
      s[i * channels + c] = Math.round(8000 * Math.sin((2 * Math.PI * freq * i) / rate));
  return encodeWav({ sampleRate: rate, channels, samples: s });
}

describe('espeak-ng (real)', () => {
  const dir = path.join(tmp, 'espeak');
  const service = new TtsService(new EspeakEngine({ voice: 'en-us', speed: 160 }), new AudioCache(dir));

  test('writes an 8 kHz 16-bit mono RIFF WAV of plausible length, then hits the cache', async () => {
    const text = 'Hello, this is a reminder about your appointment on Tuesday at ten.';
    const r = await service.speak(text);
    const h = header(r.file);
    expect(h).toMatchObject({ riff: 'RIFF', wave: 'WAVE', format: 1, channels: 1, rate: 8000, bits: 16 });
    expect(h.riffSize).toBe(h.size - 8);
    expect(h.dataSize).toBe(h.size - 44);
    // 12 words at 160 wpm is about 4.5 s of speech; espeak pads a little
    expect(r.durationMs).toBeGreaterThan(2500);
    expect(r.durationMs).toBeLessThan(9000);
    expect(parseWav(fs.readFileSync(r.file)).durationMs).toBe(r.durationMs);
    expect(r.cached).toBe(false);
    expect(r.playPath).toBe(r.file.slice(0, -4));
    expect(path.basename(r.file)).toMatch(/^tts-[0-9a-f]{40}\.wav$/);
    // real audio, not silence
    const pcm = parseWav(fs.readFileSync(r.file)).samples;
    expect(Math.max(...Array.from(pcm.subarray(0, 40000)).map(Math.abs))).toBeGreaterThan(1000);
    r.release();

    const ino = fs.statSync(r.file).ino;
    const again = await service.speak(text);
    expect(again.cached).toBe(true);
    expect(again.file).toBe(r.file);
    expect(fs.statSync(r.file).ino).toBe(ino); // not rewritten (a write renames a new file in)
    again.release();
  });

  test('a short text is shorter than a long one', async () => {
    const a = await service.speak('Yes.');
    const b = await service.speak('Thank you very much for your time today, we will call you back next week. Goodbye.');
    expect(a.durationMs).toBeGreaterThan(150);
    expect(a.durationMs).toBeLessThan(2000);
    expect(b.durationMs).toBeGreaterThan(a.durationMs * 2);
  });

  test('concurrent requests for the same text synthesize once', async () => {
    let calls = 0;
    const inner = new EspeakEngine({ voice: 'en-gb' });
    const counting: TtsEngine = {
      name: inner.name,
      voice: inner.voice,
      identity: inner.identity,
      synthesize: (t, o) => {
        calls++;
        return inner.synthesize(t, o);
      },
    };
    const s = new TtsService(counting, new AudioCache(path.join(tmp, 'concurrent')));
    const rs = await Promise.all(Array.from({ length: 5 }, () => s.speak('Same words for everyone')));
    expect(calls).toBe(1);
    expect(new Set(rs.map((r) => r.file)).size).toBe(1);
    expect(rs.filter((r) => !r.cached)).toHaveLength(1);
  });

  test('voice and speed are part of the cache key; the file name holds no text', () => {
    const a = new EspeakEngine({ voice: 'en-us', speed: 160 }).identity;
    const b = new EspeakEngine({ voice: 'en-us', speed: 200 }).identity;
    expect(cacheKey(a, 'hi')).not.toBe(cacheKey(b, 'hi'));
    expect(cacheKey(a, 'hi')).toMatch(/^[0-9a-f]{40}$/);
  });

  test('a text with quotes, newlines and an option-like start is spoken as text, never as arguments', async () => {
    const r = await service.speak('--help\n"; rm -rf / #\r\nHANGUP');
    expect(header(r.file).rate).toBe(8000);
    expect(r.playPath).toMatch(/^[A-Za-z0-9_\-./]+$/);
    expect(r.durationMs).toBeGreaterThan(500);
  });

  test('empty text and a missing binary are typed errors', async () => {
    await expect(service.speak('  \n ')).rejects.toMatchObject({
      stage: 'tts',
      kind: 'invalid_input',
      engine: 'espeak-ng',
    });
    const missing = new TtsService(
      new EspeakEngine({ bin: '/nonexistent/espeak-ng' }),
      new AudioCache(path.join(tmp, 'missing')),
    );
    await expect(missing.speak('hello')).rejects.toMatchObject({
      stage: 'tts',
      kind: 'not_installed',
      engine: 'espeak-ng',
    });
  });

  test('invalid voice or speed is refused at configuration', () => {
    expect(() => new EspeakEngine({ voice: '-x --foo' })).toThrow(StageError);
    expect(() => new EspeakEngine({ speed: 5 })).toThrow(/speed/);
  });
});

describe('cache', () => {
  test('size cap evicts the least recently used unleased files', async () => {
    const dir = path.join(tmp, 'cap');
    const one = tone(8000, 500); // 8044 bytes
    const cache = new AudioCache(dir, one.length * 3 + 10);
    const a = await cache.get(cacheKey('t', 'a'), async () => one);
    a.release();
    const b = await cache.get(cacheKey('t', 'b'), async () => one);
    b.release();
    const c = await cache.get(cacheKey('t', 'c'), async () => one); // leased (playing)
    const hitA = await cache.get(cacheKey('t', 'a'), async () => one); // a is now the most recent
    hitA.release();
    expect(hitA.hit).toBe(true);
    const d = await cache.get(cacheKey('t', 'd'), async () => one);
    d.release();
    expect(cache.has(cacheKey('t', 'b'))).toBe(false); // least recently used
    expect(fs.existsSync(b.file)).toBe(false);
    expect(cache.has(cacheKey('t', 'a'))).toBe(true);
    expect(cache.has(cacheKey('t', 'c'))).toBe(true);
    expect(cache.size).toBeLessThanOrEqual(one.length * 3 + 10);
    c.release();
    // a restart re-indexes the directory
    const again = new AudioCache(dir, one.length * 3 + 10);
    expect(again.count).toBe(3);
  });

  test('stream mode (inMemory): a miss hands its bytes over before its file is written; a failed write is not its failure', async () => {
    const cache = new AudioCache(path.join(tmp, 'in-memory'));
    const one = tone(8000, 500);
    let produced = 0;
    const produce = async () => {
      produced++;
      return one;
    };
    let finishWrite!: () => void;
    const write = jest.spyOn(localFiles, 'writeAtomic').mockImplementationOnce(async (_tmp, file, data) => {
      await new Promise<void>((r) => (finishWrite = r));
      return fs.writeFileSync(file, data);
    });
    try {
      const key = cacheKey('t', 'in-memory');
      const got = await cache.get(key, produce, { inMemory: true });
      expect(got.bytes).toBe(one);
      expect(got.durationMs).toBe(500);
      expect(got.hit).toBe(false);
      // the file is still being written: a reader that needs it waits for it
      let fileReady = false;
      const fileReader = cache.get(key, produce).then((r) => {
        fileReady = true;
        return r;
      });
      await new Promise((r) => setImmediate(r));
      expect(fileReady).toBe(false);
      finishWrite();
      const r = await fileReader;
      expect(r.hit).toBe(true);
      expect(fs.readFileSync(r.file)).toEqual(one);
      expect(produced).toBe(1);
      got.release();
      r.release();

      // a write that fails: the stream-mode caller has its audio; the key stays uncached
      write.mockRejectedValueOnce(Object.assign(new Error('disk full'), { code: 'ENOSPC' }));
      const key2 = cacheKey('t', 'in-memory-2');
      const got2 = await cache.get(key2, produce, { inMemory: true });
      expect(got2.bytes).toBe(one);
      got2.release();
      // the failed write settles (its promise, then the microtasks after it)
      await (write.mock.results[1].value as Promise<void>).catch(() => undefined);
      await new Promise((r) => setImmediate(r));
      expect(cache.has(key2)).toBe(false);
      const again = await cache.get(key2, produce);
      expect(again.hit).toBe(false);
      expect(produced).toBe(3);
      again.release();
    } finally {
      write.mockRestore();
    }
  });

  test('a hit is served from memory: no open, read, stat or utimes within the check window; same length as the miss', async () => {
    const dir = path.join(tmp, 'hits');
    const service = new TtsService(createTtsEngine({ engine: 'sim' }, {}), new AudioCache(dir));
    const miss = await service.speak('Thanks, see you on Tuesday.');
    miss.release();
    const spies = [
      jest.spyOn(fs.promises, 'open'),
      jest.spyOn(fs.promises, 'readFile'),
      jest.spyOn(fs.promises, 'stat'),
      jest.spyOn(fs, 'utimes'),
      jest.spyOn(fs, 'existsSync'),
      jest.spyOn(fs, 'statSync'),
    ];
    try {
      for (let i = 0; i < 20; i++) {
        const hit = await service.speak('Thanks, see you on Tuesday.');
        expect(hit).toMatchObject({ cached: true, file: miss.file, durationMs: miss.durationMs });
        hit.release();
      }
      for (const s of spies) expect([s.getMockName(), s.mock.calls.length]).toEqual([s.getMockName(), 0]);
    } finally {
      for (const s of spies) s.mockRestore();
    }
    expect(miss.durationMs).toBe(parseWav(fs.readFileSync(miss.file)).durationMs);
  });

  test('a hit after the check window stats the file once: removed behind our back -> synthesized again; a restart reads the length once', async () => {
    const dir = path.join(tmp, 'hitcheck');
    let made = 0;
    const engine: TtsEngine = {
      name: 'sim',
      voice: 'x',
      identity: 'count|1',
      synthesize: async () => (made++, tone(8000, 250)),
    };
    const service = new TtsService(engine, new AudioCache(dir, undefined, { hitCheckMs: 0, touchMs: 0 }));
    const a = await service.speak('one');
    a.release();
    const stat = jest.spyOn(fs.promises, 'stat');
    const hit = await service.speak('one');
    hit.release();
    expect([hit.cached, stat.mock.calls.length, made]).toEqual([true, 1, 1]);
    stat.mockRestore();
    fs.rmSync(a.file);
    const again = await service.speak('one');
    again.release();
    expect([again.cached, made, fs.existsSync(a.file), again.durationMs]).toEqual([false, 2, true, 250]);
    // a new process indexes the directory; its first hit reads the header once, later hits do not
    const restarted = new TtsService(engine, new AudioCache(dir));
    const open = jest.spyOn(fs.promises, 'open');
    const first = await restarted.speak('one');
    const second = await restarted.speak('one');
    first.release();
    second.release();
    expect([first.cached, first.durationMs, second.durationMs, open.mock.calls.length, made]).toEqual([
      true,
      250,
      250,
      1,
      2,
    ]);
    open.mockRestore();
  });

  test('a failed synthesis leaves nothing behind and the next request retries', async () => {
    const dir = path.join(tmp, 'fail');
    const cache = new AudioCache(dir);
    await expect(cache.get(cacheKey('t', 'x'), async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(fs.readdirSync(dir)).toEqual([]);
    const ok = await cache.get(cacheKey('t', 'x'), async () => tone(8000, 100));
    expect(ok.hit).toBe(false);
  });

  test('audio directory falls back: configured, then AUDIO_DIR, then DATA_DIR/audio, then the OS temp dir', () => {
    const file = path.join(tmp, 'not-a-dir');
    fs.writeFileSync(file, 'x');
    expect(resolveAudioDir(path.join(tmp, 'conf'), {})).toBe(path.join(tmp, 'conf'));
    expect(resolveAudioDir(path.join(file, 'sub'), { DATA_DIR: path.join(tmp, 'data') })).toBe(
      path.join(tmp, 'data', 'audio'),
    );
    expect(resolveAudioDir(path.join(file, 'sub'), { DATA_DIR: path.join(file, 'x') })).toBe(
      path.join(os.tmpdir(), 'ai-dialer-audio'),
    );
    expect(resolveAudioDir(undefined, {})).toBe(path.join(os.tmpdir(), 'ai-dialer-audio'));
    expect(resolveAudioDir('', { AUDIO_DIR: path.join(tmp, 'env-audio'), DATA_DIR: path.join(tmp, 'data') })).toBe(
      path.join(tmp, 'env-audio'),
    );
    expect(resolveAudioDir('', { AUDIO_DIR: path.join(file, 'ro'), DATA_DIR: path.join(tmp, 'data') })).toBe(
      path.join(tmp, 'data', 'audio'),
    );
  });
});

describe("piper (fake executable with piper's command-line contract)", () => {
  const bin = path.join(tmp, 'piper');
  const model = path.join(tmp, 'en_US-test-medium.onnx');
  const log = path.join(tmp, 'piper.log');
  beforeAll(() => {
    fs.writeFileSync(model, 'not a real model');
    fs.writeFileSync(model + '.json', '{"audio":{"sample_rate":22050}}');
    // Reads the text on stdin, writes a 22050 Hz WAV to --output_file (length grows with the text), like piper.
    fs.writeFileSync(
      bin,
      `#!/usr/bin/env node
const fs = require('fs');
const args = process.argv.slice(2);
const get = (n) => { const i = args.indexOf(n); return i >= 0 ? args[i + 1] : undefined; };
let text = '';
process.stdin.on('data', (c) => (text += c));
process.stdin.on('end', () => {
  fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify({ args, text }) + '\\n');
  if (!fs.existsSync(get('--model'))) { process.stderr.write('model not found'); process.exit(1); }
  if (text.includes('CRASH')) { process.stderr.write('Segmentation fault'); process.exit(139); }
  if (text.includes('HANG')) return setTimeout(() => {}, 60000);
  const rate = 22050, n = Math.round(rate * 0.06 * text.length);
  const b = Buffer.alloc(44 + n * 2);
  b.write('RIFF', 0); b.writeUInt32LE(36 + n * 2, 4); b.write('WAVE', 8); b.write('fmt ', 12);
  b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22); b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 2, 28); b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34); b.write('data', 36); b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(6000 * Math.sin(2 * Math.PI * 300 * i / rate)), 44 + i * 2);
  fs.writeFileSync(get('--output_file'), b);
});
`,
      { mode: 0o755 },
    );
  });

  test('text on stdin as one line, model and output file as arguments, output converted to 8 kHz', async () => {
    const s = new TtsService(
      new PiperEngine({ bin, model, speaker: 2, lengthScale: 1.1 }),
      new AudioCache(path.join(tmp, 'piper-cache')),
    );
    const r = await s.speak('Hello\nthere "friend"');
    const call = JSON.parse(fs.readFileSync(log, 'utf8').trim().split('\n').pop() as string);
    expect(call.text).toBe('Hello there "friend"\n');
    expect(call.args.slice(0, 3)).toEqual(['--model', model, '--output_file']);
    expect(call.args).toEqual(expect.arrayContaining(['--speaker', '2', '--length_scale', '1.1']));
    expect(fs.existsSync(call.args[3])).toBe(false); // piper's own output file is removed
    const h = header(r.file);
    expect(h).toMatchObject({ rate: 8000, channels: 1, bits: 16 });
    expect(Math.abs(r.durationMs - 0.06 * call.text.length * 1000)).toBeLessThan(5);
    expect(r.voice).toBe('en_US-test-medium');
  });

  test('missing model, missing binary, crash and hang are typed errors', async () => {
    const cache = new AudioCache(path.join(tmp, 'piper-err'));
    await expect(
      new TtsService(new PiperEngine({ bin, model: path.join(tmp, 'nope.onnx') }), cache).speak('x'),
    ).rejects.toMatchObject({ kind: 'not_installed', engine: 'piper' });
    await expect(new TtsService(new PiperEngine({ bin, model: '' }), cache).speak('x')).rejects.toMatchObject({
      kind: 'not_configured',
    });
    await expect(
      new TtsService(new PiperEngine({ bin: path.join(tmp, 'no-piper'), model }), cache).speak('x'),
    ).rejects.toMatchObject({ kind: 'not_installed' });
    await expect(new TtsService(new PiperEngine({ bin, model }), cache).speak('CRASH')).rejects.toMatchObject({
      kind: 'bad_response',
      message: expect.stringContaining('Segmentation fault'),
    });
    await expect(new TtsService(new PiperEngine({ bin, model }), cache, 300).speak('HANG')).rejects.toMatchObject({
      kind: 'timeout',
      stage: 'tts',
    });
  });
});

describe('OpenAI-compatible /v1/audio/speech (local server)', () => {
  let server: http.Server;
  let base: string;
  const seen: Array<{ method?: string; url?: string; headers: http.IncomingHttpHeaders; body: any }> = [];
  let mode: 'ok' | 'mp3' | 'error' | 'slow' | 'stereo48k' | 'unauth' = 'ok';
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, headers: req.headers, body: JSON.parse(raw) });
        if (mode === 'slow') return; // never answers
        if (mode === 'unauth') {
          res.writeHead(401, { 'content-type': 'application/json' });
          return res.end(JSON.stringify({ error: { message: 'Incorrect API key provided' } }));
        }
        if (mode === 'error') {
          res.writeHead(500, { 'content-type': 'application/json' });
          return res.end(JSON.stringify({ error: { message: 'model overloaded' } }));
        }
        if (mode === 'mp3') {
          res.writeHead(200, { 'content-type': 'audio/mpeg' });
          return res.end(Buffer.from('ID3\u0004\u0000fake mp3'));
        }
        const wav = mode === 'stereo48k' ? tone(48000, 800, 440, 2) : tone(24000, 1200);
        res.writeHead(200, { 'content-type': 'audio/wav' });
        res.end(wav);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  afterAll(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );

  const engine = () =>
    new OpenAiTtsEngine({ baseUrl: base, model: 'tts-1', voice: 'nova', apiKey: 'sk-test-123', speed: 1.25 });

  test('sends the documented request and converts 24 kHz to 8 kHz', async () => {
    mode = 'ok';
    const s = new TtsService(engine(), new AudioCache(path.join(tmp, 'oai')));
    const r = await s.speak('Good morning');
    const req = seen[seen.length - 1];
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/v1/audio/speech');
    expect(req.headers.authorization).toBe('Bearer sk-test-123');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.body).toEqual({
      model: 'tts-1',
      input: 'Good morning',
      voice: 'nova',
      response_format: 'wav',
      speed: 1.25,
    });
    expect(header(r.file)).toMatchObject({ rate: 8000, channels: 1, bits: 16 });
    expect(r.durationMs).toBe(1200);
    const again = await s.speak('Good morning');
    expect(again.cached).toBe(true);
    expect(seen.filter((x) => x.body.input === 'Good morning')).toHaveLength(1);
  });

  test('stereo 48 kHz is mixed down and resampled', async () => {
    mode = 'stereo48k';
    const r = await new TtsService(engine(), new AudioCache(path.join(tmp, 'oai2'))).speak('stereo please');
    expect(header(r.file)).toMatchObject({ rate: 8000, channels: 1 });
    expect(r.durationMs).toBe(800);
  });

  test('wrong format, HTTP errors, a bad key, a slow server and a dead server are typed errors', async () => {
    const s = (t = 15000) => new TtsService(engine(), new AudioCache(path.join(tmp, 'oai-err')), t);
    mode = 'mp3';
    await expect(s().speak('a')).rejects.toMatchObject({
      stage: 'tts',
      kind: 'bad_response',
      engine: 'openai',
      message: expect.stringContaining('audio/mpeg'),
    });
    mode = 'error';
    await expect(s().speak('b')).rejects.toMatchObject({
      kind: 'bad_response',
      message: expect.stringContaining('model overloaded'),
    });
    mode = 'unauth';
    await expect(s().speak('c')).rejects.toMatchObject({ kind: 'unauthorized' });
    mode = 'slow';
    await expect(s(300).speak('d')).rejects.toMatchObject({ kind: 'timeout' });
    const dead = new TtsService(
      new OpenAiTtsEngine({ baseUrl: 'http://127.0.0.1:1/v1', model: 'm', voice: 'v' }),
      new AudioCache(path.join(tmp, 'oai-dead')),
    );
    await expect(dead.speak('e')).rejects.toMatchObject({ kind: 'network' });
    const none = new TtsService(
      new OpenAiTtsEngine({ baseUrl: '', model: 'm', voice: 'v' }),
      new AudioCache(path.join(tmp, 'oai-none')),
    );
    await expect(none.speak('f')).rejects.toMatchObject({ kind: 'not_configured' });
  });
});

describe('sim engine (load tests and the simulator)', () => {
  test('instant speech-like 8 kHz audio of plausible length, carrying the text', async () => {
    const { speechDurationMs } = await import('../../src/sim/audio-utterance');
    const s = new TtsService(createTtsEngine({ engine: 'sim' }, {}), new AudioCache(path.join(tmp, 'sim')));
    const text = 'Hello Maria, this is City Clinic.';
    const r = await s.speak(text);
    const wav = parseWav(fs.readFileSync(r.file));
    expect(wav).toMatchObject({ sampleRate: 8000, channels: 1, simText: text });
    expect(r.durationMs).toBe(speechDurationMs(text));
    expect(r).toMatchObject({ engine: 'sim', voice: 'synthetic', cached: false });
    expect(Math.max(...Array.from(wav.samples).map(Math.abs))).toBeGreaterThan(1000);
  });
});

describe('engine selection', () => {
  test('node setting, then TTS_ENGINE, then espeak-ng', () => {
    expect(resolveTtsEngineName('', {})).toBe('espeak-ng');
    expect(resolveTtsEngineName('', { TTS_ENGINE: 'piper' })).toBe('piper');
    expect(resolveTtsEngineName('openai', { TTS_ENGINE: 'piper' })).toBe('openai');
    expect(() => resolveTtsEngineName('festival', {})).toThrow(expect.objectContaining({ kind: 'not_configured' }));
    const e = createTtsEngine(
      {},
      { TTS_ENGINE: 'openai', TTS_BASE_URL: 'http://x/v1', TTS_VOICE: 'echo', TTS_API_KEY: 'k' },
    );
    expect(e.name).toBe('openai');
    expect(e.voice).toBe('echo');
  });
});
