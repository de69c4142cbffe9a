/**
 * ari-originate's close (a Deploy removed it or changed its Asterisk settings) hangs up the calls it
 * follows: their conversations hear their goodbye first, through their AGI session, and only then is
 * the channel hung up through ARI; a goodbye that never comes holds the close no longer than its bound.
 * Real pieces: the Asterisk simulator (ARI + its AGI side) and fastagi-in's server, over sockets.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { AriOriginateController } from '../../src/controllers/ari-originate';
import { FastAgiInController } from '../../src/controllers/fastagi-in';
import { AriService } from '../../src/ari/service';
import { startSimulator, type SimulatorHandle } from '../../src/sim/index';
import type { AgiCallResult } from '../../src/sim/agi-client';
import { sessionsByCallId } from '../../src/agi/registry';
import { endCallPolitely, forgetCall, noteVoice } from '../../src/calls/goodbye';
import { encodeWav } from '../../src/audio/wav';
import type { DialerMsg } from '../../src/types/msg';
import { waitFor } from '../helpers/wait';
import { keys, recordingView } from './view';

const source = { id: 'n-bye', type: 'ari-originate', name: 'dial' };

let sim: SimulatorHandle;
let service: AriService;
let agi: FastAgiInController;
let dir: string;
const sessionsOut: DialerMsg[] = [];
/** What happened on the wire, in order: AGI commands sent to the call, ARI requests made by the dialer. */
const wire: { at: number; chan?: string; what: string }[] = [];
const agiDone = new Map<string, AgiCallResult>();

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-orig-bye-'));
  let port = 0;
  agi = new FastAgiInController(
    { host: '127.0.0.1', port: '0', answer: false },
    recordingView(),
    keys,
    { send: (p, msg) => p === 0 && sessionsOut.push(msg), listening: (a) => (port = a.port) },
    undefined,
    {},
  );
  await agi.listen();
  sim = await startSimulator({ speed: 20, agi: { host: '127.0.0.1', port } });
  sim.sim.on('agi-line', (chan: string, dir: string, line: string) => {
    if (dir === 'cmd') wire.push({ at: Date.now(), chan, what: `AGI ${line}` });
  });
  sim.sim.on('request', (method: string, pathname: string) =>
    wire.push({ at: Date.now(), what: `ARI ${method} ${pathname}` }),
  );
  sim.sim.on('agi-done', (chan: string, r: AgiCallResult) => agiDone.set(chan, r));
  service = new AriService({
    mode: 'manual',
    url: sim.url,
    username: sim.username,
    password: sim.password,
    app: 'bye',
  });
});
afterAll(async () => {
  await agi.close();
  await service.close();
  await sim.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A call placed by ari-originate, answered, its AGI session in conversation; its goodbye voice waits for `voiced`. */
async function answeredCall(id: number, phone: string, hooks: { politeCloseMs?: number } = {}) {
  sim.setPersona(phone, { dial: { behaviour: 'answer', ringMs: 50 } });
  const out: { port: 0 | 1; msg: DialerMsg }[] = [];
  const ctl = new AriOriginateController(
    { timeout: '30' },
    service,
    recordingView(),
    keys,
    { send: (port, msg) => out.push({ port, msg }), clone: (m) => structuredClone(m), source, ...hooks },
    { DIAL_ENDPOINT: 'PJSIP/{phone}@trunk' },
  );
  await ctl.handle({ call: { id, phone } });
  const chan = String(await waitFor(() => out.find((o) => o.port === 0)?.msg.call?.channelId, 10_000, 'answered'));
  await waitFor(() => sessionsOut.find((m) => String(m.call?.id) === String(id)), 10_000, 'the AGI session');
  const bye = path.join(dir, `bye-${id}`);
  fs.writeFileSync(`${bye}.wav`, encodeWav({ sampleRate: 8000, channels: 1, samples: new Int16Array(8000) })); // 1 s
  let voiced: () => void = () => undefined;
  const voicing = new Promise<void>((r) => (voiced = r));
  noteVoice(id, async () => {
    await voicing;
    return { path: bye, durationMs: 1000 };
  });
  /** The dialer's ARI hangups of this channel, and this call's AGI commands, in order. */
  const seen = () =>
    wire
      .filter((w) => w.chan === chan || w.what === `ARI DELETE /ari/channels/${chan}`)
      .filter((w) => !w.what.startsWith('AGI GET'))
      .map((w) => w.what);
  return { ctl, chan, bye, voiced: () => voiced(), seen };
}

test.each([
  ['in conversation', false],
  ['already saying its goodbye (fastagi-in closed, or a drain)', true],
])(
  'close with a call %s: the goodbye is heard to its end, then the call is hung up',
  async (_what, alreadyEnding) => {
    const id = alreadyEnding ? 4302 : 4301;
    const c = await answeredCall(id, alreadyEnding ? '+15554302' : '+15554301');
    try {
      if (alreadyEnding) expect(endCallPolitely(id, 'the dialer is shutting down')).toBe(1);
      let closed = false;
      const closing = c.ctl.close().then(() => (closed = true));
      // the close ends the conversation politely (or finds it ending) and waits for it
      await waitFor(() => sessionsByCallId(String(id))[0]?.ending, 5000, 'the session ending');
      expect(closed).toBe(false);
      expect(c.seen()).toEqual([]); // nothing said yet, not hung up
      c.voiced(); // the goodbye's audio is ready
      await closing;
      const r = await waitFor(() => agiDone.get(c.chan), 5000, 'the AGI side done');
      expect(r.hungUpBy).toBe('agi');
      // the goodbye played in full, then AGI's HANGUP; a hangup through ARI, if any, only after them
      const seen = c.seen();
      expect(seen.slice(0, 2)).toEqual([`AGI STREAM FILE "${c.bye}" ""`, 'AGI HANGUP']);
      expect(seen.slice(2).every((w) => w.startsWith('ARI DELETE'))).toBe(true);
      const played = r.transcript.find((t) => t.dir === 'reply' && /endpos=/.test(t.line));
      expect(played?.line).toMatch(/^200 result=0 endpos=8000\b/);
      await waitFor(() => !sim.channels().some((ch) => ch.id === c.chan), 5000, 'the channel gone');
      expect(sessionsByCallId(String(id))).toEqual([]);
    } finally {
      c.voiced();
      forgetCall(id);
    }
  },
  20_000,
);

test('close with a goodbye that never comes: the close waits no longer than its bound, then hangs up', async () => {
  const id = 4303;
  const boundMs = 400;
  const c = await answeredCall(id, '+15554303', { politeCloseMs: boundMs });
  try {
    const t0 = Date.now();
    const closing = c.ctl.close();
    await waitFor(() => sessionsByCallId(String(id))[0]?.ending, 5000, 'the session ending');
    await closing;
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(boundMs - 5); // it waited for the goodbye...
    expect(took).toBeLessThan(boundMs + 3000); // ...no longer than its bound (the goodbye is still not ready)
    const hangup = wire.find((w) => w.what === `ARI DELETE /ari/channels/${c.chan}`);
    expect(hangup).toBeDefined();
    expect(hangup!.at - t0).toBeGreaterThanOrEqual(boundMs - 5);
    await waitFor(() => !sim.channels().some((ch) => ch.id === c.chan), 5000, 'the channel gone');
    c.voiced(); // the audio comes at last: too late, the channel is gone (the session then closes)
    const r = await waitFor(() => agiDone.get(c.chan), 5000, 'the AGI side done');
    expect(r.hungUpBy).toBe('caller'); // cut by the channel's hangup: no goodbye
    expect(c.seen().filter((w) => w.startsWith('AGI'))).toEqual([]);
  } finally {
    c.voiced(); // lets the session's own wait for its goodbye end
    forgetCall(id);
  }
});
