/**
 * agi-hangup's attended transfer against the simulator's AGI client (which dials like Asterisk 22 does,
 * see test/real-asterisk/attended-transfer.test.ts): the agent answers and hears the whisper in the
 * call's voice, does not answer (back to the conversation on the second output), is busy (the no-agent
 * message, then a hangup), the caller hangs up while the agent rings; the transfer on the call row.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { FastAgiInController } from '../../src/controllers/fastagi-in';
import { AgiHangupController, DEFAULT_NO_AGENT_AI } from '../../src/controllers/agi-hangup';
import { CallRecords } from '../../src/calls/records';
import { forgetCall, noteVoice } from '../../src/calls/goodbye';
import { getSession } from '../../src/agi/registry';
import { runAgiCall, type AgiCallResult } from '../../src/sim/agi-client';
import type { Persona } from '../../src/sim/persona';
import { encodeWav } from '../../src/audio/wav';
import type { Db } from '../../src/store/db';
import type { DialerMsg } from '../../src/types/msg';
import { buildEvent } from '../../src/events/builders';
import { pgliteTarget, type DbTarget } from '../helpers/db';
import { waitFor } from '../helpers/wait';
import { keys, recordingView } from './view';

let target: DbTarget;
let db: Db;
let dir: string;

beforeAll(async () => {
  target = pgliteTarget();
  db = await target.open();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-ctl-xfer-'));
});
afterAll(async () => {
  await db.close();
  await target.cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The call's voice as tts-speak notes it: every line becomes a WAV of 100 ms per word; texts kept. */
const spoken: string[] = [];
function giveVoice(callId: number | string): void {
  noteVoice(
    callId,
    async () => undefined,
    undefined,
    async (text) => {
      spoken.push(text);
      const base = path.join(dir, `line-${spoken.length}`);
      const ms = 100 * text.split(/\s+/).length;
      fs.writeFileSync(
        `${base}.wav`,
        encodeWav({ sampleRate: 8000, channels: 1, samples: new Int16Array((8000 * ms) / 1000).fill(500) }),
      );
      return { path: base, durationMs: ms };
    },
  );
}

async function start(persona: Persona, records?: CallRecords) {
  const out: DialerMsg[] = [];
  let port = 0;
  const ctl = new FastAgiInController(
    { host: '127.0.0.1', port: '0' },
    recordingView(),
    keys,
    { send: (p, msg) => p === 0 && out.push(msg), listening: (a) => (port = a.port) },
    records,
    {},
  );
  await ctl.listen();
  const ended: Promise<AgiCallResult> = runAgiCall({
    host: '127.0.0.1',
    port,
    channel: 'PJSIP/trunk-00000001',
    uniqueid: `${Date.now() / 1000}`,
    callerId: '+12125550100',
    variables: {},
    persona,
    speed: 10,
    recordingsRoot: dir,
    lingerMs: 2000,
  });
  const msg = await waitFor(() => out[0], 5000, 'the session msg');
  return { ctl, ended, msg };
}

const transferTo = (destination: string, summary?: string) => ({
  text: 'Let me put you through.',
  done: true,
  action: { type: 'transfer', destination, ...(summary ? { summary } : {}) },
});

