/**
 * DTMF over AudioSocket (kind 0x03) in stream mode behaves as in record mode, through the real Node-RED
 * runtime and the simulator's AudioSocket callee over real sockets:
 * - record's escape digits (RECORD FILE's) end the caller's turn at the key: what was said until then is
 *   the utterance, `msg.recording.digit` names the key; a key alone ends an empty turn;
 * - speak's escape digits (STREAM FILE's) stop the prompt: `msg.playback.digit`;
 * - other keys do not end anything; every key pressed since the last turn reaches the flow as
 *   `msg.recording.digits`.
 * Hostile frames (a DTMF message of the wrong length or with a byte that is no key, a flood of keys) drop
 * the connection or stay bounded, and the AGI session has control again.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import net from 'net';
import helper from 'node-red-node-test-helper';
import { runAgiCall } from '../../src/sim/agi-client';
import type { Persona } from '../../src/sim/persona';
import { randomUUID } from 'crypto';
import { AudioSocketServer, encodeAudio, encodeDtmf, encodeUuid } from '../../src/media/audiosocket';
import { MediaSession } from '../../src/media/session';
import { TestEndpointer } from '../helpers/test-endpointer';
import { waitFor } from '../helpers/wait';
import { givenCall } from '../helpers/call-token';

import fastagiIn from '../../nodes/fastagi-in/fastagi-in';
import agiRecord from '../../nodes/agi-record/agi-record';
import agiHangup from '../../nodes/agi-hangup/agi-hangup';
import ttsSpeak from '../../nodes/tts-speak/tts-speak';
import sttTranscribe from '../../nodes/stt-transcribe/stt-transcribe';
import llmTurn from '../../nodes/llm-turn/llm-turn';
import catchNode from '@node-red/nodes/core/common/25-catch.js';
import { removeScratch } from '../helpers/scratch';

helper.init(require.resolve('node-red'));

type Msg = Record<string, any>;
type TestNode = ReturnType<typeof helper.getNode> & { port?: number };

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-stream-dtmf-'));

describe('DTMF in a streaming conversation', () => {
  beforeAll((done) => {
    helper.startServer(done);
  });
  afterAll((done) => {
    removeScratch(root);
    helper.stopServer(done);
  });
  afterEach(() => helper.unload());

  const flow = [
    { id: 'f1', type: 'tab' },
    { id: 'in', type: 'fastagi-in', host: '127.0.0.1', port: '0', media: 'stream', wires: [['llm'], []] },
    {
      id: 'llm',
      type: 'llm-turn',
      engine: 'scripted',
      greeting:
        'Hello there. This is a reminder of your appointment on Tuesday. Can you still make it? Press hash when done.',
      wires: [['tts']],
    },
    {
      id: 'tts',
      type: 'tts-speak',
      engine: 'sim',
      escapeDigits: '#',
      audioDir: path.join(root, 'audio'),
      wires: [['rec', 'spoken']],
    },
    { id: 'rec', type: 'agi-record', escapeDigits: '#', noInput: '20', wires: [['stt', 'recs']] },
    { id: 'stt', type: 'stt-transcribe', engine: 'sim', wires: [['llm', 'heard'], [], []] },
    { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
    { id: 'spoken', type: 'helper' },
    { id: 'recs', type: 'helper' },
    { id: 'heard', type: 'helper' },
    { id: 'errors', type: 'helper' },
  ].map((n) => (n.type === 'tab' ? n : { z: 'f1', ...n }));

  function collect(id: string): Msg[] {
    const out: Msg[] = [];
    helper.getNode(id).on('input', (m: Msg) => out.push(m));
    return out;
  }

  test('escape digits end the turn or the prompt at the key; other keys reach the flow with the next turn', async () => {
    await helper.load([fastagiIn, llmTurn, ttsSpeak, agiRecord, sttTranscribe, agiHangup, catchNode], flow);
    const [spoken, recs, heard, errors] = ['spoken', 'recs', 'heard', 'errors'].map(collect);
    const port = await waitFor(() => (helper.getNode('in') as TestNode).port, 5000, 'fastagi-in to listen');
    const persona: Persona = {
      utterances: [
        { dtmf: '#', bargeInAfterMs: 600 }, // stops the greeting
        { text: 'No, I cannot make it.', dtmf: '#', pauseMs: 300 }, // ends the answer at once
        { dtmf: '#', pauseMs: 300 }, // a key alone: an empty turn
        { text: 'Yes, Friday works for me.', dtmf: '5', pauseMs: 300 }, // not an escape digit
      ],
    };
    const callP = runAgiCall({
      host: '127.0.0.1',
      port,
      script: 'dialer',
      channel: 'Local/+12125550079@callees-00000079;1',
      uniqueid: '1732486000.79',
      variables: { CALL_ID: '79', CALL_TOKEN: givenCall(79), CONTACT_PHONE: '+12125550079', CAMPAIGN_ID: '3' },
      persona,
    });
    await waitFor(() => recs.length >= 3 && heard.length >= 3, 30000, 'three answers transcribed');
    expect(errors).toEqual([]);

    // the greeting stopped at the key, not by barge-in
    expect(spoken[0].playback).toMatchObject({ digit: '#', interrupted: false });
    expect(spoken[0].playback.durationMs).toBeGreaterThan(300);
    expect(spoken[0].playback.durationMs).toBeLessThan(spoken[0].playback.totalMs);
    expect(spoken[0].turn.botText.startsWith(spoken[0].turn.playedText ?? '')).toBe(true);

    // answer 1: the speech until the key, ended at the key (no end-of-turn silence waited)
    const [r1, r2, r3] = recs;
    // digits: every key since the previous turn (the one that stopped the greeting, then the one that ended this)
    expect(r1.recording).toMatchObject({ media: 'stream', digit: '#', digits: '##', hungUp: false });
    expect(r1.recording.durationMs).toBeGreaterThan(800);
    expect(r1.turn.timing.endpointMs).toBeLessThan(200);
    expect(heard[0].transcript.text).toBe('No, I cannot make it.');
    // answer 2: the key alone, an empty turn with the key
    expect(r2.recording).toMatchObject({ media: 'stream', digit: '#', durationMs: 0, hungUp: false });
    expect(r2.recording.utteranceId).toBeUndefined();
    expect(heard[1].transcript.text).toBe('');
    // answer 3: 5 is no escape digit: the turn ended by silence, the key is in digits
    expect(r3.recording.digit).toBeUndefined();
    expect(r3.recording.digits).toBe('5');
    expect(r3.turn.timing.endpointMs).toBeGreaterThanOrEqual(500);
    expect(heard[2].transcript.text).toBe('Yes, Friday works for me.');
    await helper.unload(); // the call ends politely when the flows stop
    const call = await callP;
    expect(call.audioSocket[0].keys.map((k) => k.digit)).toEqual(['#', '#', '#', '5']);
  }, 45000);
});

describe('hostile DTMF frames', () => {
  let server: AudioSocketServer;
  let port: number;
  beforeAll(async () => {
    server = new AudioSocketServer();
    port = (await server.listen()).port;
  });
  afterAll(() => server.close());

  /** A media session over our raw socket, admitted as a hand-off would (uuid expected, then sent). */
  async function rawCall(): Promise<{ socket: net.Socket; m: MediaSession }> {
    const uuid = randomUUID();
    const conn = server.expect(uuid, { callId: '80', sessionId: 's80' });
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise((r) => socket.once('connect', r));
    socket.write(encodeUuid(uuid));
    const m = new MediaSession(await conn, { endpointer: new TestEndpointer() });
    return { socket, m };
  }

  test.each([
    ['a DTMF message of two bytes', Buffer.from([0x03, 0, 2, 0x31, 0x32])],
    ['a DTMF byte that is no key', Buffer.from([0x03, 0, 1, 0x78])],
    ['a DTMF length of 65535', Buffer.from([0x03, 0xff, 0xff])],
  ])('%s drops the connection: the listener gets nothing', async (_name, frame) => {
    const { socket, m } = await rawCall();
    const listen = m.nextUtterance({ escapeDigits: '#' });
    socket.write(encodeAudio(new Int16Array(160)));
    socket.write(frame);
    expect(await listen).toBeUndefined();
    expect(m.closed).toBe(true);
    expect(m.digits).toEqual([]);
    if (!socket.destroyed) await new Promise((r) => socket.once('close', r));
  });

  test('a flood of keys is bounded; a valid key still ends the listen; keys while speaking cut the utterance there', async () => {
    const { socket, m } = await rawCall();
    socket.write(Buffer.concat(Array.from({ length: 5000 }, (_, i) => encodeDtmf(String(i % 10)))));
    await waitFor(() => m.digits.length === 64 && m.digits[63] === '9', 5000, 'the keys');
    const listen = m.nextUtterance({ escapeDigits: '*' });
    socket.write(encodeDtmf('*'));
    const u = await listen;
    expect(u).toMatchObject({ digit: '*', reason: 'dtmf' });
    expect(u?.audio.length).toBe(0);
    expect(m.takeDigits()).toHaveLength(64);
    expect(m.takeDigits()).toBe('');
    // speaking (loud frames), then the key: the utterance is what was said, cut at the key
    const next = m.nextUtterance({ escapeDigits: '#' });
    const loud = new Int16Array(160).fill(3000);
    socket.write(Buffer.concat([...Array.from({ length: 25 }, () => encodeAudio(loud)), encodeDtmf('#')]));
    const v = await next;
    expect(v).toMatchObject({ digit: '#', reason: 'dtmf', startMs: 0 });
    expect(v?.audio.length).toBeGreaterThanOrEqual(24 * 160);
    expect(v?.audio.length).toBeLessThanOrEqual(25 * 160);
    m.end();
    socket.destroy();
  });
});
