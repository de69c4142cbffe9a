import fs from 'fs';
import os from 'os';
import path from 'path';
import http from 'http';
import type { AddressInfo } from 'net';
import { WebSocketServer, type WebSocket } from 'ws';
import { encodeWav } from '../../src/audio/wav';
import { transcribe, resolveSttEngineName, createSttEngine } from '../../src/speech/stt';
import { VoskEngine, VOSK_EOF } from '../../src/speech/stt-vosk';
import { OpenAiSttEngine } from '../../src/speech/stt-openai';
import { SimSttEngine } from '../../src/speech/stt-sim';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-stt-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A speech-like signal (so the silence check does not skip the engine). */
function speechWav(ms: number, rate = 8000, simText?: string): Buffer {
  const n = Math.round((rate * ms) / 1000);
  const s = new Int16Array(n);
  for (let i = 0; i < n; i++)
    s[i] = Math.round(
      5000 * Math.sin((2 * Math.PI * 180 * i) / rate) * (0.6 + 0.4 * Math.sin((2 * Math.PI * 4 * i) / rate)),
    );
  return encodeWav({ sampleRate: rate, channels: 1, samples: s }, simText);
}
const silenceWav = (ms: number) =>
  encodeWav({ sampleRate: 8000, channels: 1, samples: new Int16Array(8 * ms).map((_, i) => (i % 7) - 3) });

describe("Vosk server WebSocket protocol (local server speaking asr_server.py's protocol)", () => {
  type Mode = 'ok' | 'alternatives' | 'malformed' | 'slow' | 'close' | 'empty';
  let mode: Mode = 'ok';
  let wss: WebSocketServer;
  let url: string;
  const sessions: Array<{ config?: any; frames: number; bytes: number; texts: string[] }> = [];
  beforeAll(async () => {
    wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
    wss.on('connection', (ws: WebSocket) => {
      const s = { config: undefined as any, frames: 0, bytes: 0, texts: [] as string[] };
      sessions.push(s);
      let midResultSent = false;
      ws.on('message', (data, isBinary) => {
        if (!isBinary) {
          const text = data.toString();
          s.texts.push(text);
          // asr_server.py: a text message containing 'config' is configuration...
          if (text.includes('config')) {
            s.config = JSON.parse(text).config;
            if (mode === 'close') ws.close();
            return;
          }
          // ...and only this exact string ends the stream.
          if (text !== '{"eof" : 1}') return ws.close(1011, 'bad message');
          if (mode === 'slow') return;
          const final =
            mode === 'alternatives'
              ? {
                  alternatives: [
                    { text: 'yes this is me', confidence: 310.5 },
                    { text: 'yes this is mean', confidence: 290.1 },
                  ],
                }
              : mode === 'empty'
                ? { result: [], text: '' }
                : { result: [{ conf: 0.8, end: 2.1, start: 1.8, word: 'me' }], text: 'me' };
          ws.send(JSON.stringify(final), () => ws.close());
          return;
        }
        s.frames++;
        s.bytes += (data as Buffer).length;
        if (mode === 'malformed') return ws.send('Traceback (most recent call last): oops');
        if (!midResultSent && s.bytes >= 16000 && mode === 'ok') {
          midResultSent = true;
          ws.send(
            JSON.stringify({
              result: [
                { conf: 1, end: 0.5, start: 0.1, word: 'yes' },
                { conf: 0.9, end: 0.9, start: 0.6, word: 'this' },
                { conf: 0.7, end: 1.2, start: 1.0, word: 'is' },
              ],
              text: 'yes this is',
            }),
          );
        } else ws.send(JSON.stringify({ partial: s.bytes > 8000 ? 'yes this' : '' }));
      });
    });
  });
  afterAll(
    () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  );

  test('config with the sample rate, PCM frames, the exact end-of-stream string; results joined, confidence = mean word conf', async () => {
    mode = 'ok';
    const file = path.join(tmp, 'turn1.wav');
    fs.writeFileSync(file, speechWav(2500));
    const partials: string[] = [];
    const t = await transcribe(new VoskEngine({ url }), file, { onPartial: (p) => partials.push(p) });
    const s = sessions[sessions.length - 1];
    expect(s.config).toEqual({ sample_rate: 8000 });
    expect(s.bytes).toBe(2500 * 8 * 2); // every sample, no header
    expect(s.frames).toBe(Math.ceil(40000 / 8000));
    expect(s.texts[s.texts.length - 1]).toBe(VOSK_EOF);
    expect(t.text).toBe('yes this is me');
    expect(t.confidence).toBeCloseTo((1 + 0.9 + 0.7 + 0.8) / 4, 5);
    expect(t.engine).toBe('vosk');
    expect(t.audioMs).toBe(2500);
    expect(t.elapsedMs).toBeGreaterThan(0);
    expect(t.simulated).toBeUndefined();
    expect(partials).toContain('yes this');
  });

  test('a 16 kHz recording is announced as 16 kHz', async () => {
    mode = 'ok';
    await transcribe(new VoskEngine({ url }), speechWav(500, 16000));
    expect(sessions[sessions.length - 1].config).toEqual({ sample_rate: 16000 });
  });

  test('max_alternatives answers give the best alternative', async () => {
    mode = 'alternatives';
    const t = await transcribe(new VoskEngine({ url }), speechWav(600));
    expect(t.text).toBe('yes this is me');
    expect(t.confidence).toBeUndefined(); // Vosk alternative scores are not probabilities
  });

  test('an empty final result is an empty transcript, not an error', async () => {
    mode = 'empty';
    const t = await transcribe(new VoskEngine({ url }), speechWav(600));
    expect(t.text).toBe('');
  });

  test('silence and empty recordings never reach the server and give an empty transcript', async () => {
    mode = 'ok';
    const before = sessions.length;
    const a = await transcribe(new VoskEngine({ url }), silenceWav(1500));
    expect(a).toMatchObject({ text: '', engine: 'vosk', audioMs: 1500 });
    const headerOnly = encodeWav({ sampleRate: 8000, channels: 1, samples: new Int16Array(0) });
    const b = await transcribe(new VoskEngine({ url }), headerOnly);
    expect(b).toMatchObject({ text: '', audioMs: 0 });
    const c = await transcribe(new VoskEngine({ url }), Buffer.alloc(0));
    expect(c.text).toBe('');
    expect(sessions.length).toBe(before);
  });

  test('malformed answers, a server that closes early, a slow server and no server are typed errors', async () => {
    mode = 'malformed';
    await expect(transcribe(new VoskEngine({ url }), speechWav(600))).rejects.toMatchObject({
      stage: 'stt',
      kind: 'bad_response',
      engine: 'vosk',
    });
    mode = 'close';
    await expect(transcribe(new VoskEngine({ url }), speechWav(600))).rejects.toMatchObject({
      kind: 'bad_response',
      message: expect.stringContaining('before the final result'),
    });
    mode = 'slow';
    await expect(transcribe(new VoskEngine({ url }), speechWav(600), { timeoutMs: 300 })).rejects.toMatchObject({
      kind: 'timeout',
    });
    await expect(transcribe(new VoskEngine({ url: 'ws://127.0.0.1:1' }), speechWav(600))).rejects.toMatchObject({
      kind: 'network',
    });
    expect(() => new VoskEngine({ url: 'http://x' })).toThrow(expect.objectContaining({ kind: 'not_configured' }));
  });

  test('a missing or non-WAV recording is invalid input', async () => {
    await expect(transcribe(new VoskEngine({ url }), path.join(tmp, 'nope.wav'))).rejects.toMatchObject({
      kind: 'invalid_input',
      message: expect.stringContaining('ENOENT'),
    });
    await expect(
      transcribe(new VoskEngine({ url }), Buffer.from('ID3 not a wav at all, but some mp3 bytes')),
    ).rejects.toMatchObject({ kind: 'invalid_input' });
  });
});

