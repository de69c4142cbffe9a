/**
 * The AGI controllers driven directly (no Node-RED): fastagi-in's server with real AGI calls from
 * the simulator's AGI client, agi-record and agi-hangup on the live sessions, call rows through
 * the call-record service on PGlite.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { FastAgiInController } from '../../src/controllers/fastagi-in';
import { AgiRecordController } from '../../src/controllers/agi-record';
import { AgiHangupController } from '../../src/controllers/agi-hangup';
import { CallRecords } from '../../src/calls/records';
import { runAgiCall, type AgiCallResult } from '../../src/sim/agi-client';
import type { Db } from '../../src/store/db';
import type { DialerMsg } from '../../src/types/msg';
import { StageError } from '../../src/util/errors';
import { controlBus } from '../../src/events/control-bus';
import { pgliteTarget, type DbTarget } from '../helpers/db';
import { waitFor } from '../helpers/wait';
import { hangupNodeDuringGoodbye } from '../helpers/goodbye';
import { givenCall } from '../helpers/call-token';
import { keys, recordingView } from './view';
import { encodeWav } from '../../src/audio/wav';
import { endCallPolitely, forgetCall, noteVoice } from '../../src/calls/goodbye';

let target: DbTarget;
let db: Db;
let dir: string;

beforeAll(async () => {
  target = pgliteTarget();
  db = await target.open();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-ctl-agi-'));
});
afterAll(async () => {
  await db.close();
  await target.cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function server(opts: { records?: CallRecords; answer?: boolean; env?: NodeJS.ProcessEnv } = {}) {
  const view = recordingView();
  const out: { port: 0 | 1; msg: DialerMsg }[] = [];
  let port = 0;
  const ctl = new FastAgiInController(
    { host: '127.0.0.1', port: '0', answer: opts.answer },
    view,
    keys,
    { send: (p, msg) => out.push({ port: p, msg }), listening: (a) => (port = a.port) },
    opts.records,
    opts.env ?? {},
  );
  await ctl.listen();
  return { ctl, view, out, port: () => port };
}

function call(port: number, variables: Record<string, string>, persona = {}): Promise<AgiCallResult> {
  return runAgiCall({
    host: '127.0.0.1',
    port,
    channel: 'PJSIP/trunk-00000001',
    uniqueid: `${Date.now() / 1000}`,
    callerId: '+12125550100',
    variables,
    persona,
    speed: 20,
    recordingsRoot: dir,
    lingerMs: 2000,
  });
}

test('an inbound session creates its call row; the session msg carries the call; hangup completes and finalises it', async () => {
  const warnings: string[] = [];
  const records = new CallRecords(
    async () => db,
    (w) => warnings.push(w),
  );
  const s = await server({ records });
  const hangupView = recordingView();
  const hangup = new AgiHangupController({}, hangupView, keys, records, {});
  const ended = call(s.port(), {});
  const started = await waitFor(() => s.out.find((o) => o.port === 0), 5000, 'the session msg');
  const msg = started.msg;
  expect(msg.topic).toBe('agi_session');
  expect(typeof msg.call?.id).toBe('number');
  expect(msg.call?.direction).toBe('inbound');
  const row = await db.query<{ status: string; direction: string }>(
    'select status, direction from calls where id = $1',
    [msg.call!.id],
  );
  expect(row.rows[0]).toEqual({ status: 'in_progress', direction: 'inbound' });

  const [out] = await hangup.handle(msg);
  expect(out?.call).toMatchObject({ hungUp: true, hungUpBy: 'agi', transcript: '' });
  expect(hangupView.last()).toMatchObject({ fill: 'green', text: 'status.done' });
  const closed = await db.query<{ status: string }>('select status from calls where id = $1', [msg.call!.id]);
  expect(closed.rows[0].status).toBe('completed');
  const r = await ended;
  expect(r.hungUpBy).toBe('agi');
  const end = await waitFor(() => s.out.find((o) => o.port === 1), 5000, 'the ended msg');
  expect(end.msg).toMatchObject({ topic: 'agi_ended', payload: 'agi_hangup' });
  // a second hangup of the same call: already gone, not an error
  const [again] = await hangup.handle({ call: { ...msg.call } });
  expect(again?.call?.hungUp).toBe(true);
  expect(hangupView.last()).toMatchObject({ fill: 'grey', text: 'status.gone' });
  expect(warnings).toEqual([]);
  await s.ctl.close();
});

test('an outbound call unknown to the store, or without its token, never reaches the flow', async () => {
  const records = new CallRecords(
    async () => db,
    () => undefined,
  );
  const s = await server({ records });
  const r1 = await call(s.port(), { CALL_ID: '999999', CALL_TOKEN: 'forged', CONTACT_PHONE: '+15550100' });
  const r2 = await call(s.port(), { CALL_ID: '999998' });
  expect(r1.endedBy).toBe('server_closed');
  expect(r2.endedBy).toBe('server_closed');
  expect(s.out).toEqual([]);
  await s.ctl.close();
});

test('a store that fails: an inbound session still starts, with one warning', async () => {
  const records = new CallRecords(
    () => Promise.reject(new Error('db down')),
    () => undefined,
  );
  const s = await server({ records });
  const ended = call(s.port(), {});
  const started = await waitFor(() => s.out.find((o) => o.port === 0), 5000, 'the session msg');
  expect(started.msg.call?.id).toBeUndefined();
  expect(s.view.warnings).toEqual(['the store is unavailable: inbound call not recorded']);
  await new AgiHangupController({}, recordingView(), keys, undefined, {}).handle(started.msg);
  await ended;
  await s.ctl.close();
});

test('agi-record records a turn on the session (seq + 1); without a session it is a record not_found failure', async () => {
  const s = await server();
  const view = recordingView();
  const rec = new AgiRecordController({ maxSeconds: '5', silence: '1' }, dir, view, keys);
  const ended = call(s.port(), {}, { utterances: ['hello there'] });
  const started = await waitFor(() => s.out.find((o) => o.port === 0), 5000, 'the session msg');
  const msg = await rec.handle({ ...started.msg, turn: { seq: 0 } });
  expect(msg.turn?.seq).toBe(1);
  expect(typeof msg.turn?.timing?.recordMs).toBe('number');
  expect(msg.recording?.path).toMatch(/\.wav$/);
  expect(fs.existsSync(msg.recording!.path!)).toBe(true);
  expect(view.last()?.fill).toBe('green');
  await new AgiHangupController({}, recordingView(), keys).handle(msg);
  await ended;

  // the session closed (the caller hung up, the call ended): an ending, not a failure (issue 15)
  const gone = await rec.handle({ call: { sessionId: 'gone' } });
  expect(gone.recording).toEqual({ path: '', hungUp: true, durationMs: 0 });
  expect(gone.call).toMatchObject({ hungUp: true, hungUpBy: 'caller' });
  expect(view.last()?.fill).toBe('yellow');
  // no session id at all: a wiring mistake, a failure
  const err = await rec.handle({ call: {} }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(StageError);
  expect(err).toMatchObject({ stage: 'record', kind: 'not_found' });
  rec.failed(err as Error);
  expect(view.last()).toEqual({ fill: 'red', shape: 'ring', text: 'status.noSession' });
  await s.ctl.close();
});

test('agi-hangup transfers to extension@context; a bad destination is refused', async () => {
  const s = await server();
  const hangup = new AgiHangupController({}, recordingView(), keys, undefined, { TRANSFER_CONTEXT: 'humans' });
  const ended = call(s.port(), {});
  const started = await waitFor(() => s.out.find((o) => o.port === 0), 5000, 'the session msg');
  const bad = await hangup
    .handle({ ...started.msg, reply: { text: '', done: true, action: { type: 'transfer', destination: '1;Dial' } } })
    .catch((e: unknown) => e);
  expect((bad as Error).message).toMatch(/transfer destination/);
  const [msg] = await hangup.handle({
    ...started.msg,
    reply: { text: '', done: true, action: { type: 'transfer', destination: '200' } },
  });
  expect(msg?.call?.transferredTo).toBe('200@humans');
  const r = await ended;
  expect(r.continueAt).toMatchObject({ context: 'humans', extension: '200' });
  await s.ctl.close();
});

test('a supervisor hangup on the control bus ends that call; a bad server setting is a configuration error', async () => {
  const s = await server();
  const ended = call(s.port(), { CALL_ID: '4242', CALL_TOKEN: givenCall('4242') });
  await waitFor(() => s.out.find((o) => o.port === 0), 5000, 'the session msg');
  controlBus.emit('call', { action: 'hangup', callId: 4242 });
  const r = await ended;
  expect(r.hungUpBy).toBe('agi');
  expect(s.view.logs).toContain('log.supervisorHangup {"id":"4242"}');
  await s.ctl.close();

  const view = recordingView();
  const bad = new FastAgiInController({ port: 'not a port' }, view, keys, { send: () => undefined }, undefined, {});
  await bad.listen();
  expect(view.last()).toMatchObject({ fill: 'red', text: 'status.badConfig' });
  expect(view.errors.length).toBe(1);
  await bad.close();
});

test('idle watchdog: a call whose flow sends nothing for AGI_IDLE_TIMEOUT is ended (hung up), and the session ends', async () => {
  const { ctl, view, out, port: portOf } = await server({ env: { AGI_IDLE_TIMEOUT: '0.4' } });
  const port = portOf();
  try {
    const t0 = Date.now();
    const ended = call(port, {}); // the flow never answers the session msg (a msg lost between nodes)
    await waitFor(() => out.find((o) => o.port === 0), 5000, 'the session msg');
    const r = await ended;
    expect(r.hungUpBy).toBe('agi'); // no voice noted for the call: hung up without a goodbye
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    const end = await waitFor(() => out.find((o) => o.port === 1), 5000, 'the ended msg');
    expect(end.msg).toMatchObject({ topic: 'agi_ended' });
    expect(view.warnings.join('\n')).toMatch(/the flow sent no command for 0 s; ending it politely/);
  } finally {
    await ctl.close();
  }
});

test('idle watchdog: AGI_IDLE_TIMEOUT=0 turns it off; commands in flight are never idle', async () => {
  const { ctl, view, out, port: portOf } = await server({ env: { AGI_IDLE_TIMEOUT: '0' } });
  const port = portOf();
  try {
    const ended = call(port, {});
    const started = await waitFor(() => out.find((o) => o.port === 0), 5000, 'the session msg');
    const hangup = new AgiHangupController({}, recordingView(), keys, undefined, {});
    await new Promise((r) => setTimeout(r, 600)); // longer than the other test's timeout: nothing happens
    expect(view.warnings).toEqual([]);
    await hangup.handle(started.msg);
    expect((await ended).hungUpBy).toBe('agi');
  } finally {
    await ctl.close();
  }
});

/**
 * A call `id` up on a fresh server whose goodbye is still being synthesised: `voiced()` lets the synthesis
 * finish (1 s of audio at `bye`); `ended` is the far end's view; every call of the two tests below.
 */
