/**
 * Stream mode's media path end to end over real sockets: our FastAGI server hands the call's media
 * to our AudioSocket server (EXEC AudioSocket), the simulator streams the callee in real time,
 * utterances come out of the endpointer, replies go back as paced frames, barge-in stops them, and
 * ending the media gives the AGI session control back.
 */
import { performance } from 'perf_hooks';
import { AgiServer } from '../../src/agi/server';
import type { FastAgiSession } from '../../src/agi/session';
import { AudioSocketServer } from '../../src/media/audiosocket';
import { endMedia, handOffMedia } from '../../src/media/handoff';
import { getMedia } from '../../src/media/registry';
import type { MediaSession } from '../../src/media/session';
import { syntheticSpeech } from '../../src/audio/synthetic-speech';
import { runAgiCall, type AgiCallResult } from '../../src/sim/agi-client';
import type { Persona } from '../../src/sim/persona';
import { TestEndpointer } from '../helpers/test-endpointer';
import { Endpointer } from '../../src/media/endpointer';
import { testWith } from '../helpers/tools';
import { execFileSync } from 'child_process';

function has(bin: string): boolean {
  try {
    execFileSync('which', [bin], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

let agi: AgiServer;
let agiPort: number;
let media: AudioSocketServer;
let advertise: string;
let script: (s: FastAgiSession) => Promise<void>;

beforeAll(async () => {
  agi = new AgiServer({ port: 0 });
  agi.on('session', (s: FastAgiSession) => {
    script(s).catch(() => s.close());
  });
  agiPort = (await agi.listen()).port;
  media = new AudioSocketServer();
  advertise = `127.0.0.1:${(await media.listen()).port}`;
});
afterAll(async () => {
  await agi.close();
  await media.close();
});

function call(persona: Persona, speech: 'synthetic' | 'espeak' = 'synthetic'): Promise<AgiCallResult> {
  return runAgiCall({
    host: '127.0.0.1',
    port: agiPort,
    script: 'dialer',
    channel: 'Local/+12125550101@callees-00000006;1',
    uniqueid: '1732486000.6',
    variables: { CALL_ID: '42' },
    persona,
    speech,
  });
}

const tone = (ms: number) => syntheticSpeech('a prompt of ours', ms);

test('a conversation on the stream: utterances, paced replies, control back to AGI at the end', async () => {
  const log: Record<string, unknown> = {};
  script = async (s) => {
    const m = await handOffMedia(s, { server: media, advertise, endpointer: () => new TestEndpointer() });
    expect(getMedia(s.id)).toBe(m);
    const greet = await m.play(tone(600));
    log.greet = greet;
    const u1 = await m.nextUtterance({ timeoutMs: 5000 });
    log.u1 = u1 && { ms: u1.endMs - u1.startMs, text: u1.simText, endpointMs: u1.endpointMs };
    const t0 = performance.now();
    const reply = await m.play(tone(400));
    log.replyLatency = (reply.firstFrameAt ?? 0) - (u1?.speechEndAt ?? 0);
    log.firstFrameDelay = (reply.firstFrameAt ?? 0) - t0;
    log.reply = reply;
    await endMedia(s.id);
    // control is back: an ordinary AGI command works
    log.var = await s.getVariable('CALL_ID');
    await s.hangup();
    s.close();
  };
  const r = await call({ utterances: ['Yes, this is me.'] });
  expect(r.audioSocket).toHaveLength(1);
  const as = r.audioSocket[0];
  expect(as.endedBy).toBe('server_hangup');
  expect(r.transcript.find((t) => t.line.startsWith('EXEC'))).toBeDefined();
  expect(log.var).toBe('42');
  expect(r.hungUpBy).toBe('agi');
  // the greeting reached the callee whole (600 ms = 30 frames) and in real time
  // (a loaded machine may stall the loop past the callee's 300 ms prompt gap: count what came before it spoke)
  const before = as.heard.filter((h) => h.firstAt < as.said[0].startAt);
  expect(before.reduce((a, h) => a + h.frames, 0)).toBe(30);
  // paced, not dumped (all at once would take ~0 ms; ideal 580 ms): the pacer catches up after a stall of a
  // loaded machine by sending the frames it owes together, so the span is bounded loosely
  expect(before[before.length - 1].lastAt - before[0].firstAt).toBeGreaterThan(400);
  expect(log.greet).toMatchObject({ playedMs: 600, interrupted: false });
  expect(log.u1).toMatchObject({ text: 'Yes, this is me.', endpointMs: 600 });
  // our first reply frame goes out at once (no waiting for a pacer tick)
  expect(log.firstFrameDelay as number).toBeLessThan(5);
  expect(as.replyLatencyMs).toHaveLength(1);
}, 20000);

test('barge-in: caller speech stops the prompt, is recorded as interrupted, and becomes the next utterance', async () => {
  const out: Record<string, unknown> = {};
  script = async (s) => {
    const m: MediaSession = await handOffMedia(s, { server: media, advertise, endpointer: () => new TestEndpointer() });
    const played = await m.play(tone(4000));
    out.played = played;
    const u = await m.nextUtterance({ timeoutMs: 5000 });
    out.u = u && { text: u.simText, bargedIn: u.bargedIn };
    await endMedia(s.id);
    await s.hangup();
    s.close();
  };
  const r = await call({ utterances: [{ text: 'Stop, I have a question', bargeInAfterMs: 1000 }] });
  const p = out.played as { interrupted: boolean; playedMs: number; totalMs: number; bargeInStopMs: number };
  expect(p.interrupted).toBe(true);
  expect(p.totalMs).toBe(4000);
  // stopped about 1 s in: the callee spoke at 1000 ms, the detector needs 2 frames
  expect(p.playedMs).toBeGreaterThan(900);
  expect(p.playedMs).toBeLessThan(1300);
  expect(out.u).toEqual({ text: 'Stop, I have a question', bargedIn: true });
  // the callee's view: from its first word to the last frame of our prompt it heard
  const stop = r.audioSocket[0].bargeInStopMs;
  expect(stop).toHaveLength(1);
  expect(stop[0]).toBeLessThan(100);
}, 20000);

test('barge-in off, or only after N ms: the prompt plays on', async () => {
  const out: Array<{ interrupted: boolean; playedMs: number }> = [];
  script = async (s) => {
    const m = await handOffMedia(s, {
      server: media,
      advertise,
      endpointer: () => new TestEndpointer(),
      bargeIn: 'off',
    });
    out.push(await m.play(tone(1500)));
    m.bargeIn = { afterMs: 1200 };
    out.push(await m.play(tone(2000)));
    await endMedia(s.id);
    s.close();
  };
  await call({
    utterances: [
      { text: 'talking over you', bargeInAfterMs: 300 },
      { text: 'and again early', bargeInAfterMs: 200 },
    ],
  });
  expect(out[0]).toMatchObject({ interrupted: false, playedMs: 1500 });
  // the second utterance started at 200 ms, before barge-in was allowed (1200 ms): it plays on
  expect(out[1]).toMatchObject({ interrupted: false, playedMs: 2000 });
}, 20000);

test('silence: no utterance within the no-input time; the caller hanging up ends the media and the AGI', async () => {
  const out: Record<string, unknown> = {};
  script = async (s) => {
    const m = await handOffMedia(s, { server: media, advertise, endpointer: () => new TestEndpointer() });
    await m.play(tone(200)); // the callee answers our greeting
    out.none = await m.nextUtterance({ timeoutMs: 400 });
    out.u = (await m.nextUtterance({ timeoutMs: 5000 }))?.simText;
    out.after = await m.nextUtterance({ timeoutMs: 5000 });
    out.closed = m.closed;
    s.close();
  };
  const r = await call({ utterances: [{ text: 'bye now', pauseMs: 800, hangup: true }] });
  expect(out.none).toBeUndefined();
  expect(out.u).toBe('bye now');
  expect(out.after).toBeUndefined();
  expect(out.closed).toBe(true);
  expect(r.hungUpBy).toBe('caller');
  expect(r.transcript.some((t) => t.line === '200 result=-1')).toBe(true);
}, 20000);

test('noise is not speech to a detector tuned above it, and a hand-off to a dead media server fails cleanly', async () => {
  const out: Record<string, unknown> = {};
  script = async (s) => {
    try {
      await handOffMedia(s, { server: media, advertise: '127.0.0.1:1', endpointer: () => new TestEndpointer() });
    } catch (err) {
      out.err = (err as Error).message;
    }
    out.var = await s.getVariable('CALL_ID');
    s.close();
  };
  await call({});
  expect(out.err).toMatch(/media hand-off failed/);
  expect(out.var).toBe('42');
});

testWith('espeak-ng', has('espeak-ng'), 'apt-get install espeak-ng')(
  'the real endpointer (WebRTC VAD) on espeak-ng speech: the utterance, then a barge-in over our prompt',
  async () => {
    const out: Record<string, unknown> = {};
    script = async (s) => {
      const m = await handOffMedia(s, { server: media, advertise, endpointer: () => Endpointer.create() });
      await m.play(tone(300)); // the callee answers our greeting
      const u1 = await m.nextUtterance({ timeoutMs: 8000 });
      out.u1 = u1 && { text: u1.simText, endpointMs: u1.endpointMs };
      out.played = await m.play(tone(5000));
      const u2 = await m.nextUtterance({ timeoutMs: 8000 });
      out.u2 = u2 && { text: u2.simText, bargedIn: u2.bargedIn };
      await endMedia(s.id);
      s.close();
    };
    const r = await call(
      { utterances: ['Hello, who is calling?', { text: 'Wait, I have a question.', bargeInAfterMs: 1500 }] },
      'espeak',
    );
    expect(out.u1).toEqual({ text: 'Hello, who is calling?', endpointMs: 600 });
    expect(out.played).toMatchObject({ interrupted: true });
    expect(out.u2).toEqual({ text: 'Wait, I have a question.', bargedIn: true });
    const stop = r.audioSocket[0].bargeInStopMs;
    expect(stop).toHaveLength(1);
    // from the caller's first sound to the last prompt frame it heard: VAD onset (min speech 120 ms) + the path
    expect(stop[0]).toBeLessThan(250);
    out.stop = stop[0];
    console.log(`barge-in stop seen by the caller (real VAD): ${stop[0]} ms`);
  },
  30000,
);