/** Split a multipart/form-data body into its parts (enough to check what a client sent). */
function parseMultipart(body: Buffer, contentType: string) {
  const boundary = /boundary=(.+)$/.exec(contentType)![1];
  const parts: Record<string, { headers: string; value: Buffer }> = {};
  const sep = Buffer.from(`--${boundary}`);
  let pos = body.indexOf(sep);
  while (pos >= 0) {
    const next = body.indexOf(sep, pos + sep.length);
    if (next < 0) break;
    const part = body.subarray(pos + sep.length + 2, next - 2);
    const split = part.indexOf('\r\n\r\n');
    const headers = part.subarray(0, split).toString();
    const name = /name="([^"]+)"/.exec(headers)![1];
    parts[name] = { headers, value: part.subarray(split + 4) };
    pos = next;
  }
  expect(body.subarray(body.length - sep.length - 4).toString()).toBe(`--${boundary}--\r\n`);
  return parts;
}

describe('OpenAI-compatible /v1/audio/transcriptions (local server)', () => {
  type Mode = 'json' | 'verbose' | 'malformed' | 'notext' | 'slow' | 'error';
  let mode: Mode = 'json';
  let server: http.Server;
  let base: string;
  const seen: Array<{ url?: string; headers: http.IncomingHttpHeaders; parts: ReturnType<typeof parseMultipart> }> = [];
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        seen.push({
          url: req.url,
          headers: req.headers,
          parts: parseMultipart(Buffer.concat(chunks), String(req.headers['content-type'])),
        });
        if (mode === 'slow') return;
        if (mode === 'error') {
          res.writeHead(422, { 'content-type': 'application/json' });
          return res.end(JSON.stringify({ detail: 'Unsupported model' }));
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        if (mode === 'malformed') return res.end('{"text": "yes th');
        if (mode === 'notext') return res.end(JSON.stringify({ result: 'yes' }));
        if (mode === 'verbose')
          return res.end(
            JSON.stringify({
              task: 'transcribe',
              language: 'english',
              duration: 2.5,
              text: ' Tuesday at ten works for me.',
              segments: [
                { id: 0, start: 0, end: 1.2, text: ' Tuesday at ten', avg_logprob: -0.2, no_speech_prob: 0.01 },
                { id: 1, start: 1.2, end: 2.5, text: ' works for me.', avg_logprob: -0.4, no_speech_prob: 0.02 },
              ],
            }),
          );
        res.end(JSON.stringify({ text: 'Yes, this is me.' }));
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

  test('multipart fields file, model, language, response_format; bearer key; json answer', async () => {
    mode = 'json';
    const wav = speechWav(1200);
    const t = await transcribe(
      new OpenAiSttEngine({
        baseUrl: base,
        model: 'Systran/faster-whisper-small',
        apiKey: 'sk-stt',
        language: 'en',
        responseFormat: 'json',
      }),
      wav,
    );
    const req = seen[seen.length - 1];
    expect(req.url).toBe('/v1/audio/transcriptions');
    expect(req.headers.authorization).toBe('Bearer sk-stt');
    expect(req.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(req.parts.file.headers).toContain('filename="audio.wav"');
    expect(req.parts.file.headers).toContain('Content-Type: audio/wav');
    expect(Buffer.compare(req.parts.file.value, wav)).toBe(0);
    expect(req.parts.model.value.toString()).toBe('Systran/faster-whisper-small');
    expect(req.parts.language.value.toString()).toBe('en');
    expect(req.parts.response_format.value.toString()).toBe('json');
    expect(t).toMatchObject({ text: 'Yes, this is me.', engine: 'openai', audioMs: 1200 });
    expect(t.confidence).toBeUndefined();
  });

  test("verbose_json gives a confidence from the segments' log-probabilities", async () => {
    mode = 'verbose';
    const t = await transcribe(
      new OpenAiSttEngine({ baseUrl: base, model: 'whisper-1', responseFormat: 'verbose_json' }),
      speechWav(2500),
    );
    const req = seen[seen.length - 1];
    expect(req.headers.authorization).toBeUndefined();
    expect(req.parts.language).toBeUndefined();
    expect(req.parts.response_format.value.toString()).toBe('verbose_json');
    expect(t.text).toBe('Tuesday at ten works for me.');
    expect(t.confidence).toBeCloseTo(Math.exp(-0.3), 6);
  });

  test('malformed, text-less, error and slow answers are typed errors', async () => {
    const e = (timeoutMs = 15000) =>
      transcribe(new OpenAiSttEngine({ baseUrl: base, model: 'm', responseFormat: 'json' }), speechWav(500), {
        timeoutMs,
      });
    mode = 'malformed';
    await expect(e()).rejects.toMatchObject({ stage: 'stt', kind: 'bad_response', engine: 'openai' });
    mode = 'notext';
    await expect(e()).rejects.toMatchObject({ kind: 'bad_response', message: expect.stringContaining('"text"') });
    mode = 'error';
    await expect(e()).rejects.toMatchObject({ kind: 'bad_response', message: expect.stringContaining('HTTP 422') });
    mode = 'slow';
    await expect(e(300)).rejects.toMatchObject({ kind: 'timeout' });
    await expect(
      transcribe(new OpenAiSttEngine({ baseUrl: '', model: 'm', responseFormat: 'json' }), speechWav(500)),
    ).rejects.toMatchObject({ kind: 'not_configured' });
  });
});

describe('sim engine and engine selection', () => {
  test("reads the simulator's simu chunk and says it is simulated", async () => {
    const file = path.join(tmp, 'sim.wav');
    fs.writeFileSync(file, speechWav(900, 8000, 'Please do not call me again.'));
    const t = await transcribe(new SimSttEngine(), file);
    expect(t).toMatchObject({ text: 'Please do not call me again.', engine: 'sim', simulated: true, audioMs: 900 });
    const silent = await transcribe(new SimSttEngine(), silenceWav(500));
    expect(silent).toMatchObject({ text: '', simulated: true });
  });

  test('sim only in the embedded demo; never when a real engine or a real Asterisk is configured', () => {
    expect(resolveSttEngineName('', {})).toBe('sim');
    expect(resolveSttEngineName('', { STT_ENGINE: 'vosk' })).toBe('vosk');
    expect(resolveSttEngineName('openai', { STT_ENGINE: 'vosk' })).toBe('openai');
    expect(() => resolveSttEngineName('', { ARI_URL: 'http://asterisk:8088' })).toThrow(
      expect.objectContaining({ stage: 'stt', kind: 'not_configured' }),
    );
    expect(() => resolveSttEngineName('google', {})).toThrow(expect.objectContaining({ kind: 'not_configured' }));
    expect(createSttEngine({}, { STT_ENGINE: 'vosk', VOSK_URL: 'ws://vosk:2700' }).name).toBe('vosk');
    expect(createSttEngine({}, {}).name).toBe('sim');
  });
});