async function callSayingGoodbye(id: number) {
  const s = await server();
  const bye = path.join(dir, `bye-${id}`);
  fs.writeFileSync(`${bye}.wav`, encodeWav({ sampleRate: 8000, channels: 1, samples: new Int16Array(8000) })); // 1 s of line
  let voiced: () => void = () => undefined;
  const voicing = new Promise<void>((r) => (voiced = r));
  const ended = call(s.port(), { CALL_ID: String(id), CALL_TOKEN: givenCall(String(id)) });
  const started = await waitFor(() => s.out.find((o) => o.port === 0), 5000, 'the session msg');
  noteVoice(id, async () => {
    await voicing;
    return { path: bye, durationMs: 1000 };
  });
  const heardGoodbyeThenHangup = async () => {
    const r = await ended;
    const cmds = r.transcript.filter((t) => t.dir === 'cmd' && !t.line.startsWith('GET FULL VARIABLE'));
    expect(cmds.map((t) => t.line)).toEqual([`STREAM FILE "${bye}" ""`, 'HANGUP']);
    expect(r.hungUpBy).toBe('agi');
  };
  const done = async () => {
    forgetCall(id);
    voiced();
    await s.ctl.close();
  };
  return { s, started, voiced: () => voiced(), heardGoodbyeThenHangup, done };
}

