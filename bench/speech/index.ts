/**
 * Speech and LLM latency on this machine, for docs/contributing/benchmarks.md: real espeak-ng (synthesis, conversion to
 * 8 kHz, cache), and the protocol round trips of each network engine against local servers that
 * answer instantly (so the figure is OUR overhead: encoding, the socket exchange, parsing; a real
 * engine adds its own inference time on top). Loopback only; bounded loops.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import http from 'http';
import type { AddressInfo } from 'net';
import { monitorEventLoopDelay } from 'perf_hooks';
import { WebSocketServer } from 'ws';
import { encodeWav, toAsteriskWav } from '../../src/audio/wav';
import { AudioCache } from '../../src/speech/tts-cache';
import { TtsService } from '../../src/speech/tts';
import { EspeakEngine } from '../../src/speech/tts-espeak';
import { OpenAiTtsEngine } from '../../src/speech/tts-openai';
import { runProcess } from '../../src/speech/proc';
import { transcribe } from '../../src/speech/stt';
import { VoskEngine } from '../../src/speech/stt-vosk';
import { OpenAiSttEngine } from '../../src/speech/stt-openai';
import { OpenAiChatEngine } from '../../src/llm/openai';
import { ScriptedEngine } from '../../src/llm/scripted';
import { runTurn } from '../../src/llm/turn';
import { ConversationStore } from '../../src/llm/history';
import { run as runWyoming } from './wyoming';

import { stats, time, type Row } from './stats';

function speech(ms: number, rate = 8000): Buffer {
  const n = Math.round((rate * ms) / 1000);
  const s = new Int16Array(n);
  for (let i = 0; i < n; i++) s[i] = Math.round(5000 * Math.sin((2 * Math.PI * 180 * i) / rate));
  return encodeWav({ sampleRate: rate, channels: 1, samples: s });
}

const SHORT = 'Hello, this is a reminder about your appointment.';
const LONG =
  'Hello, this is the City Clinic calling to remind you about your appointment with doctor Smith next Tuesday at ten in the morning. Can you still make it, or would you like us to find another time?';

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-bench-speech-'));
  const closers: Array<() => Promise<void>> = [];
  try {
    // --- espeak-ng (real) ---
    const espeak = new EspeakEngine({ voice: 'en-us', speed: 160 });
    const svc = new TtsService(espeak, new AudioCache(path.join(dir, 'espeak')));
    await svc.speak('warm up');
    rows.push(
      stats(
        'espeak-ng process only, short sentence (22 kHz WAV out)',
        await time(15, (i) =>
          runProcess('espeak-ng', ['--stdout', '-v', 'en-us'], {
            stage: 'tts',
            engine: 'espeak-ng',
            timeoutMs: 10000,
            stdin: `${SHORT} ${i}`,
          }),
        ),
        '8 words',
      ),
    );
    const shortRuns = await time(15, async (i) => (await svc.speak(`${SHORT} Number ${i}.`)).release());
    rows.push(
      stats('tts espeak-ng, short sentence, cache miss', shortRuns, 'synthesize + resample to 8 kHz + cache write'),
    );
    rows.push(
      stats(
        'tts espeak-ng, long sentence, cache miss',
        await time(8, async (i) => (await svc.speak(`${LONG} ${i}`)).release()),
        '37 words, about 12 s of audio',
      ),
    );
    // What a cache miss costs the other calls: the event loop is blocked while the audio is converted.
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    for (let i = 0; i < 8; i++) (await svc.speak(`${LONG} Blocking ${i}.`)).release();
    h.disable();
    rows.push({
      what: 'event loop delay during 37-word cache misses',
      n: 8,
      'p50 ms': Number((h.percentile(50) / 1e6).toFixed(1)),
      'p95 ms': Number((h.percentile(95) / 1e6).toFixed(1)),
      'mean ms': Number((h.mean / 1e6).toFixed(1)),
      note: `max ${(h.max / 1e6).toFixed(1)} ms: the in-process 8 kHz conversion`,
    });
    rows.push(stats('tts cache hit', await time(200, async () => (await svc.speak(`${SHORT} Number 3.`)).release())));
    const raw22k = speech(3000, 22050);
    rows.push(
      stats(
        'toAsteriskWav 3 s of 22.05 kHz to 8 kHz',
        await time(20, async () => toAsteriskWav(raw22k)),
        'windowed-sinc resampler',
      ),
    );

    // --- OpenAI-compatible TTS (loopback, instant server) ---
    const wav24 = speech(2000, 24000);
    const ttsServer = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'audio/wav' });
        res.end(wav24);
      });
    });
    await new Promise<void>((r) => ttsServer.listen(0, '127.0.0.1', r));
    closers.push(
      () =>
        new Promise((r) => {
          ttsServer.closeAllConnections();
          ttsServer.close(() => r());
        }),
    );
    const ttsBase = `http://127.0.0.1:${(ttsServer.address() as AddressInfo).port}/v1`;
    const oaiTts = new TtsService(
      new OpenAiTtsEngine({ baseUrl: ttsBase, model: 'tts-1', voice: 'alloy' }),
      new AudioCache(path.join(dir, 'oai')),
    );
    rows.push(
      stats(
        'tts openai protocol round trip, 2 s of 24 kHz audio',
        await time(30, async (i) => (await oaiTts.speak(`line ${i}`)).release()),
        'instant local server: HTTP + resample + cache',
      ),
    );

    // --- Vosk WebSocket (loopback, instant server) ---
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    closers.push(
      () =>
        new Promise((r) => {
          for (const c of wss.clients) c.terminate();
          wss.close(() => r());
        }),
    );
    wss.on('connection', (ws) => {
      ws.on('message', (data, isBinary) => {
        if (isBinary) return ws.send('{"partial" : "yes"}');
        const t = data.toString();
        if (t.includes('config')) return;
        if (t === '{"eof" : 1}')
          ws.send(JSON.stringify({ result: [{ conf: 1, word: 'yes', start: 0, end: 0.4 }], text: 'yes' }), () =>
            ws.close(),
          );
      });
    });
    const vosk = new VoskEngine({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}` });
    const rec3s = speech(3000);
    rows.push(
      stats(
        'stt vosk protocol round trip, 3 s recording',
        await time(50, () => transcribe(vosk, rec3s)),
        'connect, config, 6 frames, eof, final',
      ),
    );

    // --- OpenAI-compatible STT (loopback) ---
    const sttServer = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"text":"yes this is me"}');
      });
    });
    await new Promise<void>((r) => sttServer.listen(0, '127.0.0.1', r));
    closers.push(
      () =>
        new Promise((r) => {
          sttServer.closeAllConnections();
          sttServer.close(() => r());
        }),
    );
    const oaiStt = new OpenAiSttEngine({
      baseUrl: `http://127.0.0.1:${(sttServer.address() as AddressInfo).port}/v1`,
      model: 'whisper-1',
      responseFormat: 'json',
    });
    rows.push(
      stats(
        'stt openai protocol round trip, 3 s recording',
        await time(50, () => transcribe(oaiStt, rec3s)),
        'multipart upload + JSON',
      ),
    );
    const silence = encodeWav({ sampleRate: 8000, channels: 1, samples: new Int16Array(24000) });
    rows.push(
      stats('stt silence check (3 s of silence, engine skipped)', await time(100, () => transcribe(vosk, silence))),
    );

    // --- OpenAI-compatible chat (loopback) ---
    const chatBody = JSON.stringify({
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: 'Goodbye!',
            tool_calls: [
              { id: 'c1', type: 'function', function: { name: 'end_call', arguments: '{"reason":"done"}' } },
            ],
          },
          finish_reason: 'tool_calls',
        },
      ],
    });
    const chatServer = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(chatBody);
      });
    });
    await new Promise<void>((r) => chatServer.listen(0, '127.0.0.1', r));
    closers.push(
      () =>
        new Promise((r) => {
          chatServer.closeAllConnections();
          chatServer.close(() => r());
        }),
    );
    const chat = new OpenAiChatEngine({
      baseUrl: `http://127.0.0.1:${(chatServer.address() as AddressInfo).port}/v1`,
      model: 'm',
      systemPrompt: 'You call {{contact.name}}.',
      mode: 'tools',
      transferTargets: [],
    });
    const store = new ConversationStore();
    const ctx = { contact: { name: 'Ann' }, campaign: { name: 'C' } };
    rows.push(
      stats(
        'llm openai protocol round trip with a tool call',
        await time(100, (i) =>
          runTurn(chat, { callId: `c${i}`, userText: 'that is all, thanks', greeting: false, context: ctx }, {}, store),
        ),
        'request build + HTTP + tool parsing',
      ),
    );

    // --- scripted engine ---
    const scripted = new ScriptedEngine();
    rows.push(
      stats(
        'llm scripted turn (intent match + template)',
        await time(2000, (i) =>
          runTurn(
            scripted,
            {
              callId: `s${i % 50}`,
              userText: i % 2 ? 'yes that works' : 'what is this about',
              greeting: false,
              context: ctx,
            },
            {},
            store,
          ),
        ),
      ),
    );
  } finally {
    for (const c of closers) await c();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // --- Wyoming TCP (loopback, instant server): bench/speech/wyoming.ts ---
  rows.push(...(await runWyoming()));
  return rows;
}

if (require.main === module) {
  run().then(
    (rows) => console.table(rows),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
