/**
 * Early transcription in stream mode, through the real Node-RED runtime, the real media session and
 * endpointer (WebRTC VAD) and the simulator's callee over AudioSocket, with an OpenAI-compatible STT server
 * that takes 150 ms a request: when the caller pauses 300 ms the utterance so far is posted; if the caller
 * stays silent until the end of the turn (600 ms), stt-transcribe uses that result (one request, the wait
 * almost nothing); if the caller speaks again, that request is aborted and the transcript is of the whole
 * utterance; with the setting off, the request starts only when the turn ends.
 */
import fs from 'fs';
import http from 'http';
import type { AddressInfo } from 'net';
import os from 'os';
import path from 'path';
import { performance } from 'perf_hooks';
import helper from 'node-red-node-test-helper';
import { runAgiCall } from '../../src/sim/agi-client';
import type { Persona } from '../../src/sim/persona';
import { syntheticSpeech } from '../../src/audio/synthetic-speech';
import { encodeWav } from '../../src/audio/wav';
import { waitFor } from '../helpers/wait';
import { givenCall } from '../helpers/call-token';

import fastagiIn from '../../nodes/fastagi-in/fastagi-in';
import agiRecord from '../../nodes/agi-record/agi-record';
import agiHangup from '../../nodes/agi-hangup/agi-hangup';
import ttsSpeak from '../../nodes/tts-speak/tts-speak';
import sttTranscribe from '../../nodes/stt-transcribe/stt-transcribe';
import llmTurn from '../../nodes/llm-turn/llm-turn';
import catchNode from '@node-red/nodes/core/common/25-catch.js';
import switchNode from '@node-red/nodes/core/function/10-switch.js';
import { replyDoneSwitch } from '../helpers/flow-nodes';
import { removeScratch } from '../helpers/scratch';

helper.init(require.resolve('node-red'));

type Msg = Record<string, any>;
type TestNode = ReturnType<typeof helper.getNode> & { port?: number };

const STT_MS = 150;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-stream-early-'));

/** An OpenAI-compatible STT server: answers after STT_MS with the size of the audio it got. */
interface SttRequestSeen {
  at: number;
  bytes: number;
  aborted: boolean;
  answered: boolean;
}
let seen: SttRequestSeen[] = [];
/** The server's time per request, ms (STT_MS unless a test needs another). */
let sttDelayMs = STT_MS;
let server: http.Server;
let baseUrl: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const r: SttRequestSeen = { at: performance.now(), bytes: 0, aborted: false, answered: false };
    seen.push(r);
    req.on('data', (c: Buffer) => (r.bytes += c.length));
    res.on('close', () => {
      if (!r.answered) r.aborted = true;
    });
    req.on('end', () => {
      setTimeout(() => {
        if (r.aborted) return;
        r.answered = true;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ text: `audio of ${r.bytes} bytes` }));
      }, sttDelayMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  await new Promise<void>((r) => helper.startServer(r));
});
afterAll(async () => {
  removeScratch(root);
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await new Promise<void>((r) => helper.stopServer(r));
});
beforeEach(() => {
  seen = [];
  sttDelayMs = STT_MS;
});
afterEach(() => helper.unload());

