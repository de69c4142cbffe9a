/**
 * Voicemail handling and whole-call recording on a real Asterisk 22 with the shipped dialplan
 * (issue 15 items 3 and 4): AMD with the shipped default parameters on spoken greetings (espeak-ng),
 * the voicemail drop played after the beep (src/agi/voicemail.ts), and MixMonitor's one file per call
 * with both directions in it.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import type { FastAgiSession } from '../../src/agi/session';
import { readCall, type AgiCall } from '../../src/agi/call';
import { waitForBeepEnd, type BeepWaitResult } from '../../src/agi/voicemail';
import { amdArgs, AMD_DEFAULTS } from '../../src/campaign/call-settings';
import { parseWav } from '../../src/audio/wav';
import { waitFor } from '../helpers/wait';
import { recordingPathFor } from '../../src/calls/call-recordings';
import {
  describeReal,
  startShipped,
  startDialerSide,
  stopAll,
  frameLevels,
  loudRuns,
  speech,
  tone,
  type DialerSide,
  type Instance,
} from './asterisk';

const d = describeReal({ espeak: true });

/** 20 ms frames whose RMS is above `threshold`, as [startMs, endMs] runs (gaps under 600 ms joined). */
const voiced = (samples: Int16Array, rate: number, threshold = 300): Array<[number, number]> =>
  loudRuns(frameLevels(samples, 'rms', rate), threshold, 600);

const durMs = (wav: Buffer): number => parseWav(wav).durationMs;

function findFile(dir: string, name: RegExp): string | undefined {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const f = findFile(p, name);
      if (f) return f;
    } else if (name.test(e.name)) return p;
  }
  return undefined;
}

