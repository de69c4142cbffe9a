/** The simulator's AGI side against our FastAGI server, over real sockets. */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { execFileSync } from 'child_process';
import { AgiServer } from '../../src/agi/server';
import type { FastAgiSession } from '../../src/agi/session';
import { runAgiCall, type AgiCallOptions, type AgiCallResult } from '../../src/sim/agi-client';
import { encodeWav, parseWav } from '../../src/audio/wav';
import type { Persona } from '../../src/sim/persona';
import { waitFor } from '../helpers/wait';
import { testWith } from '../helpers/tools';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-agi-sim-'));
const hello = path.join(dir, 'hello'); // 1 s of tone, 8 kHz
const hello16 = path.join(dir, 'hello16'); // wrong rate for .wav
let server: AgiServer;
let port: number;
let script: (s: FastAgiSession) => Promise<void>;

beforeAll(async () => {
  const tone = new Int16Array(8000).map((_, i) => Math.round(Math.sin(i / 3) * 8000));
  fs.writeFileSync(hello + '.wav', encodeWav({ sampleRate: 8000, channels: 1, samples: tone }));
  fs.writeFileSync(hello16 + '.wav', encodeWav({ sampleRate: 16000, channels: 1, samples: new Int16Array(16000) }));
  server = new AgiServer({ port: 0 });
  server.on('session', (s: FastAgiSession) => {
    script(s).catch(() => s.close());
  });
  port = (await server.listen()).port;
});
afterAll(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function call(persona: Persona, extra: Partial<AgiCallOptions> = {}): Promise<AgiCallResult> {
  return runAgiCall({
    host: '127.0.0.1',
    port,
    script: 'dialer',
    channel: 'Local/+12125550101@callees-00000006;1',
    uniqueid: '1732486000.6',
    callerId: '+13105550000',
    variables: { CALL_ID: '42', CONTACT_PHONE: '+12125550101', CAMPAIGN_ID: '3' },
    persona,
    speed: 40,
    ...extra,
  });
}

const replies = (r: AgiCallResult) => r.transcript.filter((t) => t.dir !== 'cmd').map((t) => t.line);

test('environment block as Asterisk 22 sends it over FastAGI', async () => {
  let env: Record<string, string> = {};
  script = async (s) => {
    env = { ...s.env };
    s.close();
  };
  const r = await call({}, { args: ['42', 'campaign_id=3'] });
  expect(r.endedBy).toBe('server_closed');
  expect(Object.keys(env).slice(0, 4)).toEqual(['network', 'network_script', 'request', 'channel']);
  expect(env).toMatchObject({
    network: 'yes',
    network_script: 'dialer',
    request: `agi://127.0.0.1:${port}/dialer`,
    channel: 'Local/+12125550101@callees-00000006;1',
    type: 'Local',
    uniqueid: '1732486000.6',
    version: '22.10.1',
    callerid: '+13105550000',
    context: 'ai-dialer',
    extension: 's',
    priority: '1',
    enhanced: '0.0',
    accountcode: '',
    arg_1: '42',
    arg_2: 'campaign_id=3',
  });
});

test('a full scripted session: answer, play, record (silence), hangup', async () => {
  const rec = path.join(dir, 'turn1');
  const out: Record<string, unknown> = {};
  script = async (s) => {
    out.callId = await s.getVariable('CALL_ID');
    out.missing = await s.getVariable('NOPE');
    out.answer = await s.answer();
    out.play = await s.streamFile(hello);
    out.rec = await s.recordFile({ path: rec, maxMs: 20000, silenceSeconds: 2 });
    out.hangup = await s.hangup();
    s.close();
  };
  const r = await call({ utterances: ['Yes, this is me, go ahead.'] });
  expect(out.callId).toBe('42');
  expect(out.missing).toBeUndefined();
  expect(out.play).toEqual({ endpos: 8000, failed: false, hungUp: false });
  const recRes = out.rec as { file: string; durationMs: number; endedBy: string; endpos: number };
  expect(recRes.endedBy).toBe('silence_or_max');
  expect(recRes.file).toBe(rec + '.wav');
  expect(r).toMatchObject({ endedBy: 'server_closed', hungUp: true, hungUpBy: 'agi', recordings: [rec + '.wav'] });
  const lines = replies(r);
  expect(lines[0]).toBe('200 result=1 (42)');
  expect(lines[1]).toBe('200 result=0');
  expect(lines[2]).toBe('200 result=0');
  expect(lines[3]).toBe('200 result=0 endpos=8000');
  const m = /^200 result=(\d+) \(timeout\) endpos=(\d+)$/.exec(lines[4]);
  expect(m).not.toBeNull();
  expect(Number(m![1])).toBeGreaterThan(0); // silence: result is NOT 0 on Asterisk 22
  expect(lines.slice(5)).toEqual(['200 result=1', 'HANGUP']);
  // The recording: 8 kHz mono 16-bit, trimmed at the silence, with the text in a simu chunk.
  const wav = parseWav(fs.readFileSync(rec + '.wav'));
  expect(wav).toMatchObject({
    sampleRate: 8000,
    channels: 1,
    bitsPerSample: 16,
    simText: 'Yes, this is me, go ahead.',
  });
  expect(wav.samples.length).toBe(Number(m![2]));
  expect(wav.durationMs).toBeGreaterThan(1000);
  expect(wav.durationMs).toBeLessThan(3000); // speech only: the 2 s of trailing silence were trimmed
  const cmds = r.transcript.filter((t) => t.dir === 'cmd').map((t) => t.line);
  expect(cmds).toContain(`RECORD FILE "${rec}" "wav" "#" "20000" "0" "s=2"`);
});

test('silent callee: silence detection ends it; without silence detection it runs to the maximum with result=0', async () => {
  const res: unknown[] = [];
  script = async (s) => {
    res.push(await s.recordFile({ path: path.join(dir, 'quiet1'), maxMs: 20000, silenceSeconds: 1 }));
    res.push(await s.recordFile({ path: path.join(dir, 'quiet2'), maxMs: 1000 }));
    s.close();
  };
  const r = await call({ utterances: [] });
  const lines = replies(r);
  expect(lines[0]).toMatch(/^200 result=[1-9]\d* \(timeout\) endpos=0$/);
  expect(lines[1]).toBe('200 result=0 (timeout) endpos=8000');
  expect(parseWav(fs.readFileSync(path.join(dir, 'quiet2.wav'))).durationMs).toBe(1000);
  expect(res[1]).toMatchObject({ durationMs: 1000, endedBy: 'silence_or_max' });
});

test('DTMF escape ends the recording with (dtmf) and the key code; keys not in the escape set are ignored', async () => {
  const res: unknown[] = [];
  script = async (s) => {
    res.push(await s.recordFile({ path: path.join(dir, 'd1'), maxMs: 10000, silenceSeconds: 1, escapeDigits: '#' }));
    res.push(await s.recordFile({ path: path.join(dir, 'd2'), maxMs: 10000, silenceSeconds: 1, escapeDigits: '#' }));
    s.close();
  };
  const r = await call({
    utterances: [
      { text: 'one moment', dtmf: '#' },
      { text: 'two', dtmf: '5' },
    ],
  });
  const lines = replies(r);
  expect(lines[0]).toMatch(/^200 result=35 \(dtmf\) endpos=\d+$/);
  expect(lines[1]).toMatch(/^200 result=[1-9]\d* \(timeout\) endpos=\d+$/);
  expect(res[0]).toMatchObject({ endedBy: 'dtmf', digit: '#' });
});

test('caller hangs up mid recording: (hangup), then HANGUP, then 511 for everything', async () => {
  const out: Record<string, unknown> = {};
  script = async (s) => {
    out.rec = await s.recordFile({ path: path.join(dir, 'h1'), maxMs: 10000, silenceSeconds: 2 });
    // the (hangup) result comes first, the HANGUP line right after it: wait for that line, not a fixed time
    await waitFor(() => s.hungUp, 5000, 'the HANGUP line after (hangup)').catch(() => undefined);
    out.hungUp = s.hungUp;
    // Our session refuses to send after HANGUP; check the simulator's 511 with a raw line too.
    out.after = await s.answer().catch((e: Error & { kind?: string }) => e.kind);
    s.close();
  };
  const r = await call({ utterances: [{ text: 'I am busy, goodbye now', hangup: true }] });
  expect(out.rec).toMatchObject({ endedBy: 'hangup', hungUp: true });
  expect(out.hungUp).toBe(true);
  expect(out.after).toBe('hangup');
  const lines = replies(r);
  expect(lines[0]).toMatch(/^200 result=-1 \(hangup\) endpos=\d+$/);
  expect(lines[1]).toBe('HANGUP');
  expect(r).toMatchObject({ hungUp: true, hungUpBy: 'caller', endedBy: 'server_closed' });
  // The partial recording is on disk.
  expect(parseWav(fs.readFileSync(path.join(dir, 'h1.wav'))).samples.length).toBeGreaterThan(0);
});

test('the recording file is there while the callee talks (created as the recording starts, as Asterisk does), whole at the reply', async () => {
  const rec = path.join(dir, 'early');
  const out: Record<string, unknown> = {};
  script = async (s) => {
    let replied = false;
    const recording = s.recordFile({ path: rec, maxMs: 20000, silenceSeconds: 2 });
    void recording.then(() => (replied = true));
    // before the reply: the file exists (empty: the frames come at the end in the simulator)
    await waitFor(() => fs.existsSync(rec + '.wav'), 5000, 'the recording file to be created');
    out.sizeDuring = fs.statSync(rec + '.wav').size;
    out.replied = replied;
    out.rec = await recording;
    s.close();
  };
  // 1.5 s of pause, then speech and 2 s of silence: at speed 4, about a second of real time
  await call({ utterances: [{ text: 'yes that works for me', pauseMs: 1500 }] }, { speed: 4 });
  expect(out.replied).toBe(false);
  expect(out.sizeDuring).toBe(0);
  expect(out.rec).toMatchObject({ endedBy: 'silence_or_max' });
  expect(parseWav(fs.readFileSync(rec + '.wav')).samples.length).toBeGreaterThan(0);
});

test("a recording with no end (no maximum, no silence detection) stops at the simulator's 24 h cap with a reply, and leaves no file open", async () => {
  const rec = path.join(dir, 'endless');
  const open = () => fs.readdirSync('/proc/self/fd').length;
  const before = open();
  let reply: unknown;
  script = async (s) => {
    reply = await s.command(`RECORD FILE "${rec}" "wav" "#" "-1"`);
    s.close();
  };
  // 24 h of the callee's time in well under a second
  const r = await call({ utterances: [{ text: 'hello there' }] }, { speed: 200_000 });
  expect(r.endedBy).toBe('server_closed');
  expect(reply).toMatchObject({ result: 0 });
  expect(replies(r)[0]).toMatch(/^200 result=0 \(timeout\) endpos=\d+$/);
  expect(parseWav(fs.readFileSync(rec + '.wav')).samples.length).toBeGreaterThan(0);
  expect(open()).toBe(before);
});

test('511 after hangup and usage/unknown replies, on the wire', async () => {
  script = async (s) => {
    await s.command('FROBNICATE now').catch(() => undefined);
    await s.command('GET VARIABLE').catch(() => undefined);
    await s.command('EXEC NoSuchApp').catch(() => undefined);
    await s.exec('Wait', '0.1');
    await s.hangup();
    // Bypass our own fail-fast to see the simulator's dead-channel reply.
    (s as unknown as { _hungUp: boolean })._hungUp = false;
    await s.answer().catch(() => undefined);
    s.close();
  };
  const r = await call({});
  expect(replies(r)).toEqual([
    '510 Invalid or unknown command',
    '520-Invalid command syntax.  Proper usage follows:\nUsage: GET VARIABLE <variablename>\n520 End of proper usage.',
    '200 result=-2',
    '200 result=0',
    '200 result=1',
    'HANGUP',
    '511 Command Not Permitted on a dead channel or intercept routine',
  ]);
});

test('HANGUP during STREAM FILE: result=-1 with the position reached, then HANGUP', async () => {
  const out: Record<string, unknown> = {};
  script = async (s) => {
    out.first = await s.streamFile(hello);
    out.second = await s.streamFile(hello);
    s.close();
  };
  const r = await call({ hangupDuringPlayback: { index: 2, afterMs: 500 } });
  expect(out.first).toEqual({ endpos: 8000, failed: false, hungUp: false });
  expect(out.second).toEqual({ endpos: 4000, failed: false, hungUp: true });
  expect(replies(r).slice(-2)).toEqual(['200 result=-1 endpos=4000', 'HANGUP']);
  expect(r.hungUpBy).toBe('caller');
});

test('missing files and files at the wrong rate cannot be played: result=-1 endpos=0', async () => {
  const out: unknown[] = [];
  script = async (s) => {
    out.push(await s.streamFile(path.join(dir, 'does-not-exist'), { durationMs: 1000 }));
    out.push(await s.streamFile(hello16, { durationMs: 1000 }));
    out.push(await s.streamFile('beep', { durationMs: 1000 })); // stock sounds are not guaranteed
    s.close();
  };
  const r = await call({});
  expect(replies(r)).toEqual(['200 result=-1 endpos=0', '200 result=-1 endpos=0', '200 result=-1 endpos=0']);
  for (const o of out) expect(o).toEqual({ endpos: 0, failed: true, hungUp: false });
});

test('RECORD FILE into a directory that does not exist: (writefile)', async () => {
  let err: unknown;
  script = async (s) => {
    err = await s.recordFile({ path: path.join(dir, 'no', 'such', 'dir', 'r'), maxMs: 1000 }).catch((e) => e);
    s.close();
  };
  const r = await call({ utterances: ['hello'] });
  expect(replies(r)).toEqual(['200 result=-1 (writefile)']);
  expect(err).toMatchObject({ stage: 'record', kind: 'internal' });
});

test('the far end hangs up (abort signal) during playback; the session sees HANGUP', async () => {
  const ac = new AbortController();
  const out: Record<string, unknown> = {};
  script = async (s) => {
    s.once('hangup', () => (out.event = true));
    setTimeout(() => ac.abort(), 300); // well inside the 1 s playback
    out.play = await s.streamFile(hello, { durationMs: 1000 });
    out.play2 = await s.streamFile(hello).catch((e: Error & { kind?: string }) => e.kind);
    s.close();
  };
  const r = await call({}, { signal: ac.signal, speed: 1 });
  expect(out.play).toMatchObject({ failed: false, hungUp: true });
  expect((out.play as { endpos: number }).endpos).toBeLessThan(8000);
  expect(out.event).toBe(true);
  expect(out.play2).toBe('hangup');
  expect(r).toMatchObject({ hungUp: true, hungUpBy: 'caller' });
});

test('persona hangupAfterMs while idle sends HANGUP asynchronously', async () => {
  let kind: string | undefined;
  script = async (s) => {
    await new Promise<void>((resolve) => s.once('hangup', () => resolve()));
    kind = await s.getVariable('X').then(
      () => 'ok',
      (e: Error & { kind?: string }) => e.kind,
    );
    s.close();
  };
  const r = await call({ hangupAfterMs: 400 });
  expect(kind).toBe('hangup');
  expect(replies(r)).toEqual(['HANGUP']);
});

test('no server: the call ends with connect_failed, never throws', async () => {
  const probe = new AgiServer({ port: 0 });
  const p = (await probe.listen()).port;
  await probe.close();
  const r = await runAgiCall({
    host: '127.0.0.1',
    port: p,
    channel: 'PJSIP/x-1',
    uniqueid: '1.1',
    variables: {},
    persona: {},
  });
  expect(r.endedBy).toBe('connect_failed');
  expect(r.error).toMatch(/ECONNREFUSED|connect/);
});

const hasEspeak = (() => {
  try {
    execFileSync('espeak-ng', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
testWith(
  'espeak-ng',
  hasEspeak,
  'apt-get install espeak-ng',
)('speech: espeak-ng gives real speech at 8 kHz with the text attached', async () => {
  const rec = path.join(dir, 'espeak');
  script = async (s) => {
    await s.recordFile({ path: rec, maxMs: 20000, silenceSeconds: 1 });
    s.close();
  };
  await call({ utterances: ['Tuesday at ten works for me.'] }, { speech: 'espeak' });
  const wav = parseWav(fs.readFileSync(rec + '.wav'));
  expect(wav.sampleRate).toBe(8000);
  expect(wav.simText).toBe('Tuesday at ten works for me.');
  expect(wav.durationMs).toBeGreaterThan(800);
  const peak = wav.samples.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  expect(peak).toBeGreaterThan(1000);
});

test('tolerates a missing persona and values with line breaks (they never reach the wire as breaks)', async () => {
  let env: Record<string, string> = {};
  let v: string | undefined;
  script = async (s) => {
    env = { ...s.env };
    v = await s.getVariable('ODD');
    s.close();
  };
  const r = await runAgiCall({
    host: '127.0.0.1',
    port,
    channel: 'PJSIP/trunk-1',
    uniqueid: '1.2',
    callerId: '+1212\nHANGUP',
    variables: { ODD: 'a\r\nb' },
    persona: undefined as unknown as Persona,
  });
  expect(r.endedBy).toBe('server_closed');
  expect(env.callerid).toBe('+1212 HANGUP');
  expect(v).toBe('a  b');
});

test('the server drops the connection mid RECORD FILE: the simulator keeps the partial file and ends cleanly', async () => {
  const rec = path.join(dir, 'dropped');
  let err: unknown;
  script = async (s) => {
    setTimeout(() => s.destroy(), 100);
    err = await s.recordFile({ path: rec, maxMs: 20000, silenceSeconds: 5 }).catch((e) => e);
  };
  const r = await call({ utterances: ['This is a long answer that will be cut off by the server.'] }, { speed: 1 });
  expect(r.endedBy).toBe('server_closed');
  expect(err).toMatchObject({ stage: 'agi', kind: 'network' });
  await waitForFile(rec + '.wav');
  const wav = parseWav(fs.readFileSync(rec + '.wav'));
  expect(wav.durationMs).toBeGreaterThan(0);
  expect(wav.durationMs).toBeLessThan(1000);
});

async function waitForFile(p: string): Promise<void> {
  const { waitFor } = await import('../helpers/wait');
  await waitFor(() => fs.existsSync(p) && fs.statSync(p).size > 44, 5000, `${p} to be written`);
}