test('the agent answers: whisper (the model summary, in the call voice) to the agent, bridge, then the call ends; stored on the call', async () => {
  const warnings: string[] = [];
  const records = new CallRecords(
    async () => db,
    (w) => warnings.push(w),
  );
  const view = recordingView();
  const hangup = new AgiHangupController({ transferMode: 'attended', agentTimeout: '15' }, view, keys, records, {});
  const { ctl, ended, msg } = await start({ agent: { behaviour: 'answer', ringMs: 2000, talkMs: 3000 } }, records);
  expect(typeof msg.call?.id).toBe('number');
  giveVoice(msg.call!.id!);
  msg.call!.contact = { name: 'Ann Smith' };
  const [done, back] = await hangup.handle({ ...msg, reply: transferTo('sales', 'Ann wants the premium plan.') });
  expect(back).toBeNull();
  expect(done?.call?.transfer).toMatchObject({
    to: 'sales@ai-dialer-transfer',
    mode: 'attended',
    status: 'answered',
    dialStatus: 'ANSWER',
    whisper: true,
  });
  expect(done?.call?.transferredTo).toBe('sales@ai-dialer-transfer');
  expect(done?.call).toMatchObject({ hungUp: true, hungUpBy: 'agi' });
  expect(done?.event).toBe('status');
  expect(done?.status).toMatchObject({ status: 'in_progress', transfer: { status: 'answered' } });
  // ... which call-broadcast publishes as a schema-valid status event
  expect(buildEvent(done!, 'status')).toMatchObject({
    type: 'status',
    transfer: { mode: 'attended', status: 'answered' },
  });
  const whisper = spoken[spoken.length - 1];
  expect(whisper).toContain('Ann Smith');
  expect(whisper).toContain('Ann wants the premium plan.');
  const r = await ended;
  expect(r.dials).toHaveLength(1);
  expect(r.dials[0]).toMatchObject({
    target: 'Local/sales@ai-dialer-transfer',
    timeoutSeconds: 15,
    dialStatus: 'ANSWER',
  });
  // the agent heard the whisper (its whole length) before the bridge
  expect(r.dials[0].whisper?.durationMs).toBe(100 * whisper.split(/\s+/).length);
  expect(r.dials[0].bridgedAtMs).toBeGreaterThanOrEqual(r.dials[0].whisperAtMs!);
  expect(r.hungUpBy).toBe('agi');
  const row = await db.query<{ transfer: Record<string, unknown> }>('select transfer from calls where id = $1', [
    msg.call!.id,
  ]);
  expect(row.rows[0].transfer).toMatchObject({ mode: 'attended', status: 'answered', to: 'sales@ai-dialer-transfer' });
  expect(warnings).toEqual([]);
  forgetCall(msg.call!.id!);
  await ctl.close();
});

test('no answer within the timeout: back to the conversation on the second output, the line to say in msg.reply', async () => {
  const hangup = new AgiHangupController({ transferMode: 'attended', agentTimeout: '3' }, recordingView(), keys);
  const { ctl, ended, msg } = await start({ agent: { behaviour: 'no_answer' } });
  msg.call = { ...msg.call, id: 'na-1' };
  giveVoice('na-1');
  msg.turn = { seq: 2, userText: 'I want to talk to a person about my bill.' };
  const t0 = Date.now();
  const [done, back] = await hangup.handle({ ...msg, reply: transferTo('sales') });
  expect(Date.now() - t0).toBeGreaterThanOrEqual(250); // 3 s at speed 10
  expect(done).toBeNull();
  expect(back?.call?.transfer).toMatchObject({ status: 'no_answer', dialStatus: 'NOANSWER', fallback: 'ai' });
  expect(back?.call?.transferredTo).toBeUndefined();
  expect(back?.reply).toEqual({ text: DEFAULT_NO_AGENT_AI, done: false });
  // no summary from the model: the whisper says what the caller said last
  expect(spoken[spoken.length - 1]).toContain('I want to talk to a person about my bill.');
  // the call is still ours: the conversation goes on on the same session
  const s = getSession(back!.call!.sessionId!);
  expect(s?.hungUp).toBe(false);
  await s!.streamFile(path.join(dir, 'line-1'));
  const [ended2] = await hangup.handle({ call: back!.call });
  expect(ended2?.call).toMatchObject({ hungUp: true, hungUpBy: 'agi' });
  const r = await ended;
  expect(r.dials[0]).toMatchObject({ dialStatus: 'NOANSWER', timeoutSeconds: 3 });
  expect(r.transcript.filter((l) => l.dir === 'cmd' && l.line.startsWith('STREAM FILE'))).toHaveLength(1);
  forgetCall('na-1');
  await ctl.close();
});

