/**
 * A drain's goodbye on a streaming call meets the flow's own ending: the session refuses the flow's next
 * step (as a hangup), so the flow reaches its agi-hangup node while the goodbye is still being
 * synthesised or played on the AudioSocket stream. The goodbye is heard in full all the same, then the
 * media ends and AGI hangs up; a transfer asked for meanwhile does not cut it either (nor is it made).
 * The session's own wait for the goodbye's audio (goodbyeWaitMs) holds on the stream too: given up, the
 * media ends without it and AGI hangs up. Real sockets: fastagi-in's controller (or our AGI server) with
 * its AudioSocket server, the simulator's AGI and AudioSocket callee.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { FastAgiInController } from '../../src/controllers/fastagi-in';
import { AgiHangupController } from '../../src/controllers/agi-hangup';
import { AgiServer } from '../../src/agi/server';
import type { FastAgiSession } from '../../src/agi/session';
import { endCallPolitely, endSessionPolitely, forgetCall, noteVoice, type GoodbyeVoice } from '../../src/calls/goodbye';
import { AudioSocketServer } from '../../src/media/audiosocket';
import { handOffMedia } from '../../src/media/handoff';
import { getMedia } from '../../src/media/registry';
import { encodeWav } from '../../src/audio/wav';
import { runAgiCall, type AgiCallResult } from '../../src/sim/agi-client';
import type { DialerMsg } from '../../src/types/msg';
import { TestEndpointer } from '../helpers/test-endpointer';
import { waitFor } from '../helpers/wait';
import { hangupNodeDuringGoodbye } from '../helpers/goodbye';
import { givenCall } from '../helpers/call-token';
import { keys, recordingView } from '../controllers/view';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-stream-bye-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The goodbye: 1.5 s of tone, 75 frames of 20 ms. */
const GOODBYE_FRAMES = 75;

function tone(frames: number): Int16Array {
  const s = new Int16Array(frames * 160);
  for (let i = 0; i < s.length; i++) s[i] = Math.round(6000 * Math.sin((2 * Math.PI * 440 * i) / 8000));
  return s;
}

/**
 * A streaming call (silent callee) whose tts-speak noted a voice: the goodbye's audio is ready when
 * `voiced()` is called (before: it is being synthesised).
 */
async function streamingCall(id: number) {
  const out: { port: 0 | 1; msg: DialerMsg }[] = [];
  let port = 0;
  const ctl = new FastAgiInController(
    { host: '127.0.0.1', port: '0', media: 'stream' },
    recordingView(),
    keys,
    {
      send: (p, msg) => out.push({ port: p, msg }),
      listening: (a) => (port = a.port),
      endpointer: () => new TestEndpointer(),
    },
    undefined,
    {},
  );
  await ctl.listen();
  const bye = path.join(dir, `bye-${id}`);
  fs.writeFileSync(`${bye}.wav`, encodeWav({ sampleRate: 8000, channels: 1, samples: tone(GOODBYE_FRAMES) }));
  let voiced: () => void = () => undefined;
  const voicing = new Promise<void>((r) => (voiced = r));
  const ended: Promise<AgiCallResult> = runAgiCall({
    host: '127.0.0.1',
    port,
    channel: `PJSIP/trunk-0000${id}`,
    uniqueid: `${Date.now() / 1000}`,
    callerId: '+12125550101',
    variables: { CALL_ID: String(id), CALL_TOKEN: givenCall(id) },
    persona: { utterances: [{ silent: true }] },
    lingerMs: 2000,
  });
  const started = await waitFor(() => out.find((o) => o.port === 0), 5000, 'the session msg');
  expect(started.msg.call?.media).toBe('stream');
  const media = getMedia(started.msg.call?.sessionId as string);
  if (!media) throw new Error('no media for the call');
  noteVoice(id, async () => {
    await voicing;
    return { path: bye, durationMs: GOODBYE_FRAMES * 20 };
  });
  /** The call as the callee lived it: the goodbye heard in full on the stream, then the media ended, then HANGUP. */
  const heardGoodbyeThenHangup = async () => {
    const r = await ended;
    expect(r.audioSocket).toHaveLength(1);
    const stream = r.audioSocket[0];
    expect(stream.heard.reduce((n, p) => n + p.frames, 0)).toBe(GOODBYE_FRAMES);
    expect(stream.framesReceived).toBe(GOODBYE_FRAMES);
    expect(stream.endedBy).toBe('server_hangup'); // the media was ended by us, after the goodbye
    const cmds = r.transcript.filter((t) => t.dir === 'cmd' && !t.line.startsWith('GET FULL VARIABLE'));
    expect(cmds.map((t) => t.line.split(' ')[0])).toEqual(['EXEC', 'HANGUP']);
    expect(r.hungUpBy).toBe('agi');
  };
  const done = async () => {
    forgetCall(id);
    voiced();
    await ctl.close();
  };
  return { msg: started.msg, media, voiced: () => voiced(), heardGoodbyeThenHangup, done };
}

test('the flow reaching its hangup node while a streaming call’s goodbye is synthesised does not cut the goodbye', async () => {
  const c = await streamingCall(4301);
  try {
    await hangupNodeDuringGoodbye(c, 4301, c.msg);
  } finally {
    await c.done();
  }
}, 20000);

