/**
 * Stream mode through the real Node-RED runtime and the same nodes as record mode: fastagi-in (media
 * stream) hands the call's audio to AudioSocket; llm-turn, tts-speak, agi-record, stt-transcribe and
 * agi-hangup run the conversation on the live stream. The simulator's callee talks over the greeting
 * (barge-in), answers, and is hung up on. Asserted: the turns (interrupted, what was heard, timings),
 * that no audio travels in msg, that AGI has control again for the hangup.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import helper from 'node-red-node-test-helper';
import { runAgiCall } from '../../src/sim/agi-client';
import type { Persona } from '../../src/sim/persona';
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

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-stream-flow-'));

beforeAll((done) => {
  helper.startServer(done);
});
afterAll((done) => {
  removeScratch(root);
  helper.stopServer(done);
});
afterEach(() => helper.unload());

const onTab = (nodes: object[]) => [{ id: 'f1', type: 'tab' }, ...nodes.map((n) => ({ z: 'f1', ...n }))];

const flow = (media: string) =>
  onTab([
    { id: 'in', type: 'fastagi-in', host: '127.0.0.1', port: '0', media, wires: [['llm'], ['ended']] },
    {
      id: 'llm',
      type: 'llm-turn',
      engine: 'scripted',
      greeting: 'Hello there. This is a reminder of your appointment on Tuesday. Can you still make it?',
      wires: [['tts', 'llmOut']],
    },
    { id: 'tts', type: 'tts-speak', engine: 'sim', audioDir: path.join(root, 'audio'), wires: [['sw', 'turns']] },
    replyDoneSwitch(),
    { id: 'rec', type: 'agi-record', silence: '1', maxSeconds: '20', dir: path.join(root, 'rec'), wires: [['stt']] },
    { id: 'stt', type: 'stt-transcribe', engine: 'sim', wires: [['llm']] },
    { id: 'hang', type: 'agi-hangup', wires: [['done']] },
    { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
    { id: 'turns', type: 'helper' },
    { id: 'llmOut', type: 'helper' },
    { id: 'done', type: 'helper' },
    { id: 'ended', type: 'helper' },
    { id: 'errors', type: 'helper' },
  ]);

function collect(id: string): Msg[] {
  const out: Msg[] = [];
  helper.getNode(id).on('input', (m: Msg) => out.push(m));
  return out;
}

function simCall(port: number, persona: Persona) {
  return runAgiCall({
    host: '127.0.0.1',
    port,
    script: 'dialer',
    channel: 'Local/+12125550077@callees-00000077;1',
    uniqueid: '1732486000.77',
    variables: { CALL_ID: '77', CALL_TOKEN: givenCall(77), CONTACT_PHONE: '+12125550077', CAMPAIGN_ID: '3' },
    persona,
  });
}

const caller: Persona = {
  utterances: [
    { text: 'No, I cannot make it.', bargeInAfterMs: 1200 },
    { text: 'Yes, Friday works for me.', pauseMs: 300 },
  ],
};

test('a streaming conversation: barge-in on the greeting, sentence-streamed replies, hangup over AGI', async () => {
  await helper.load(
    [fastagiIn, llmTurn, ttsSpeak, switchNode, agiRecord, sttTranscribe, agiHangup, catchNode],
    flow('stream'),
  );
  const [turns, done, errors] = [collect('turns'), collect('done'), collect('errors')];
  const port = await waitFor(() => (helper.getNode('in') as TestNode).port, 5000, 'fastagi-in to listen');
  const call = await simCall(port, caller);
  await waitFor(() => done[0], 20000, 'the hangup');
  expect(errors).toEqual([]);
  expect(call.hungUpBy).toBe('agi');
  expect(call.audioSocket).toHaveLength(1);
  expect(call.audioSocket[0].endedBy).toBe('server_hangup');
  // no RECORD FILE or STREAM FILE: the audio went over AudioSocket
  expect(call.transcript.filter((t) => /^(RECORD|STREAM) FILE/.test(t.line))).toEqual([]);

  if (turns.length !== 3)
    console.log(
      JSON.stringify(
        turns.map((m) => m.turn),
        null,
        1,
      ),
    );
  expect(turns.map((m) => m.turn.seq)).toEqual([0, 1, 2]);
  const [greet, t1, t2] = turns.map((m) => m.turn);
  expect(greet).toMatchObject({ media: 'stream', interrupted: true });
  expect(greet.botText).toMatch(/^Hello there\./);
  // cut about 1.2 s in: the first sentence or part of it
  expect(greet.playedText.length).toBeGreaterThan(0);
  expect(greet.botText.startsWith(greet.playedText)).toBe(true);
  expect(greet.playedText.length).toBeLessThan(greet.botText.length);

  expect(t1).toMatchObject({ userText: 'No, I cannot make it.', media: 'stream', interrupted: false });
  expect(t1.botText).toBe('No problem. When would suit you better?');
  expect(t2).toMatchObject({ userText: 'Yes, Friday works for me.', interrupted: false });
  for (const t of [t1, t2]) {
    expect(t.timing.endpointMs).toBeGreaterThanOrEqual(500);
    expect(t.timing.endpointMs).toBeLessThanOrEqual(800);
    expect(typeof t.timing.sttMs).toBe('number');
    expect(typeof t.timing.llmFirstTokenMs).toBe('number');
    expect(typeof t.timing.ttsFirstAudioMs).toBe('number');
    expect(t.timing.replyLatencyMs).toBeGreaterThanOrEqual(t.timing.endpointMs);
    // instant engines: what the caller waits is the endpoint silence plus our overhead
    expect(t.timing.replyLatencyMs - t.timing.endpointMs).toBeLessThan(400);
  }
  // the callee heard the replies (and its measured waits match ours within a frame or two)
  expect(call.audioSocket[0].replyLatencyMs.length).toBeGreaterThanOrEqual(2);
  // audio never travels in msg
  for (const m of turns) {
    expect(JSON.stringify(m).length).toBeLessThan(20000);
    expect(m.recording?.path).toBeUndefined();
  }
  console.log(
    'stream flow timings',
    JSON.stringify({
      t1: t1.timing,
      t2: t2.timing,
      callee: call.audioSocket[0].replyLatencyMs,
      bargeIn: call.audioSocket[0].bargeInStopMs,
    }),
  );
}, 40000);