test('busy with the message fallback: the caller hears the no-agent message, then the call is hung up', async () => {
  const hangup = new AgiHangupController(
    { transferMode: 'attended', noAgent: 'message', noAgentMessage: 'Sorry {{contact.name|there}}, call us later.' },
    recordingView(),
    keys,
  );
  const { ctl, ended, msg } = await start({ agent: { behaviour: 'busy', ringMs: 300 } });
  msg.call = { ...msg.call, id: 'busy-1', contact: { name: 'Bob' } };
  giveVoice('busy-1');
  const [done, back] = await hangup.handle({ ...msg, reply: transferTo('support@agents') });
  expect(back).toBeNull();
  expect(done?.call?.transfer).toMatchObject({
    to: 'support@agents',
    status: 'busy',
    dialStatus: 'BUSY',
    fallback: 'message',
  });
  expect(done?.call).toMatchObject({ hungUp: true, hungUpBy: 'agi' });
  expect(spoken[spoken.length - 1]).toBe('Sorry Bob, call us later.');
  const r = await ended;
  const cmds = r.transcript.filter((l) => l.dir === 'cmd').map((l) => l.line.split(' ').slice(0, 2).join(' '));
  // Dial, its DIALSTATUS, the message, the hangup
  expect(cmds.slice(-4)).toEqual(['EXEC "Dial"', 'GET VARIABLE', 'STREAM FILE', 'HANGUP']);
  forgetCall('busy-1');
  await ctl.close();
});

test('the flow picks attended per call (msg.transfer) with its own whisper; the caller hangs up while the agent rings', async () => {
  const view = recordingView();
  const hangup = new AgiHangupController({}, view, keys); // blind by default
  const { ctl, ended, msg } = await start({ agent: { behaviour: 'no_answer' }, hangupAfterMs: 2000 });
  msg.call = { ...msg.call, id: 'gone-1' };
  giveVoice('gone-1');
  const [done, back] = await hangup.handle({
    ...msg,
    reply: transferTo('sales'),
    transfer: { mode: 'attended', whisper: 'VIP caller, be nice.' },
  });
  expect(back).toBeNull();
  expect(spoken[spoken.length - 1]).toBe('VIP caller, be nice.');
  expect(done?.call?.transfer).toMatchObject({ status: 'caller_hung_up', dialStatus: 'CANCEL', whisper: true });
  expect(done?.call?.transfer?.fallback).toBeUndefined();
  expect(done?.call).toMatchObject({ hungUp: true, hungUpBy: 'caller' });
  const r = await ended;
  expect(r.hungUpBy).toBe('caller');
  expect(r.dials[0].dialStatus).toBe('CANCEL');
  forgetCall('gone-1');
  await ctl.close();
});

test('no voice for the call, or a whisper path the dialplan cannot take: dialled without a whisper, warned', async () => {
  const view = recordingView();
  const hangup = new AgiHangupController({ transferMode: 'attended' }, view, keys);
  const { ctl, ended, msg } = await start({ agent: { behaviour: 'answer', ringMs: 100, talkMs: 200 } });
  msg.call = { ...msg.call, id: 'novoice-1' };
  const [done] = await hangup.handle({ ...msg, reply: transferTo('sales') });
  expect(done?.call?.transfer).toMatchObject({ status: 'answered', whisper: false });
  expect(view.warnings.join('\n')).toMatch(/no voice for the whisper/);
  const r = await ended;
  expect(r.dials[0].whisper).toBeUndefined();
  await ctl.close();

  noteVoice(
    'bad-1',
    async () => undefined,
    undefined,
    async () => ({ path: '/tmp/a b,Hangup()', durationMs: 10 }),
  );
  const again = await start({ agent: { behaviour: 'answer', ringMs: 100, talkMs: 200 } });
  again.msg.call = { ...again.msg.call, id: 'bad-1' };
  const [d2] = await hangup.handle({ ...again.msg, reply: transferTo('sales') });
  expect(d2?.call?.transfer).toMatchObject({ status: 'answered', whisper: false });
  expect(view.warnings.join('\n')).toMatch(/whisper could not be synthesised/);
  expect((await again.ended).variables._AI_WHISPER).toBe('');
  forgetCall('bad-1');
  await again.ctl.close();
});