test('the flow reaching its hangup node while the call says its goodbye (a drain ended it) does not cut the goodbye', async () => {
  const c = await callSayingGoodbye(4245);
  try {
    await hangupNodeDuringGoodbye(c, 4245, c.started.msg);
  } finally {
    await c.done();
  }
});

test('a transfer reaching the hangup node while the call says its goodbye (a drain ended it): no transfer, the goodbye, then the hangup', async () => {
  const c = await callSayingGoodbye(4246);
  try {
    expect(endCallPolitely(4246, 'the dialer is shutting down')).toBe(1);
    const reply = { text: 'Let me put you through.', done: true, action: { type: 'transfer', destination: '200' } };
    const hangingUp = new AgiHangupController({}, recordingView(), keys, undefined, {}).handle({
      ...c.started.msg,
      reply,
    });
    c.voiced();
    const [out, back] = await hangingUp;
    await c.heardGoodbyeThenHangup(); // no SET CONTEXT / EXTENSION: the transfer was not tried
    expect(back).toBeNull();
    expect(out?.call).toMatchObject({ hungUp: true, hungUpBy: 'agi' });
    expect(out?.call?.transferredTo).toBeUndefined();
  } finally {
    await c.done();
  }
});

test('a stop while a call says its goodbye (a drain ended it) waits for the goodbye and the hangup, not cutting them', async () => {
  const c = await callSayingGoodbye(4244);
  try {
    // the goodbye is still being synthesised when the stop comes (the drain returned: the flow had ended)
    expect(endCallPolitely(4244, 'the dialer is shutting down')).toBe(1);
    const closed = c.s.ctl.close();
    c.voiced();
    await closed;
    await c.heardGoodbyeThenHangup();
  } finally {
    await c.done();
  }
});
