/**
 * Stream mode with Vosk fed live, through the real Node-RED runtime and the same nodes as record mode,
 * over real sockets: the simulator's callee speaks over AudioSocket, the caller's audio goes to a Vosk
 * server (test/helpers/vosk-server.ts, asr_server.py's protocol) while the caller speaks, partial results
 * leave stt-transcribe's third output as they come, and the final transcript is there when the
 * utterance ends (the recogniser has already heard the audio). A Vosk that fails mid-utterance costs a
 * second, whole transcription; one that cannot be reached is a typed failure.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { performance } from 'perf_hooks';
import helper from 'node-red-node-test-helper';
import { runAgiCall } from '../../src/sim/agi-client';
import type { Persona } from '../../src/sim/persona';
import { utteranceAudio } from '../../src/sim/audio-utterance';
import { transcribeSamples } from '../../src/speech/stt';
import { VoskEngine } from '../../src/speech/stt-vosk';
import { waitFor } from '../helpers/wait';
import { givenCall } from '../helpers/call-token';
import { FakeVoskServer } from '../helpers/vosk-server';

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

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-stream-vosk-'));
const SAID = ['No, I cannot make it.', 'Yes, Friday works for me.'];
/** A recogniser at 0.3 real-time factor: 300 ms of work per second of audio. */
const RTF_MS = 300;

beforeAll((done) => {
  helper.startServer(done);
});
afterAll((done) => {
  removeScratch(root);
  helper.stopServer(done);
});
afterEach(() => helper.unload());

const flow = (voskUrl: string) =>
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
    { id: 'tts', type: 'tts-speak', engine: 'sim', audioDir: path.join(root, 'audio'), wires: [['sw', 'turns']] },
    replyDoneSwitch(),
    { id: 'rec', type: 'agi-record', dir: path.join(root, 'rec'), wires: [['stt']] },
    { id: 'stt', type: 'stt-transcribe', engine: 'vosk', voskUrl, wires: [['llm', 'heard'], ['failed'], ['partials']] },
    { id: 'hang', type: 'agi-hangup', wires: [['done']] },
    { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
    { id: 'turns', type: 'helper' },
    { id: 'heard', type: 'helper' },
    { id: 'partials', type: 'helper' },
    { id: 'failed', type: 'helper' },
    { id: 'done', type: 'helper' },
    { id: 'errors', type: 'helper' },
  ].map((n) => (n.type === 'tab' ? n : { z: 'f1', ...n }));

/** Messages reaching a helper node, with their arrival time. */
function collect(id: string): Array<Msg & { at: number }> {
  const out: Array<Msg & { at: number }> = [];
  helper.getNode(id).on('input', (m: Msg) => out.push({ ...m, at: performance.now() }));
  return out;
}

const NODES = [fastagiIn, llmTurn, ttsSpeak, switchNode, agiRecord, sttTranscribe, agiHangup, catchNode];

async function call(persona: Persona) {
  const port = await waitFor(() => (helper.getNode('in') as TestNode).port, 5000, 'fastagi-in to listen');
  return runAgiCall({
    host: '127.0.0.1',
    port,
    script: 'dialer',
    channel: 'Local/+12125550078@callees-00000078;1',
    uniqueid: '1732486000.78',
    variables: { CALL_ID: '78', CALL_TOKEN: givenCall(78), CONTACT_PHONE: '+12125550078', CAMPAIGN_ID: '3' },
    persona,
  });
}

