/**
 * Issue 18 in stream mode: tts-speak with a Wyoming engine (TTS_ENGINE=wyoming) forwards the server's
 * audio chunks to the caller's AudioSocket as they arrive, through the real Node-RED runtime, against the
 * byte-exact Wyoming test server (test/helpers/wyoming-server.ts) and the simulator's AudioSocket callee
 * over real sockets. The first frame reaches the caller before the server has sent its last chunk.
 * Malformed events, a connection dropped mid-audio and an unknown voice are typed failures on the node's
 * failure output, after whatever audio had arrived was played; nothing is cached.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import type net from 'net';
import { performance } from 'perf_hooks';
import helper from 'node-red-node-test-helper';
import { runAgiCall, type AgiCallResult } from '../../src/sim/agi-client';
import { event, tonePcm, TestWyomingServer, type ServerEvent } from '../helpers/wyoming-server';
import { waitFor } from '../helpers/wait';
import { givenCall } from '../helpers/call-token';

import fastagiIn from '../../nodes/fastagi-in/fastagi-in';
import ttsSpeak from '../../nodes/tts-speak/tts-speak';
import llmTurn from '../../nodes/llm-turn/llm-turn';
import catchNode from '@node-red/nodes/core/common/25-catch.js';
import { removeScratch } from '../helpers/scratch';

helper.init(require.resolve('node-red'));

type Msg = Record<string, any>;
type TestNode = ReturnType<typeof helper.getNode> & { port?: number };

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-stream-wyoming-'));
const RATE = 22050; // a Piper "medium" voice
const CHUNK_MS = 100;
const CHUNKS = 15;
const fmt = { rate: RATE, width: 2, channels: 1 };

type Fault = 'none' | 'garbage-mid' | 'drop-mid' | 'unknown-voice' | 'bad-width';
let fault: Fault = 'none';
/** Wall times of the first and last chunk sent, per synthesis. */
const synths: Array<{ first: number; last: number }> = [];
let testNo = 0;

/** A Piper-like server synthesising in real time: one 100 ms chunk every 100 ms. */
async function handler(ev: ServerEvent, sock: net.Socket): Promise<void> {
  if (ev.type !== 'synthesize') return;
  if (fault === 'unknown-voice') {
    sock.write(event('error', { text: 'Voice not found: xx_XX', code: 'VoiceNotFoundError' }));
    return;
  }
  sock.write(event('audio-start', { ...fmt, timestamp: 0 }));
  const times = { first: 0, last: 0 };
  synths.push(times);
  const pcm = tonePcm(RATE, CHUNK_MS * CHUNKS, 300, 9000);
  const per = (RATE * CHUNK_MS) / 1000;
  for (let i = 0; i < CHUNKS; i++) {
    await new Promise((r) => setTimeout(r, CHUNK_MS));
    if (sock.destroyed) return;
    if (i === 3 && fault === 'garbage-mid') {
      sock.write('{"type": "audio-chunk", "data_length": 12\n{"rate": 220');
      sock.write('this is not json at all\n');
      return;
    }
    if (i === 3 && fault === 'drop-mid') return void sock.destroy();
    const width = i === 3 && fault === 'bad-width' ? 3 : 2;
    sock.write(event('audio-chunk', { ...fmt, width, timestamp: null }, pcm.subarray(i * per * 2, (i + 1) * per * 2)));
    if (i === 0) times.first = performance.now();
    times.last = performance.now();
  }
  sock.write(event('audio-stop', { timestamp: null }));
}

let wy: TestWyomingServer;
beforeAll(async () => {
  wy = await new TestWyomingServer(handler).start();
  await new Promise<void>((r) => helper.startServer(r));
});
afterAll(async () => {
  await wy.stop();
  removeScratch(root);
  await new Promise<void>((r) => helper.stopServer(r));
});
afterEach(() => helper.unload());

