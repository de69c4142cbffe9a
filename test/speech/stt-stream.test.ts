/**
 * Speech to text in stream mode: Vosk fed live (partials while the caller speaks) against a local server
 * that speaks asr_server.py's protocol and records every byte; the endpointed in-memory utterance posted
 * at once to an OpenAI-compatible endpoint (multipart parsed by busboy) and streamed to a Wyoming server.
 */
import http from 'http';
import type { AddressInfo } from 'net';
import busboy from 'busboy';
import { WebSocketServer, type WebSocket } from 'ws';
import { parseWav } from '../../src/audio/wav';
import { transcribeSamples } from '../../src/speech/stt';
import { VoskEngine, VOSK_EOF } from '../../src/speech/stt-vosk';
import { OpenAiSttEngine } from '../../src/speech/stt-openai';
import { WyomingSttEngine } from '../../src/speech/wyoming';
import { event, TestWyomingServer } from '../helpers/wyoming-server';
import { waitFor } from '../helpers/wait';

/** A speech-like 8 kHz signal with every sample distinct enough to check byte-exact transport. */
function utterance(ms: number): Int16Array {
  const n = 8 * ms;
  const s = new Int16Array(n);
  for (let i = 0; i < n; i++)
    s[i] =
      Math.round(
        6000 * Math.sin((2 * Math.PI * 170 * i) / 8000) * (0.6 + 0.4 * Math.sin((2 * Math.PI * 3 * i) / 8000)),
      ) +
      (i % 5);
  return s;
}
const bytesOf = (s: Int16Array) => Buffer.from(s.buffer, s.byteOffset, s.byteLength);

