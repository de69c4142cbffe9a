/**
 * Stream mode through a Deploy (the redeploy hand-over, src/util/handoff.ts, meets AudioSocket): a full
 * Deploy of unchanged flows mid-conversation leaves the streaming call alone (the AudioSocket server and
 * the call's media session stay with the kept fastagi-in controller; the steps in flight go on into the
 * new node instances); removing fastagi-in, or changing its media settings, ends the streaming call
 * politely: the goodbye is heard on the stream (not STREAM FILE while AudioSocket holds the channel),
 * then the media ends, AGI has control again and hangs up.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import helper from 'node-red-node-test-helper';
import { runAgiCall } from '../../src/sim/agi-client';
import type { Persona } from '../../src/sim/persona';
import { waitFor } from '../helpers/wait';
import { givenCall } from '../helpers/call-token';
import { endCallPolitely } from '../../src/calls/goodbye';

import fastagiIn from '../../nodes/fastagi-in/fastagi-in';
import agiRecord from '../../nodes/agi-record/agi-record';
import agiHangup from '../../nodes/agi-hangup/agi-hangup';
import ttsSpeak from '../../nodes/tts-speak/tts-speak';
import sttTranscribe from '../../nodes/stt-transcribe/stt-transcribe';
import llmTurn from '../../nodes/llm-turn/llm-turn';
import switchNode from '@node-red/nodes/core/function/10-switch.js';
import { replyDoneSwitch } from '../helpers/flow-nodes';
import { removeScratch } from '../helpers/scratch';

helper.init(require.resolve('node-red'));

type Msg = Record<string, any>;
type TestNode = ReturnType<typeof helper.getNode> & { port?: number };

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-stream-deploy-'));

beforeAll((done) => {
  helper.startServer(done);
});
afterAll((done) => {
  removeScratch(root);
  helper.stopServer(done);
});
afterEach(() => helper.unload());

const onTab = (nodes: object[]) => [{ id: 'f1', type: 'tab' }, ...nodes.map((n) => ({ z: 'f1', ...n }))];

const flow = (inNode: Record<string, unknown> | undefined) =>
  onTab(
    [
      inNode,
      {
        id: 'llm',
        type: 'llm-turn',
        engine: 'scripted',
        greeting: 'Hello there. This is a reminder of your appointment on Tuesday. Can you still make it?',
        wires: [['tts']],
      },
      { id: 'tts', type: 'tts-speak', engine: 'sim', audioDir: path.join(root, 'audio'), wires: [['sw', 'turns']] },
      replyDoneSwitch(),
      { id: 'rec', type: 'agi-record', silence: '1', maxSeconds: '20', dir: path.join(root, 'rec'), wires: [['stt']] },
      { id: 'stt', type: 'stt-transcribe', engine: 'sim', wires: [['llm']] },
      { id: 'hang', type: 'agi-hangup', wires: [['done']] },
      { id: 'turns', type: 'helper' },
      { id: 'done', type: 'helper' },
      { id: 'ended', type: 'helper' },
    ].filter((n) => n !== undefined),
  );

const fastagi = (extra: Record<string, unknown> = {}) => ({
  id: 'in',
  type: 'fastagi-in',
  host: '127.0.0.1',
  port: '0',
  media: 'stream',
  wires: [['llm'], ['ended']],
  ...extra,
});

const nodes = [fastagiIn, llmTurn, ttsSpeak, switchNode, agiRecord, sttTranscribe, agiHangup];

/** What reaches helper node `id`, across the node's instances (collect again after each Deploy). */
function collect(id: string, into: Msg[] = []): Msg[] {
  helper.getNode(id)?.on('input', (m: Msg) => into.push(m));
  return into;
}

