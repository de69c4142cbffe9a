/**
 * Stream mode on a real Asterisk 22.10.1 with the shipped asterisk-config/ (see ./asterisk.ts): an ARI
 * originate reaches ai-dialer-agi, our FastAGI session runs EXEC AudioSocket with a per-call uuid, and
 * the conversation runs over our AudioSocket server. The callee is a Local channel in a test dialplan
 * that plays a WAV (espeak-ng speech) and records what it hears (MixMonitor, receive side).
 *
 * Asserted: Asterisk speaks the AudioSocket protocol as our server expects (uuid first, 8 kHz 20 ms
 * frames in real time); the endpointer (WebRTC VAD) cuts the callee's answer at the right length; our
 * prompts reach the callee (in its recording, at their length); caller speech over a prompt stops it
 * (barge-in) and is the next utterance; ending the media returns the EXEC with result 0 so AGI has
 * control again (GET VARIABLE, HANGUP); nothing on Asterisk's console is an ERROR.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { performance } from 'perf_hooks';
import type { FastAgiSession } from '../../src/agi/session';
import { AudioSocketServer } from '../../src/media/audiosocket';
import { Endpointer } from '../../src/media/endpointer';
import { endMedia, handOffMedia } from '../../src/media/handoff';
import { encodeWav, parseWav } from '../../src/audio/wav';
import { utteranceAudio } from '../../src/sim/audio-utterance';
import { pacer } from '../../src/media/pacer';
import {
  describeReal,
  startShipped,
  startDialerSide,
  stopAll,
  frameLevels,
  loudRuns,
  problems,
  type DialerSide,
  type Instance,
} from './asterisk';

const d = describeReal({ espeak: true });

/** 20 ms frame levels (mean absolute sample) of a recording (a file, or samples). */
function levels(src: string | Int16Array): number[] {
  return frameLevels(typeof src === 'string' ? parseWav(fs.readFileSync(src)).samples : src, 'meanAbs');
}