d('voicemail drop and whole-call recording on a real Asterisk 22', () => {
  let ast: Instance;
  let side: DialerSide;
  let audio: string;
  let greetingMs = 0;
  let beepEndMs = 0;
  let dropMs = 0;

  beforeAll(async () => {
    audio = fs.mkdtempSync(path.join(os.tmpdir(), 'ra-vm-'));
    const greeting = speech(
      'Hi, you have reached the voicemail of John Smith. I am not available to take your call right now. ' +
        'Please leave your name, your number and a short message after the tone, and I will call you back.',
    );
    greetingMs = durMs(greeting);
    fs.writeFileSync(path.join(audio, 'vm-greeting.wav'), greeting);
    fs.writeFileSync(path.join(audio, 'vm-beep.wav'), tone(600, 1000));
    beepEndMs = greetingMs + 600;
    fs.writeFileSync(path.join(audio, 'ann.wav'), speech('Hello, this is Ann speaking.'));
    fs.writeFileSync(path.join(audio, 'bob.wav'), speech('Hello?'));
    const drop = speech('Hello John, this is Acme calling about your renewal. Please call us back. Thank you.');
    dropMs = durMs(drop);
    fs.writeFileSync(path.join(audio, 'drop.wav'), drop);
    fs.writeFileSync(path.join(audio, 'prompt.wav'), tone(1500, 440));
    ast = await startShipped({
      // what docker-compose gives the Asterisk container: the recordings directory shared with Node-RED
      asteriskEnv: { RECORDINGS_DIR: path.join(audio, 'recordings') },
      testModules: ['app_playtones.so', 'app_record.so'],
      testDialplan: [
        '[ra-callees]',
        '; an answering machine: a spoken greeting, the beep, then it records what it hears (a line keeps',
        '; sending frames: silence from Playtones(0) while recording)',
        'exten => +15550800,1,Answer()',
        ` same => n,Playback(${audio}/vm-greeting)`,
        ` same => n,Playback(${audio}/vm-beep)`,
        ' same => n,Playtones(0)',
        ` same => n,Record(${audio}/left-message.wav,0,25,qk)`,
        ' same => n,Hangup()',
        '; a person who answers with a full sentence, then waits in silence',
        'exten => +15550900,1,Answer()',
        ` same => n,Playback(${audio}/ann)`,
        ' same => n,Playtones(0)',
        ' same => n,Wait(20)',
        '; a person who says "hello?" and waits (the whole-call recording test)',
        'exten => +15550901,1,Answer()',
        ` same => n,Playback(${audio}/bob)`,
        ' same => n,Playtones(0)',
        ' same => n,Wait(20)',
        '',
      ].join('\n'),
    });
    side = await startDialerSide(ast, 'Local/{phone}@ra-callees');
  }, 300_000); // the shared 2-core machine can take minutes to boot Asterisk

  afterAll(() => stopAll({ side, asterisks: [ast], dirs: [audio] }), 60_000);

  test('a machine (spoken greeting, then a beep) gets the drop after the beep; a person gets the conversation', async () => {
    const seen: Record<
      string,
      { call?: AgiCall; wait?: BeepWaitResult; played?: unknown; error?: unknown; t?: number }
    > = {};
    const t0: Record<string, number> = {};
    side.onSession = async (s: FastAgiSession) => {
      const id = (await s.getVariable('CALL_ID')) as string;
      const rec: (typeof seen)[string] = (seen[id] = {});
      try {
        rec.call = await readCall(s);
        if (rec.call.amd?.path === 'machine') {
          rec.wait = await waitForBeepEnd(s, { silenceMs: 1500, timeoutSeconds: 25 });
          rec.t = Date.now() - t0[id];
          rec.played = await s.streamFile(`${audio}/drop`);
        } else rec.played = await s.streamFile(`${audio}/prompt`);
        await s.hangup();
      } catch (err) {
        rec.error = err;
      } finally {
        s.close();
      }
    };
    t0.m1 = Date.now();
    await side.tracker.originate({
      id: 'm1',
      phone: '+15550800',
      amd: true,
      amdParams: amdArgs(AMD_DEFAULTS),
      record: true,
    });
    t0.h1 = Date.now();
    await side.tracker.originate({ id: 'h1', phone: '+15550900', amd: true });
    await waitFor(
      () => side.outcomes.some((x) => x.callId === 'm1') && side.outcomes.some((x) => x.callId === 'h1'),
      60_000,
      'calls',
    );
    expect(seen.m1.error).toBeUndefined();
    expect(seen.h1.error).toBeUndefined();
    // the shipped defaults: the long greeting is a machine, "Hello, this is Ann speaking." a person
    expect(seen.m1.call?.amd).toMatchObject({ status: 'MACHINE', path: 'machine' });
    expect(seen.h1.call?.amd).toMatchObject({ status: 'HUMAN', path: 'human' });
    // WaitForSilence returned on the silence after the beep, not at its timeout
    expect(seen.m1.wait).toMatchObject({ status: 'SILENCE', hungUp: false });
    // ... which came at least 1.5 s after the end of the beep (t counts from the originate)
    expect(seen.m1.t).toBeGreaterThanOrEqual(beepEndMs + 1500);
    expect(seen.m1.played).toMatchObject({ failed: false, hungUp: false });

    // what the machine recorded after its beep: the whole message, not its tail (a message played
    // during the greeting loses its start). Record() writes only frames it receives, and our side sends
    // none while it waits, so the file is the message alone.
    const left = parseWav(fs.readFileSync(path.join(audio, 'left-message.wav')));
    const runs = voiced(left.samples, left.sampleRate);
    expect(runs.length).toBeGreaterThan(0);
    const heard = runs[runs.length - 1][1] - runs[0][0];
    const dropRuns = voiced(parseWav(fs.readFileSync(path.join(audio, 'drop.wav'))).samples, 8000);
    const spoken = dropRuns[dropRuns.length - 1][1] - dropRuns[0][0];
    expect(heard).toBeGreaterThan(spoken * 0.9);
    expect(heard).toBeLessThan(dropMs * 1.1);
  }, 90_000);

  test('MixMonitor: one file per call, the callee and our side in it', async () => {
    let t: { answered?: number; prompt?: number } = {};
    side.onSession = async (s: FastAgiSession) => {
      try {
        t.answered = Date.now();
        await s.exec('Wait', '2.5'); // the callee's "Hello?" plays meanwhile
        t.prompt = Date.now();
        await s.streamFile(`${audio}/prompt`); // 1.5 s tone from our side
        await s.hangup();
      } finally {
        s.close();
      }
    };
    await side.tracker.originate({ id: '4242', phone: '+15550901', record: true });
    await side.outcome('4242');
    // <RECORDINGS_DIR>/calls/call-<id>.wav: where the call record says it is (src/calls/call-recordings.ts)
    const file = path.join(audio, 'recordings', recordingPathFor(4242));
    await waitFor(() => fs.existsSync(file) || undefined, 10_000, 'the recording');
    expect(recordingPathFor(4242)).toBe('calls/call-4242.wav');
    const wav = parseWav(fs.readFileSync(file));
    expect(wav.sampleRate).toBe(8000);
    const runs = voiced(wav.samples, wav.sampleRate);
    // the callee's "Hello?" near the start, our 1.5 s prompt about 2.5 s later
    expect(runs.length).toBeGreaterThanOrEqual(2);
    expect(runs[0][0]).toBeLessThan(1500);
    const ours = runs.find((r) => r[0] > runs[0][1] + 1000);
    expect(ours).toBeDefined();
    expect(ours![1] - ours![0]).toBeGreaterThan(1300);
    // the machine call of the test before has its own file; its id (m1) was filtered to digits
    expect(fs.existsSync(path.join(audio, 'recordings', 'calls', 'call-1.wav'))).toBe(true);
    expect(findFile(ast.workDir, /^call-.*\.wav$/)).toBeUndefined();
    t = {};
  }, 60_000);
});
