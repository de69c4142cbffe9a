/**
 * Voicemail handling through the controllers the default flow chains (issue 15 item 3): fastagi-in ->
 * llm-turn (the campaign's voicemail message, outcome machine) -> tts-speak (WaitForSilence for the
 * end of the greeting and beep, then the message), against the simulator's AGI side with an answering
 * machine persona. Real-Asterisk proof: test/real-asterisk/voicemail-recording.test.ts.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { FastAgiInController } from '../../src/controllers/fastagi-in';
import { LlmTurnController } from '../../src/controllers/llm-turn';
import { TtsSpeakController } from '../../src/controllers/tts-speak';
import { AgiHangupController } from '../../src/controllers/agi-hangup';
import { runAgiCall, type AgiCallResult } from '../../src/sim/agi-client';
import type { Persona } from '../../src/sim/persona';
import { runTurn } from '../../src/llm/turn';
import type { LlmEngine } from '../../src/llm/types';
import type { DialerMsg } from '../../src/types/msg';
import { waitFor } from '../helpers/wait';
import { givenCall } from '../helpers/call-token';
import { keys, recordingView } from './view';

const ac = () => new AbortController().signal;
let dir: string;
beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-ctl-vm-'))));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const never: LlmEngine = {
  name: 'never',
  label: 'never',
  decide: async () => {
    throw new Error('an answering machine never reaches the engine');
  },
};

describe('runTurn on an answering machine', () => {
  test('the campaign message (a template) with action voicemail; no message: nothing said; a person gets the greeting', async () => {
    const ctx = { contact: { name: 'John' } };
    const vm = await runTurn(
      never,
      { callId: 'vm1', greeting: true, machine: true, context: ctx },
      { voicemailMessage: 'Hi {{contact.name}}, please call us back.', greeting: 'Hello {{contact.name}}' },
    );
    expect(vm).toMatchObject({
      text: 'Hi John, please call us back.',
      done: true,
      source: 'voicemail',
      action: { type: 'voicemail', drop: true },
    });
    const none = await runTurn(never, { callId: 'vm2', greeting: true, machine: true, context: ctx }, {});
    expect(none).toMatchObject({ text: '', done: true, action: { type: 'voicemail', drop: false } });
    const person = await runTurn(
      never,
      { callId: 'vm3', greeting: true, machine: false, context: ctx },
      { voicemailMessage: 'x', greeting: 'Hello {{contact.name}}' },
    );
    expect(person).toMatchObject({ text: 'Hello John', done: false, source: 'greeting' });
  });
});

async function agiServer() {
  const out: { port: 0 | 1; msg: DialerMsg }[] = [];
  let port = 0;
  const ctl = new FastAgiInController(
    { host: '127.0.0.1', port: '0' },
    recordingView(),
    keys,
    { send: (p, msg) => out.push({ port: p, msg }), listening: (a) => (port = a.port) },
    undefined,
    {},
  );
  await ctl.listen();
  return { ctl, out, port: () => port };
}

function simCall(port: number, variables: Record<string, string>, persona: Persona): Promise<AgiCallResult> {
  return runAgiCall({
    host: '127.0.0.1',
    port,
    channel: 'Local/+15550800@from-internal-00000001;1',
    uniqueid: `${Date.now() / 1000}`,
    variables,
    persona,
    speed: 10,
    recordingsRoot: dir,
    lingerMs: 2000,
  });
}

describe("the default flow's voicemail path on the simulator", () => {
  const settings = {
    voicemail: { message: 'Hi {{contact.name}}, this is Acme. Please call us back.', beepSilenceMs: 1500 },
  };

  async function run(persona: Persona, vars: Record<string, string>, campaignSettings: Record<string, unknown>) {
    const s = await agiServer();
    try {
      const ended = simCall(s.port(), { ...vars, CALL_TOKEN: givenCall(vars.CALL_ID) }, persona);
      const started = await waitFor(() => s.out.find((o) => o.port === 0), 5000, 'the session msg');
      const msg: DialerMsg = {
        ...started.msg,
        campaign: { id: 3, name: 'c', timezone: 'UTC', settings: campaignSettings },
      };
      msg.call!.contact = { name: 'John' };
      const llm = new LlmTurnController({ engine: 'scripted' }, recordingView(), keys, {});
      const replied = (await llm.handle(msg, ac()))!;
      const speak = new TtsSpeakController({ engine: 'sim', audioDir: dir }, recordingView(), keys, undefined, {});
      const spoken = await speak.handle(replied, ac());
      await new AgiHangupController({}, recordingView(), keys).handle(spoken);
      const result = await ended;
      return { msg: spoken, result };
    } finally {
      await s.ctl.close();
    }
  }

  test('MACHINE: the message waits for the end of the greeting and beep, then plays; outcome machine', async () => {
    const { msg, result } = await run(
      { amd: 'MACHINE', voicemail: { greetingMs: 4000, beepMs: 500 } },
      { CALL_ID: '55', AMDSTATUS: 'MACHINE', AMDCAUSE: 'LONGGREETING-2000-2000', AMD_PATH: 'machine' },
      settings,
    );
    expect(msg.call?.amd).toEqual({ status: 'MACHINE', cause: 'LONGGREETING-2000-2000', path: 'machine' });
    expect(msg.reply).toMatchObject({ done: true, source: 'voicemail', action: { type: 'voicemail', drop: true } });
    expect(msg.payload).toBe('Hi John, this is Acme. Please call us back.');
    expect(msg.call?.outcome).toBe('machine');
    expect(msg.voicemail).toMatchObject({ dropped: true, beepWait: 'SILENCE' });
    const cmds = result.transcript.filter((t) => t.dir === 'cmd');
    const wfs = cmds.findIndex((t) => /^EXEC "?WaitForSilence"? "?1500,1,20"?$/.test(t.line));
    const play = cmds.findIndex((t) => t.line.startsWith('STREAM FILE'));
    expect(wfs).toBeGreaterThan(-1);
    expect(play).toBeGreaterThan(wfs);
    expect(cmds.filter((t) => t.line.startsWith('STREAM FILE'))).toHaveLength(1);
    // the message started after 4 s of greeting, 0.5 s of beep and 1.5 s of silence (simulated time, speed 10)
    expect(cmds[play].atMs * 10).toBeGreaterThanOrEqual(6000);
  });

  test('MACHINE without a message: nothing is played, the call ends with outcome machine', async () => {
    const { msg, result } = await run(
      { amd: 'MACHINE', voicemail: { greetingMs: 2000 } },
      { CALL_ID: '56', AMDSTATUS: 'MACHINE', AMD_PATH: 'machine' },
      {},
    );
    expect(msg.reply).toMatchObject({ done: true, action: { type: 'voicemail', drop: false } });
    expect(msg.call?.outcome).toBe('machine');
    expect(msg.voicemail).toEqual({ dropped: false });
    const cmds = result.transcript.filter((t) => t.dir === 'cmd').map((t) => t.line);
    expect(cmds.some((l) => l.startsWith('STREAM FILE') || l.includes('WaitForSilence'))).toBe(false);
    expect(cmds.some((l) => l.startsWith('HANGUP'))).toBe(true);
  });

  test('NOTSURE (the dialplan said human) goes to the conversation', async () => {
    const { msg } = await run(
      { amd: 'NOTSURE' },
      { CALL_ID: '57', AMDSTATUS: 'NOTSURE', AMDCAUSE: 'TOOLONG-5000', AMD_PATH: 'human' },
      { ...settings, greeting: 'Hello {{contact.name}}' },
    );
    expect(msg.call?.amd).toMatchObject({ status: 'NOTSURE', path: 'human' });
    expect(msg.reply).toMatchObject({ text: 'Hello John', done: false, source: 'greeting' });
    expect(msg.call?.outcome).toBeUndefined();
    expect(msg.voicemail).toBeUndefined();
  });

  test('the machine hangs up while we wait for its beep: an ending, not a failure', async () => {
    const { msg } = await run(
      { amd: 'MACHINE', voicemail: { greetingMs: 8000 }, hangupAfterMs: 2000 },
      { CALL_ID: '58', AMDSTATUS: 'MACHINE', AMD_PATH: 'machine' },
      settings,
    );
    expect(msg.playback).toMatchObject({ hungUp: true });
    expect(msg.call).toMatchObject({ hungUp: true, outcome: 'machine' });
    expect(msg.voicemail).toMatchObject({ dropped: false, beepWait: 'HANGUP' });
  });
});
