/**
 * Wyoming client round trips on loopback against a server that answers instantly (so the figures are
 * OUR overhead: connect, event encoding/parsing, chunk collection, resampling to 8 kHz, the cache; a
 * real Piper or faster-whisper adds its inference time). Floor: a bare TCP connect + one-line echo.
 *
 *   npm run build && node -e "require('./dist/bench/speech/wyoming').run().then(r => console.table(r))"
 * (also part of `npm run bench speech`)
 */
import fs from 'fs';
import net from 'net';
import os from 'os';
import path from 'path';
import { encodeWav } from '../../src/audio/wav';
import { AudioCache } from '../../src/speech/tts-cache';
import { TtsService } from '../../src/speech/tts';
import { transcribe } from '../../src/speech/stt';
import { EventParser, WyomingSttEngine, WyomingTtsEngine, encodeEvent, synthesizeWav } from '../../src/speech/wyoming';

import { stats, time, type Row } from './stats';

function tone(rate: number, ms: number): Buffer {
  const n = Math.round((rate * ms) / 1000);
  const b = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(6000 * Math.sin((2 * Math.PI * 200 * i) / rate)), i * 2);
  return b;
}

/** An instant Wyoming server: 2.5 s of 22050 Hz audio per synthesize (1024-sample chunks, as Piper), a fixed transcript. */
async function instantServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const fmt = { rate: 22050, width: 2, channels: 1 };
  const pcm = tone(22050, 2500);
  const parts: Buffer[] = [encodeEvent('audio-start', fmt)];
  for (let off = 0; off < pcm.length; off += 2048)
    parts.push(encodeEvent('audio-chunk', fmt, pcm.subarray(off, off + 2048)));
  parts.push(encodeEvent('audio-stop'));
  const speech = Buffer.concat(parts);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    const parser = new EventParser();
    sock.on('data', (d: Buffer) => {
      for (const ev of parser.push(d)) {
        if (ev.type === 'synthesize') sock.write(speech);
        else if (ev.type === 'audio-stop') sock.write(encodeEvent('transcript', { text: 'yes that works for me' }));
        else if (ev.type === 'describe') sock.write(encodeEvent('info', { tts: [{ name: 'bench', voices: [] }] }));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

async function echoServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((sock) => {
    sock.on('error', () => undefined);
    sock.on('data', (d) => sock.end(d));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

function echo(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write('{"type": "describe"}\n'));
    s.once('data', () => {
      s.destroy();
      resolve();
    });
    s.once('error', reject);
  });
}

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-bench-wyoming-'));
  const srv = await instantServer();
  const floor = await echoServer();
  try {
    const ep = { host: '127.0.0.1', port: srv.port };
    const tts = new WyomingTtsEngine({ host: ep.host, port: ep.port, voice: 'en_US-lessac-medium' });
    const stt = new WyomingSttEngine({ host: ep.host, port: ep.port });
    await synthesizeWav('wyoming', ep, { text: 'warm up' }, { timeoutMs: 10000 });
    rows.push(stats('floor: TCP connect + one-line echo', await time(200, () => echo(floor.port)), 'loopback'));
    rows.push(stats('wyoming describe -> info', await time(200, () => tts.describe({ timeoutMs: 10000 }))));
    rows.push(
      stats(
        'wyoming synthesize -> 22 kHz WAV (client only)',
        await time(100, (i) => synthesizeWav('wyoming', ep, { text: `hello ${i}` }, { timeoutMs: 10000 })),
        '2.5 s audio, 54 chunks',
      ),
    );
    const svc = new TtsService(tts, new AudioCache(path.join(dir, 'cache')));
    rows.push(
      stats(
        'wyoming speak, cache miss (+ 8 kHz resample, cache write)',
        await time(50, async (i) => (await svc.speak(`Hello number ${i}.`)).release()),
        '2.5 s audio',
      ),
    );
    rows.push(
      stats(
        'wyoming speak, cache hit',
        await time(200, async (i) => (await svc.speak(`Hello number ${i % 50}.`)).release()),
        'server not contacted',
      ),
    );
    const pcm = tone(8000, 3000);
    const samples = new Int16Array(pcm.length / 2);
    for (let i = 0; i < samples.length; i++) samples[i] = pcm.readInt16LE(i * 2);
    const wav = encodeWav({ sampleRate: 8000, channels: 1, samples });
    rows.push(
      stats(
        'wyoming transcribe 3 s recording',
        await time(100, () => transcribe(stt, wav, { timeoutMs: 10000 })),
        '6 chunks of 0.5 s',
      ),
    );
  } finally {
    await srv.close();
    await floor.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