test('the flow reaching its hangup node while a streaming call’s goodbye plays does not cut the goodbye', async () => {
  const c = await streamingCall(4302);
  try {
    c.voiced();
    expect(endCallPolitely(4302, 'the dialer is shutting down')).toBe(1);
    await waitFor(() => c.media.isPlaying, 5000, 'the goodbye to play');
    const [out] = await new AgiHangupController({}, recordingView(), keys, undefined, {}).handle(c.msg);
    await c.heardGoodbyeThenHangup();
    expect(out?.call).toMatchObject({ hungUp: true, hungUpBy: 'agi' });
  } finally {
    await c.done();
  }
}, 20000);

test.each(['blind', 'attended'])(
  'a transfer (%s) reaching the hangup node while a streaming call’s goodbye plays: the goodbye in full, then the hangup, no transfer',
  async (mode) => {
    const id = mode === 'blind' ? 4303 : 4304;
    const c = await streamingCall(id);
    try {
      c.voiced();
      expect(endCallPolitely(id, 'the dialer is shutting down')).toBe(1);
      await waitFor(() => c.media.isPlaying, 5000, 'the goodbye to play');
      const reply = { text: 'Let me put you through.', done: true, action: { type: 'transfer', destination: '200' } };
      const msg: DialerMsg = { ...c.msg, reply };
      const handled = new AgiHangupController({ transferMode: mode }, recordingView(), keys, undefined, {}).handle(msg);
      // what the callee heard first: a transfer the session refused must not have cut the goodbye either
      const [heard, outs] = await Promise.allSettled([c.heardGoodbyeThenHangup(), handled]);
      if (heard.status === 'rejected') throw heard.reason;
      if (outs.status === 'rejected') throw outs.reason;
      const [out, back] = outs.value;
      expect(back).toBeNull();
      expect(out?.call).toMatchObject({ hungUp: true, hungUpBy: 'agi' });
      expect(out?.call?.transferredTo).toBeUndefined();
    } finally {
      await c.done();
    }
  },
  20000,
);

/**
 * The session's own wait for the goodbye (`goodbyeWaitMs`, here 300 ms) on a streaming call, with no flow
 * reaching its hangup node to end the media: our AGI server hands the call to our AudioSocket server
 * (as fastagi-in does) and the call is ended politely.
 */
describe('the session gives up waiting for a streaming call’s goodbye', () => {
  let agi: AgiServer;
  let audio: AudioSocketServer;
  let advertise: string;
  let onSession: (s: FastAgiSession) => void = () => undefined;

  beforeAll(async () => {
    agi = new AgiServer({ port: 0, goodbyeWaitMs: 300 });
    agi.on('session', (s: FastAgiSession) => onSession(s));
    await agi.listen();
    audio = new AudioSocketServer();
    advertise = `127.0.0.1:${(await audio.listen()).port}`;
  });
  afterAll(async () => {
    await agi.close();
    await audio.close();
  });

  /** A silent callee whose session is handed to the media, then ended politely with `voice` as its goodbye. */
  async function endedPolitely(id: number, voice: GoodbyeVoice): Promise<AgiCallResult> {
    const handedOff = new Promise<FastAgiSession>((resolve, reject) => {
      onSession = (s) => {
        s.callId = String(id);
        handOffMedia(s, { server: audio, advertise, endpointer: () => new TestEndpointer() }).then(
          () => resolve(s),
          reject,
        );
      };
    });
    const ended = runAgiCall({
      host: '127.0.0.1',
      port: agi.address().port,
      channel: `PJSIP/trunk-0000${id}`,
      uniqueid: `${Date.now() / 1000}`,
      variables: { CALL_ID: String(id) },
      persona: { utterances: [{ silent: true }] },
      lingerMs: 2000,
    });
    const s = await handedOff;
    noteVoice(id, voice);
    try {
      expect(endSessionPolitely(s, 'the dialer is shutting down')).toBe(true);
      let result: AgiCallResult | undefined;
      void ended.then((r) => (result = r));
      return await waitFor(() => result, 5000, 'the call to end');
    } finally {
      forgetCall(id);
    }
  }

  test('a goodbye whose audio never comes: the media ends without it and AGI hangs up', async () => {
    const r = await endedPolitely(4305, () => new Promise(() => undefined));
    expect(r.audioSocket).toHaveLength(1);
    expect(r.audioSocket[0].framesReceived).toBe(0);
    expect(r.audioSocket[0].endedBy).toBe('server_hangup');
    const cmds = r.transcript.filter((t) => t.dir === 'cmd').map((t) => t.line.split(' ')[0]);
    expect(cmds).toEqual(['EXEC', 'HANGUP']);
    expect(r.hungUpBy).toBe('agi');
  }, 20000);

  test('a goodbye still playing when the wait runs out is played to its end, then AGI hangs up', async () => {
    const bye = path.join(dir, 'bye-4306');
    fs.writeFileSync(`${bye}.wav`, encodeWav({ sampleRate: 8000, channels: 1, samples: tone(GOODBYE_FRAMES) }));
    const r = await endedPolitely(4306, async () => ({ path: bye, durationMs: GOODBYE_FRAMES * 20 }));
    expect(r.audioSocket).toHaveLength(1);
    expect(r.audioSocket[0].framesReceived).toBe(GOODBYE_FRAMES); // 1.5 s, well past the 300 ms wait
    expect(r.audioSocket[0].endedBy).toBe('server_hangup');
    const cmds = r.transcript.filter((t) => t.dir === 'cmd').map((t) => t.line.split(' ')[0]);
    expect(cmds).toEqual(['EXEC', 'HANGUP']);
    expect(r.hungUpBy).toBe('agi');
  }, 20000);
});