const flow = () =>
  [
    { id: 'f1', type: 'tab' },
    { id: 'in', type: 'fastagi-in', host: '127.0.0.1', port: '0', media: 'stream', wires: [['llm'], []] },
    {
      id: 'llm',
      type: 'llm-turn',
      engine: 'scripted',
      greeting: 'Hello there this is a streaming test',
      wires: [['tts']],
    },
    {
      id: 'tts',
      type: 'tts-speak',
      engine: 'wyoming',
      wyomingHost: '127.0.0.1',
      wyomingPort: String(wy.port),
      voice: 'en_US-lessac-medium',
      audioDir: path.join(root, `audio-${testNo}`), // the goodbye at the end is cached per test
      wires: [['spoken'], ['failed']],
    },
    { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
    { id: 'spoken', type: 'helper' },
    { id: 'failed', type: 'helper' },
    { id: 'errors', type: 'helper' },
  ].map((n) => (n.type === 'tab' ? n : { z: 'f1', ...n }));

function collect(id: string): Msg[] {
  const out: Msg[] = [];
  helper.getNode(id).on('input', (m: Msg) => out.push(m));
  return out;
}

async function greet(): Promise<{ spoken: Msg[]; failed: Msg[]; errors: Msg[]; call: Promise<AgiCallResult> }> {
  testNo++;
  synths.length = 0;
  await helper.load([fastagiIn, llmTurn, ttsSpeak, catchNode], flow());
  const [spoken, failed, errors] = ['spoken', 'failed', 'errors'].map(collect);
  const port = await waitFor(() => (helper.getNode('in') as TestNode).port, 5000, 'fastagi-in to listen');
  const call = runAgiCall({
    host: '127.0.0.1',
    port,
    script: 'dialer',
    channel: 'Local/+12125550081@callees-00000081;1',
    uniqueid: '1732486000.81',
    variables: { CALL_ID: '81', CALL_TOKEN: givenCall(81), CONTACT_PHONE: '+12125550081', CAMPAIGN_ID: '3' },
    persona: { utterances: [{ silent: true }] },
  });
  await waitFor(() => spoken[0] ?? failed[0], 15000, 'the greeting to end');
  return { spoken, failed, errors, call };
}

/** End the call (the flows stop: the call hears its goodbye) and return what the callee heard before. */
async function hangUp(call: Promise<AgiCallResult>): Promise<AgiCallResult['audioSocket'][0]['heard']> {
  const t = performance.now();
  await helper.unload();
  const r = await call;
  return r.audioSocket[0].heard.filter((h) => h.firstAt < t);
}

const cacheFiles = () => {
  const dir = path.join(root, `audio-${testNo}`);
  return fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true }).filter((f) => String(f).endsWith('.wav')) : [];
};

test('the chunks go to the caller as they arrive: the first frame is heard before the server sent its last chunk', async () => {
  fault = 'none';
  const { spoken, failed, errors, call } = await greet();
  expect(failed).toEqual([]);
  expect(errors).toEqual([]);
  const m = spoken[0];
  expect(m.tts).toMatchObject({ engine: 'wyoming', media: 'stream', cached: false });
  expect(m.playback).toMatchObject({ interrupted: false, hungUp: false });
  // the whole reply was played: 1.5 s
  expect(m.playback.durationMs).toBeGreaterThanOrEqual(CHUNK_MS * CHUNKS - 20);
  expect(synths).toHaveLength(1);
  const { first: firstChunkAt, last: lastChunkAt } = synths[0];
  const heard = await hangUp(call);
  expect(heard.length).toBe(1);
  // the first frame reached the AudioSocket client while the server was still synthesizing (it sends the
  // last chunk 1.4 s after the first; a whole-then-play path could not start before it)
  expect(heard[0].firstAt).toBeLessThan(lastChunkAt);
  // the audio is the server's tone, resampled to 8 kHz: about 1.5 s of frames
  const frames = heard.reduce((n, h) => n + h.frames, 0);
  expect(frames).toBeGreaterThanOrEqual(74);
  expect(frames).toBeLessThanOrEqual(80);
  console.log(
    'stream wyoming: first frame',
    Math.round(heard[0].firstAt - firstChunkAt),
    'ms after the first chunk,',
    Math.round(lastChunkAt - heard[0].firstAt),
    'ms before the last',
  );
}, 30000);

test.each([
  ['a malformed event mid-audio', 'garbage-mid' as Fault, 'bad_response'],
  ['a connection dropped mid-audio', 'drop-mid' as Fault, 'bad_response'],
  ['a chunk that is not 16-bit audio', 'bad-width' as Fault, 'bad_response'],
])(
  '%s: what arrived is played, then a typed failure; nothing cached',
  async (_name, f, kind) => {
    fault = f;
    const { spoken, failed, call } = await greet();
    expect(spoken).toEqual([]);
    expect(failed[0].error).toMatchObject({ stage: 'tts', kind, engine: 'wyoming' });
    expect(cacheFiles()).toEqual([]);
    const heard = await hangUp(call);
    // three chunks arrived (300 ms) and were heard
    const frames = heard.reduce((n, h) => n + h.frames, 0);
    expect(frames).toBeGreaterThanOrEqual(14);
    expect(frames).toBeLessThanOrEqual(16);
  },
  30000,
);

test('an unknown voice: not_found, nothing heard', async () => {
  fault = 'unknown-voice';
  const { spoken, failed, call } = await greet();
  expect(spoken).toEqual([]);
  expect(failed[0].error).toMatchObject({ stage: 'tts', kind: 'not_found', engine: 'wyoming' });
  expect(await hangUp(call)).toEqual([]);
}, 30000);