describe('Vosk live stream', () => {
  type Mode = 'ok' | 'close-mid' | 'silent-final' | 'garbage-mid';
  let mode: Mode = 'ok';
  let wss: WebSocketServer;
  let url: string;
  const sessions: Array<{ config?: any; messages: Buffer[]; texts: string[]; closed: boolean }> = [];
  beforeAll(async () => {
    wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
    wss.on('connection', (ws: WebSocket) => {
      const s = { config: undefined as any, messages: [] as Buffer[], texts: [] as string[], closed: false };
      sessions.push(s);
      ws.on('close', () => (s.closed = true));
      ws.on('message', (data, isBinary) => {
        if (!isBinary) {
          const text = data.toString();
          s.texts.push(text);
          if (text.includes('config')) {
            s.config = JSON.parse(text).config;
            return;
          }
          if (text !== VOSK_EOF) return ws.close(1011, 'bad message');
          if (mode === 'silent-final') return;
          ws.send(JSON.stringify({ result: [{ conf: 0.5, word: 'tuesday' }], text: 'tuesday' }), () => ws.close());
          return;
        }
        s.messages.push(Buffer.from(data as Buffer));
        const bytes = s.messages.reduce((n, m) => n + m.length, 0);
        if (mode === 'close-mid' && s.messages.length === 3) return ws.close(1011, 'model crashed');
        if (mode === 'garbage-mid' && s.messages.length === 2) return ws.send('Traceback (most recent call last)');
        // a finalised segment after 1 s of audio, partials otherwise (one answer per message, as the server does)
        if (bytes >= 16000 && bytes - (data as Buffer).length < 16000)
          ws.send(
            JSON.stringify({
              result: [
                { conf: 1, word: 'yes' },
                { conf: 0.9, word: 'please' },
              ],
              text: 'yes please',
            }),
          );
        else ws.send(JSON.stringify({ partial: bytes >= 16000 ? 'tues' : 'yes' }));
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
  beforeEach(() => {
    sessions.length = 0;
    mode = 'ok';
  });

  test('frames written live reach the server byte for byte in 100 ms messages; partials arrive before the end', async () => {
    const audio = utterance(1730);
    const partials: string[] = [];
    const results: string[] = [];
    const st = new VoskEngine({ url }).openStream({
      sampleRate: 8000,
      timeoutMs: 5000,
      onPartial: (p) => partials.push(p),
      onResult: (r) => results.push(r),
    });
    // the first second, in 20 ms frames as AudioSocket delivers them
    for (let i = 0; i < 8000; i += 160) st.write(audio.subarray(i, i + 160));
    await waitFor(() => partials.length >= 3 && results.length === 1, 5000, 'partials and a result while speaking');
    expect(partials[0]).toBe('yes');
    expect(results).toEqual(['yes please']);
    for (let i = 8000; i < audio.length; i += 160) st.write(audio.subarray(i, Math.min(audio.length, i + 160)));
    const r = await st.end();
    expect(r.text).toBe('yes please tuesday');
    expect(r.confidence).toBeCloseTo((1 + 0.9 + 0.5) / 3, 5);
    const s = sessions[0];
    expect(s.config).toEqual({ sample_rate: 8000 });
    expect(Buffer.concat(s.messages).equals(bytesOf(audio))).toBe(true);
    expect(s.messages.slice(0, -1).every((m) => m.length === 1600)).toBe(true);
    expect(s.messages[s.messages.length - 1].length).toBe((audio.length * 2) % 1600);
    expect(s.texts[s.texts.length - 1]).toBe(VOSK_EOF);
    await waitFor(() => s.closed, 2000, 'socket closed');
  });

  test('audio written before the socket opens is kept and sent in order', async () => {
    const audio = utterance(500);
    const st = new VoskEngine({ url }).openStream({ sampleRate: 8000, timeoutMs: 5000 });
    st.write(audio);
    expect((await st.end()).text).toBe('tuesday');
    expect(Buffer.concat(sessions[0].messages).equals(bytesOf(audio))).toBe(true);
  });

  test('the server closing mid-stream, or answering garbage, is what end() rejects with', async () => {
    for (const [m, kind] of [
      ['close-mid', /closed the connection/],
      ['garbage-mid', /not JSON/],
    ] as const) {
      mode = m;
      const st = new VoskEngine({ url }).openStream({ sampleRate: 8000, timeoutMs: 5000 });
      const audio = utterance(1000);
      for (let i = 0; i < audio.length; i += 160) st.write(audio.subarray(i, i + 160));
      await waitFor(() => sessions.length && sessions[sessions.length - 1].closed, 3000, 'server side closed');
      await expect(st.end()).rejects.toMatchObject({ code: 'stt_bad_response', message: expect.stringMatching(kind) });
    }
  });

  test('no final result within timeoutMs after end() is a timeout; abort() closes at once', async () => {
    mode = 'silent-final';
    const st = new VoskEngine({ url }).openStream({ sampleRate: 8000, timeoutMs: 300 });
    st.write(utterance(200));
    await expect(st.end()).rejects.toMatchObject({ code: 'stt_timeout' });
    mode = 'ok';
    const ab = new VoskEngine({ url }).openStream({ sampleRate: 8000, timeoutMs: 5000 });
    ab.write(utterance(200));
    await waitFor(() => sessions.length === 2 && sessions[1].messages.length > 0, 3000, 'audio arrived');
    ab.abort();
    await expect(ab.end()).rejects.toMatchObject({ code: 'stt_network', message: expect.stringMatching(/aborted/) });
    await waitFor(() => sessions[1].closed, 2000, 'socket closed by the abort');
  });

  test('an unreachable server fails the stream with a network error', async () => {
    const st = new VoskEngine({ url: 'ws://127.0.0.1:1' }).openStream({ sampleRate: 8000, timeoutMs: 2000 });
    st.write(utterance(100));
    await expect(st.end()).rejects.toMatchObject({ code: 'stt_network' });
  });
});

describe('in-memory utterances to whole-file engines', () => {
  test('OpenAI-compatible: the utterance is posted at once as a WAV built in memory', async () => {
    const got: Array<{ fields: Record<string, string>; file?: Buffer; contentType?: string }> = [];
    const server = http.createServer((req, res) => {
      const fields: Record<string, string> = {};
      const files: Buffer[] = [];
      let contentType: string | undefined;
      const bb = busboy({ headers: req.headers });
      bb.on('field', (n, v) => (fields[n] = v));
      bb.on('file', (_n, stream, info) => {
        contentType = info.mimeType;
        stream.on('data', (c: Buffer) => files.push(c));
      });
      bb.on('close', () => {
        got.push({ fields, file: Buffer.concat(files), contentType });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ text: ' Tuesday at ten. ' }));
      });
      req.pipe(bb);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
      const audio = utterance(1340);
      const engine = new OpenAiSttEngine({ baseUrl: base, model: 'whisper-1', responseFormat: 'json' });
      const t = await transcribeSamples(engine, audio, { language: 'en' });
      expect(t).toMatchObject({ text: 'Tuesday at ten.', engine: 'openai', audioMs: 1340 });
      expect(got).toHaveLength(1);
      expect(got[0].fields).toMatchObject({ model: 'whisper-1', language: 'en', response_format: 'json' });
      expect(got[0].contentType).toBe('audio/wav');
      const wav = parseWav(got[0].file as Buffer);
      expect([wav.sampleRate, wav.channels]).toEqual([8000, 1]);
      expect(bytesOf(wav.samples).equals(bytesOf(audio))).toBe(true);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  test('Wyoming: the utterance is streamed as audio chunks, byte for byte', async () => {
    const srv = await new TestWyomingServer((ev, sock, conn) => {
      if (ev.type !== 'audio-stop') return;
      const pcm = Buffer.concat(conn.events.filter((e) => e.type === 'audio-chunk').map((e) => e.payload));
      conn.state.pcm = pcm;
      sock.write(event('transcript', { text: `${pcm.length} bytes` }));
    }).start();
    try {
      const audio = utterance(900);
      const t = await transcribeSamples(new WyomingSttEngine({ host: '127.0.0.1', port: srv.port }), audio);
      expect(t.text).toBe(`${audio.length * 2} bytes`);
      expect((srv.connections[0].state.pcm as Buffer).equals(bytesOf(audio))).toBe(true);
      const start = srv.connections[0].events.find((e) => e.type === 'audio-start');
      expect(start?.data).toMatchObject({ rate: 8000, width: 2, channels: 1 });
    } finally {
      await srv.stop();
    }
  });

  test('digital silence is an empty transcript without asking the engine', async () => {
    const engine = new OpenAiSttEngine({ baseUrl: 'http://127.0.0.1:1/v1', model: 'w', responseFormat: 'json' });
    expect((await transcribeSamples(engine, new Int16Array(8000))).text).toBe('');
  });
});