const flow = (early?: boolean) =>
  [
    { id: 'f1', type: 'tab' },
    { id: 'in', type: 'fastagi-in', host: '127.0.0.1', port: '0', media: 'stream', wires: [['llm'], []] },
    {
      id: 'llm',
      type: 'llm-turn',
      engine: 'scripted',
      greeting: 'Hello. Can you still make Tuesday?',
      wires: [['tts']],
    },
    { id: 'tts', type: 'tts-speak', engine: 'sim', audioDir: path.join(root, 'audio'), wires: [['sw']] },
    replyDoneSwitch(),
    { id: 'rec', type: 'agi-record', dir: path.join(root, 'rec'), wires: [['stt']] },
    {
      id: 'stt',
      type: 'stt-transcribe',
      engine: 'openai',
      baseUrl,
      model: 'whisper-1',
      ...(early === undefined ? {} : { early }),
      wires: [['heard'], ['failed'], []],
    },
    { id: 'heard', type: 'helper' },
    { id: 'failed', type: 'helper' },
    { id: 'hang', type: 'agi-hangup', wires: [[]] },
    { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
    { id: 'errors', type: 'helper' },
  ].map((n) => (n.type === 'tab' ? n : { z: 'f1', ...n }));

const NODES = [fastagiIn, llmTurn, ttsSpeak, switchNode, agiRecord, sttTranscribe, agiHangup, catchNode];

function collect(id: string): Array<Msg & { at: number }> {
  const out: Array<Msg & { at: number }> = [];
  helper.getNode(id).on('input', (m: Msg) => out.push({ ...m, at: performance.now() }));
  return out;
}

/** A call of the simulator (each test its own call id); the callee hangs up a second after its answer. */
async function call(n: number, persona: Persona) {
  const port = await waitFor(() => (helper.getNode('in') as TestNode).port, 5000, 'fastagi-in to listen');
  return runAgiCall({
    host: '127.0.0.1',
    port,
    script: 'dialer',
    channel: `Local/+121255500${n}@callees-000000${n};1`,
    uniqueid: `1732486000.${n}`,
    variables: { CALL_ID: String(n), CALL_TOKEN: givenCall(n), CONTACT_PHONE: `+121255500${n}`, CAMPAIGN_ID: '3' },
    persona,
  });
}

/** A WAV of speech, `gapMs` of silence, speech (a caller who pauses mid-sentence). */
function pausedSpeech(gapMs: number): string {
  const a = syntheticSpeech('I would like to book');
  const b = syntheticSpeech('an appointment for Tuesday morning please');
  const s = new Int16Array(a.length + gapMs * 8 + b.length);
  s.set(a);
  s.set(b, a.length + gapMs * 8);
  const file = path.join(root, `paused-${gapMs}.wav`);
  fs.writeFileSync(file, encodeWav({ sampleRate: 8000, channels: 1, samples: s }));
  return file;
}

describe('early transcription (stream mode, an engine that does not stream)', () => {
  test('the caller stays silent: the early request is the only one, and its result is used at once', async () => {
    await helper.load(NODES, flow());
    const [heard, failed, errors] = ['heard', 'failed', 'errors'].map(collect);
    const ended = call(71, { utterances: [{ text: 'Yes, Tuesday at ten works for me.', pauseMs: 300, hangup: true }] });
    await waitFor(() => heard[0], 20000, 'the transcript');
    await ended;
    expect(errors).toEqual([]);
    expect(failed).toEqual([]);
    const t = heard[0].transcript;
    expect(t).toMatchObject({ engine: 'openai', early: true });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ aborted: false, answered: true });
    expect(t.text).toBe(`audio of ${seen[0].bytes} bytes`);
    // posted before the turn ended (300 ms into the silence, the turn ends at 600), so the caller's wait
    // for the transcript was a fraction of the engine's 150 ms
    expect(heard[0].at - seen[0].at).toBeGreaterThan(STT_MS);
    expect(t.elapsedMs).toBeLessThan(STT_MS / 2);
    expect(heard[0].turn.timing.sttMs).toBe(t.elapsedMs);
    // the utterance's audio: about its 2.4 s of speech, with the 100 ms pads
    expect(seen[0].bytes).toBeGreaterThan(2.2 * 16000);
  }, 45000);

  test('the caller pauses mid-sentence and goes on: the early request is aborted, the transcript is of the whole', async () => {
    // the caller speaks again 120 ms into the early request: a slow engine (400 ms) is surely still at work
    sttDelayMs = 400;
    await helper.load(NODES, flow());
    const [heard, failed, errors] = ['heard', 'failed', 'errors'].map(collect);
    const ended = call(72, { utterances: [{ wav: pausedSpeech(420), pauseMs: 300, hangup: true }] });
    await waitFor(() => heard[0], 20000, 'the transcript');
    await ended;
    expect(errors).toEqual([]);
    expect(failed).toEqual([]);
    // the pause: the first part posted, then aborted when the caller spoke again; the whole, posted early too
    expect(seen).toHaveLength(2);
    expect(seen[0]).toMatchObject({ aborted: true, answered: false });
    expect(seen[1]).toMatchObject({ aborted: false, answered: true });
    expect(seen[1].bytes).toBeGreaterThan(seen[0].bytes + 2 * 16000);
    // one utterance, transcribed as a whole
    expect(heard).toHaveLength(1);
    expect(heard[0].transcript).toMatchObject({ text: `audio of ${seen[1].bytes} bytes`, early: true });
  }, 45000);

  test('off: the request starts when the turn ends and the caller waits the engine time', async () => {
    await helper.load(NODES, flow(false));
    const [heard, errors] = ['heard', 'errors'].map(collect);
    const ended = call(73, { utterances: [{ text: 'Yes, Tuesday at ten works for me.', pauseMs: 300, hangup: true }] });
    await waitFor(() => heard[0], 20000, 'the transcript');
    await ended;
    expect(errors).toEqual([]);
    expect(seen).toHaveLength(1);
    expect(heard[0].transcript.early).toBeUndefined();
    expect(heard[0].transcript.elapsedMs).toBeGreaterThanOrEqual(STT_MS);
  }, 45000);
});