d('stream mode (AudioSocket) on a real Asterisk 22', () => {
  let ast: Instance;
  let side: DialerSide;
  let media: AudioSocketServer;
  let advertise: string;
  let dir: string;
  let answerMs = 0;
  let greeting: Int16Array;
  let reply: Int16Array;
  const speech = async (text: string) => utteranceAudio(text, 'espeak');

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ra-stream-'));
    const answer = await speech('Yes, this is Anna speaking.');
    // the speech itself (espeak pads its WAV with silence): first to last loud frame
    const r = loudRuns(levels(answer), 200);
    answerMs = r[r.length - 1][1] - r[0][0];
    fs.writeFileSync(path.join(dir, 'answer.wav'), encodeWav({ sampleRate: 8000, channels: 1, samples: answer }));
    // our prompts are ready before the calls (synthesis under load must not shift them into the callee's turn)
    greeting = await speech('Hello, this is the dialer calling.');
    reply = await speech('Thank you, goodbye.');
    const objection = await speech('Wait, I have a question about that.');
    fs.writeFileSync(path.join(dir, 'objection.wav'), encodeWav({ sampleRate: 8000, channels: 1, samples: objection }));
    ast = await startShipped({
      testModules: ['app_playtones.so'],
      testDialplan: [
        '[ra-stream-callees]',
        '; listens to our greeting, answers, then stays on the line in silence; records what it hears',
        'exten => +15550901,1,Answer()',
        ` same => n,MixMonitor(${dir}/both-\${CALL_ID}.wav,r(${dir}/heard-\${CALL_ID}.wav))`,
        ' same => n,Playtones(0)',
        ' same => n,Wait(4)',
        ' same => n,StopPlaytones()',
        ` same => n,Playback(${dir}/answer)`,
        ' same => n,Playtones(0)',
        ' same => n,Wait(20)',
        ' same => n,Hangup()',
        '; talks over our long prompt 1.5 s after the call is up',
        'exten => +15550902,1,Answer()',
        ` same => n,MixMonitor(${dir}/both-\${CALL_ID}.wav,r(${dir}/heard-\${CALL_ID}.wav))`,
        ' same => n,Playtones(0)',
        ' same => n,Wait(2.5)',
        ' same => n,StopPlaytones()',
        ` same => n,Playback(${dir}/objection)`,
        ' same => n,Playtones(0)',
        ' same => n,Wait(20)',
        ' same => n,Hangup()',
        '',
      ].join('\n'),
    });
    side = await startDialerSide(ast, 'Local/{phone}@ra-stream-callees');
    media = new AudioSocketServer({ host: '127.0.0.1', port: 0 });
    advertise = `127.0.0.1:${(await media.listen()).port}`;
  }, 300_000);

  afterAll(async () => {
    await media?.close();
    await stopAll({ side, asterisks: [ast], dirs: [dir] });
  }, 60_000);

  test('a streaming turn: Asterisk streams the callee, the VAD cuts the answer, our prompts reach the callee, AGI gets control back', async () => {
    const seen: Record<string, any> = {};
    side.onSession = async (s: FastAgiSession) => {
      try {
        const t0 = performance.now();
        const m = await handOffMedia(s, { server: media, advertise, endpointer: () => Endpointer.create() });
        seen.handOffMs = performance.now() - t0;
        seen.greeting = await m.play(greeting);
        seen.greetingMs = Math.round(greeting.length / 8);
        const u = await m.nextUtterance({ timeoutMs: 8000 });
        seen.u = u && { ms: u.endMs - u.startMs, endpointMs: u.endpointMs, bargedIn: u.bargedIn };
        seen.replyMs = Math.round(reply.length / 8);
        seen.reply = await m.play(reply);
        if (u && seen.reply.firstFrameAt) seen.replyLatencyMs = seen.reply.firstFrameAt - u.speechEndAt;
        seen.receivedMs = m.receivedMs;
        seen.framesIn = m.conn.framesIn;
        seen.wallMs = performance.now() - t0;
        await endMedia(s.id);
        seen.afterMedia = await s.getVariable('CALL_ID');
        await s.hangup();
      } catch (err) {
        seen.error = err;
      } finally {
        s.close();
      }
    };
    // our pacer's tick lateness during the call: a stall of this process (CI load) delays the rest of a
    // prompt, which the callee hears as a gap; the checks below allow for what was measured, no more
    pacer.lateness.length = 0;
    pacer.jitterWindow = 100_000;
    await side.tracker.originate({ id: 's1', phone: '+15550901' });
    const o = await side.outcome('s1');
    pacer.jitterWindow = 0;
    // what a late tick could not catch up (3 frames) shifted the rest of the audio
    const stretchMs = pacer.lateness.reduce((sum, l) => sum + Math.max(0, l - 60), 0);
    expect(seen.error).toBeUndefined();
    expect(o.outcome).toBe('completed');
    // control came back to AGI after the media ended
    expect(seen.afterMedia).toBe('s1');
    // Asterisk sends 20 ms frames continuously and in real time (no frame lost or invented)
    // (a message may carry a partial frame: counted once whole)
    expect(Math.abs(seen.framesIn - seen.receivedMs / 20)).toBeLessThanOrEqual(2);
    expect(seen.receivedMs).toBeGreaterThan(seen.wallMs - 500);
    expect(seen.receivedMs).toBeLessThan(seen.wallMs + 100);
    // the callee's answer, cut by the VAD: its speech's length within 250 ms, 600 ms waited
    expect(seen.u).toBeDefined();
    expect(Math.abs(seen.u.ms - answerMs)).toBeLessThan(250);
    expect(seen.u.endpointMs).toBe(600);
    expect(seen.greeting).toMatchObject({ interrupted: false });
    expect(seen.reply).toMatchObject({ interrupted: false });
    // what the callee heard: our greeting, then our reply (4 s of the callee's turn between them), each
    // whole: the same loud content as the prompt's own audio, spread over its length (plus any stall)
    const heard = levels(path.join(dir, 'heard-s1.wav'));
    const groups = loudRuns(heard, 300, 1500);
    expect(groups.length).toBe(2);
    const loudMs = (lv: number[], from = 0, to = lv.length * 20) =>
      lv.slice(from / 20, to / 20).filter((l) => l >= 300).length * 20;
    for (const [[from, to], prompt, ms] of [
      [groups[0], greeting, seen.greetingMs],
      [groups[1], reply, seen.replyMs],
    ] as const) {
      // loud runs leave out espeak-ng's quiet onset and tail (up to ~250 ms each), which the played length counts
      expect(Math.abs(to - from - ms)).toBeLessThan(500 + stretchMs);
      expect(Math.abs(loudMs(heard, from, to) - loudMs(levels(prompt)))).toBeLessThan(200);
    }
    expect(problems(ast.output()).filter((l) => /audiosocket/i.test(l))).toEqual([]);
    console.log(
      `real Asterisk stream turn: hand-off ${Math.round(seen.handOffMs)} ms, answer ${seen.u.ms} ms (WAV ${answerMs} ms), ` +
        `reply latency ${Math.round(seen.replyLatencyMs)} ms (endpoint ${seen.u.endpointMs} ms); ` +
        `heard ${JSON.stringify(loudRuns(heard))}, our stalls ${Math.round(stretchMs)} ms`,
    );
  }, 60_000);

  test('barge-in on a real call: the callee talks over our prompt, it stops, and the speech is the next utterance', async () => {
    const seen: Record<string, any> = {};
    side.onSession = async (s: FastAgiSession) => {
      try {
        const m = await handOffMedia(s, { server: media, advertise, endpointer: () => Endpointer.create() });
        const long = await speech(
          'This is a long announcement about your appointment next week, with many details you may want to hear, and more after that.',
        );
        seen.longMs = Math.round(long.length / 8);
        const startedAt = m.receivedMs;
        seen.played = await m.play(long);
        seen.stoppedAtStream = m.receivedMs;
        seen.startedAt = startedAt;
        const u = await m.nextUtterance({ timeoutMs: 8000 });
        seen.u = u && { ms: u.endMs - u.startMs, bargedIn: u.bargedIn, startMs: u.startMs };
        await endMedia(s.id);
        await s.hangup();
      } catch (err) {
        seen.error = err;
      } finally {
        s.close();
      }
    };
    await side.tracker.originate({ id: 's2', phone: '+15550902' });
    await side.outcome('s2');
    expect(seen.error).toBeUndefined();
    expect(seen.played.interrupted).toBe(true);
    expect(seen.played.playedMs).toBeLessThan(seen.longMs - 1000);
    expect(seen.u).toMatchObject({ bargedIn: true });
    // stopped within the detector's onset (min speech 120 ms) plus a frame or two of the caller's speech start
    const stopAfterSpeechMs = seen.stoppedAtStream - seen.u.startMs;
    expect(stopAfterSpeechMs).toBeLessThan(250);
    // the callee heard our prompt stop: the first loud run ends near the barge-in, not at the prompt's end
    const runs = loudRuns(levels(path.join(dir, 'heard-s2.wav')));
    expect(runs[0][1] - runs[0][0]).toBeLessThan(seen.longMs - 1000);
    console.log(
      `real Asterisk barge-in: stopped ${stopAfterSpeechMs} ms of stream after the caller's speech began; played ${seen.played.playedMs} of ${seen.longMs} ms`,
    );
  }, 60_000);
});