function simCall(port: number, persona: Persona) {
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

test('a full Deploy of unchanged flows mid-conversation: the streaming call goes on in the new instances and ends by itself', async () => {
  const f = flow(fastagi());
  await helper.load(nodes, f);
  const turns = collect('turns');
  const listening = collect('rec');
  const port = await waitFor(() => (helper.getNode('in') as TestNode).port, 5000, 'fastagi-in to listen');
  const call = simCall(port, {
    utterances: [
      { text: 'No, I cannot make it.', pauseMs: 300 },
      { text: 'Yes, Friday works for me.', pauseMs: 300 },
    ],
  });
  // the greeting has been said and the record step (listening on the stream) is in flight: a Deploy while the
  // msg is still on its way from the switch (a core node) to agi-record would drop it (the documented limit)
  await waitFor(() => turns[0], 15000, 'the greeting');
  await waitFor(() => listening[0], 5000, 'the record step');
  await helper.setFlows(f, 'full');
  expect((helper.getNode('in') as TestNode).port).toBe(port); // the same server, adopted
  const r = await call;
  // the conversation went on to its own end on the one stream: both answers heard and replied to
  expect(r.hungUpBy).toBe('agi');
  expect(r.audioSocket).toHaveLength(1); // one AudioSocket all along: the media was not cut
  const media = r.audioSocket[0];
  expect(media.endedBy).toBe('server_hangup');
  expect(media.said.map((u) => u.text)).toEqual(['No, I cannot make it.', 'Yes, Friday works for me.']);
  expect(media.heard).toHaveLength(3); // greeting and both replies, no goodbye of a drain
  expect(media.replyLatencyMs).toHaveLength(2);
  expect(r.transcript.filter((t) => /^(RECORD|STREAM) FILE/.test(t.line))).toEqual([]);
  const cmds = r.transcript.filter((t) => t.dir === 'cmd').map((t) => t.line.split(' ')[0]);
  expect(cmds.slice(-2)).toEqual(['EXEC', 'HANGUP']); // the flow's agi-hangup, after the media ended
}, 40000);

describe.each([
  ['fastagi-in is removed', () => flow(undefined)],
  ['its media settings change', () => flow(fastagi({ bargeIn: 'off', endSilence: '700' }))],
])('a Deploy where %s mid-conversation', (_what, next) => {
  test('ends the streaming call politely: the goodbye heard on the stream, then the media ends and AGI hangs up', async () => {
    await helper.load(nodes, flow(fastagi()));
    const [turns, ended, listening] = [collect('turns'), collect('ended'), collect('rec')];
    const port = await waitFor(() => (helper.getNode('in') as TestNode).port, 5000, 'fastagi-in to listen');
    // the callee is silent for a while after the greeting: the Deploy comes while it is being listened to
    const call = simCall(port, { utterances: [{ text: 'Yes, Friday works for me.', pauseMs: 8000 }] });
    await waitFor(() => turns[0], 15000, 'the greeting');
    await waitFor(() => listening[0], 5000, 'the record step'); // not a msg on its way to it (see above)
    const deployed = helper.setFlows(next(), 'full');
    const r = await call;
    await deployed;
    expect(r.hungUpBy).toBe('agi');
    expect(r.audioSocket).toHaveLength(1);
    const media = r.audioSocket[0];
    expect(media.endedBy).toBe('server_hangup');
    // greeting, then the goodbye, on the stream; never STREAM FILE while AudioSocket held the channel
    // (the callee tells prompts apart by the silence between them: the goodbye may follow the greeting at once)
    const greetingFrames = Math.round(turns[0].playback.totalMs / 20);
    const heardFrames = media.heard.reduce((n, p) => n + p.frames, 0);
    // "Thank you for your time. Goodbye." in full (no barge-in cut it): well over a second
    expect(heardFrames - greetingFrames).toBeGreaterThan(50);
    expect(turns).toHaveLength(1);
    expect(r.transcript.filter((t) => /^(RECORD|STREAM) FILE/.test(t.line))).toEqual([]);
    const cmds = r.transcript.filter((t) => t.dir === 'cmd').map((t) => t.line.split(' ')[0]);
    expect(cmds.slice(-2)).toEqual(['EXEC', 'HANGUP']); // control came back to AGI, which hung up
    expect(media.said).toEqual([]); // hung up before the caller said anything
    await waitFor(() => ended.length || undefined, 5000, 'agi_ended').catch(() => undefined);
  }, 40000);
});

test('a drain (SIGTERM: endCallPolitely, as the campaign control does) ends a streaming call with the goodbye on the stream', async () => {
  await helper.load(nodes, flow(fastagi()));
  const turns = collect('turns');
  const port = await waitFor(() => (helper.getNode('in') as TestNode).port, 5000, 'fastagi-in to listen');
  const call = simCall(port, { utterances: [{ text: 'Yes, Friday works for me.', pauseMs: 8000 }] });
  await waitFor(() => turns[0], 15000, 'the greeting');
  expect(endCallPolitely(78, 'the dialer is shutting down')).toBe(1);
  const r = await call;
  expect(r.hungUpBy).toBe('agi');
  expect(r.audioSocket).toHaveLength(1);
  const media = r.audioSocket[0];
  expect(media.endedBy).toBe('server_hangup');
  const greetingFrames = Math.round(turns[0].playback.totalMs / 20);
  expect(media.heard.reduce((n, p) => n + p.frames, 0) - greetingFrames).toBeGreaterThan(50);
  expect(r.transcript.filter((t) => /^(RECORD|STREAM) FILE/.test(t.line))).toEqual([]);
  const cmds = r.transcript.filter((t) => t.dir === 'cmd').map((t) => t.line.split(' ')[0]);
  expect(cmds.slice(-2)).toEqual(['EXEC', 'HANGUP']);
  expect(turns).toHaveLength(1); // the flow said nothing after the goodbye began
}, 40000);