describe('Vosk fed live in stream mode', () => {
  let vosk: FakeVoskServer;
  afterEach(() => vosk?.close());

  test('partials reach the flow while the caller speaks; the final transcript is ready at the end of the utterance', async () => {
    vosk = new FakeVoskServer(SAID, { msPerAudioSecond: RTF_MS });
    await helper.load(NODES, flow(await vosk.listen()));
    const [turns, heard, partials, failed, done, errors] = [
      'turns',
      'heard',
      'partials',
      'failed',
      'done',
      'errors',
    ].map(collect);
    const result = await call({ utterances: SAID.map((text) => ({ text, pauseMs: 300 })) });
    await waitFor(() => done[0], 25000, 'the hangup');
    expect(errors).toEqual([]);
    expect(failed).toEqual([]);
    const said = result.audioSocket[0].said;
    expect(said.map((s) => s.text)).toEqual(SAID);

    // one Vosk stream per utterance, opened while the caller spoke and fed as the audio came
    expect(vosk.connections).toHaveLength(2);
    expect(heard.map((m) => m.transcript)).toEqual(
      SAID.map((text) => expect.objectContaining({ text, engine: 'vosk', live: true })),
    );
    for (let i = 0; i < 2; i++) {
      const c = vosk.connections[i];
      expect(c.config).toEqual({ sample_rate: 8000 });
      // the first audio reached Vosk long before the caller stopped speaking
      expect(c.firstAudioAt as number).toBeLessThan(said[i].endAt - 300);
      // the end of stream was sent when the endpointer ended the turn (600 ms of silence), not later
      expect((c.eofAt as number) - said[i].endAt).toBeGreaterThan(400);
      expect((c.eofAt as number) - said[i].endAt).toBeLessThan(1200);
      // ~1.5 s of speech plus the pre-roll and the endpoint silence, in 100 ms messages
      expect(c.bytes).toBeGreaterThan(16 * 1000);
      expect(c.messages).toBeGreaterThan(10);
    }

    // partials left the third output as they came: during the speech, before the transcript
    for (let i = 0; i < 2; i++) {
      const mine = partials.filter((p) => p.at > (i ? heard[0].at : 0) && p.at < heard[i].at);
      expect(mine.length).toBeGreaterThanOrEqual(2);
      expect(mine[0].at).toBeLessThan(said[i].endAt);
      for (const p of mine) {
        expect(p.topic).toBe('partial');
        expect(SAID[i].toLowerCase().startsWith(p.payload)).toBe(true);
        expect(p.partial).toMatchObject({ text: p.payload, engine: 'vosk' });
        expect(p.call).toMatchObject({ id: 78 });
        expect(p.call.sessionId).toBe(heard[0].call.sessionId);
      }
      expect(mine.map((p) => p.partial.index)).toEqual(mine.map((_, k) => k + 1));
    }

    // the caller's wait: the transcript was there at once, not after another recognition of the whole
    const stt = turns.slice(1).map((m) => m.turn.timing.sttMs as number);
    expect(stt).toHaveLength(2);
    const audio = await utteranceAudio(SAID[0], 'synthetic');
    const whole = await transcribeSamples(new VoskEngine({ url: vosk.url }), audio, { timeoutMs: 5000 });
    expect(whole.text).toBe(SAID[1]); // the script's last answer repeats
    for (const ms of stt) expect(ms).toBeLessThan(whole.elapsedMs / 2);
    console.log('stream vosk: sttMs live', JSON.stringify(stt), 'whole', Math.round(whole.elapsedMs));
  }, 40000);

  test('a Vosk that fails mid-utterance: the utterance is transcribed again, whole; none reachable: a typed failure', async () => {
    vosk = new FakeVoskServer(['No, I cannot make it.']);
    vosk.faultOf = (i) => (i === 0 ? 'close-mid' : 'none');
    await helper.load(NODES, flow(await vosk.listen()));
    const [heard, failed, errors] = ['heard', 'failed', 'errors'].map(collect);
    const p = call({ utterances: SAID.map((text) => ({ text, pauseMs: 300 })) });
    await waitFor(() => heard[0], 20000, 'the transcript');
    expect(heard[0].transcript).toMatchObject({ text: SAID[0], engine: 'vosk' });
    expect(heard[0].transcript.live).toBeUndefined();
    expect(vosk.connections.length).toBeGreaterThanOrEqual(2);
    expect(failed).toEqual([]);
    expect(errors).toEqual([]);
    // now nothing listens: the next answer's live stream and its whole transcription both fail, typed
    await vosk.close();
    await waitFor(() => failed[0], 20000, 'the failure');
    expect(failed[0].error).toMatchObject({ stage: 'stt', kind: 'network', engine: 'vosk' });
    void p;
  }, 40000);
});
