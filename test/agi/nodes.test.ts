/**
 * fastagi-in, record (agi-record) and hangup (agi-hangup) in the real Node-RED runtime, driven by the
 * Asterisk simulator's AGI side over real sockets.
 */
import fs from 'fs';
import os from 'os';
import net from 'net';
import path from 'path';
import helper from 'node-red-node-test-helper';
import { runAgiCall, type AgiCallResult } from '../../src/sim/agi-client';
import { getSession } from '../../src/agi/registry';
import { encodeWav, parseWav } from '../../src/audio/wav';
import type { Persona } from '../../src/sim/persona';
import type { Db } from '../../src/store/db';
import { waitFor } from '../helpers/wait';
import { givenCall } from '../helpers/call-token';
import { hasPostgres, postgresTarget, type DbTarget } from '../helpers/db';

import fastagiIn from '../../nodes/fastagi-in/fastagi-in';
import agiRecord from '../../nodes/agi-record/agi-record';
import agiHangup from '../../nodes/agi-hangup/agi-hangup';
import storeNode from '../../nodes/ai-dialer-store/ai-dialer-store';
import catchNode from '@node-red/nodes/core/common/25-catch.js';
import { removeScratch } from '../helpers/scratch';

helper.init(require.resolve('node-red'));

type Msg = Record<string, any>;
type TestNode = ReturnType<typeof helper.getNode> & { port?: number };

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-agi-nodes-'));
const recDir = path.join(root, 'recordings');
const hello = path.join(root, 'hello');

beforeAll((done) => {
  fs.writeFileSync(hello + '.wav', encodeWav({ sampleRate: 8000, channels: 1, samples: new Int16Array(4000) }));
  helper.startServer(done);
});
afterAll((done) => {
  removeScratch(root);
  helper.stopServer(done);
});
afterEach(() => helper.unload());

function collect(id: string): Msg[] {
  const out: Msg[] = [];
  helper.getNode(id).on('input', (m: Msg) => out.push(m));
  return out;
}

async function portOf(id = 'in'): Promise<number> {
  return waitFor(() => (helper.getNode(id) as TestNode).port, 5000, 'fastagi-in to listen');
}

function simCall(
  port: number,
  i: number | string,
  persona: Persona,
  vars: Record<string, string> = {},
): Promise<AgiCallResult> {
  return runAgiCall({
    host: '127.0.0.1',
    port,
    script: 'dialer',
    channel: `Local/+1212555${String(i).padStart(4, '0')}@callees-${String(i).padStart(8, '0')};1`,
    uniqueid: `1732486000.${i}`,
    variables: {
      CALL_ID: String(i),
      CALL_TOKEN: givenCall(i),
      CONTACT_PHONE: `+1212555${String(i).padStart(4, '0')}`,
      CAMPAIGN_ID: '3',
      ...vars,
    },
    persona,
    speed: 50,
  });
}

/** Every node on one tab (a Catch node needs its flow). */
const onTab = (nodes: object[]) => [{ id: 'f1', type: 'tab' }, ...nodes.map((n) => ({ z: 'f1', ...n }))];

const conversationFlow = (extra: object[] = []) => [
  { id: 'in', type: 'fastagi-in', host: '127.0.0.1', port: '0', wires: [['h1'], ['ended']] },
  { id: 'rec', type: 'agi-record', silence: '1', maxSeconds: '20', escapeDigits: '#', dir: recDir, wires: [['h2']] },
  { id: 'hang', type: 'agi-hangup', wires: [['h3']] },
  { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['hc']] },
  { id: 'h1', type: 'helper' },
  { id: 'h2', type: 'helper' },
  { id: 'h3', type: 'helper' },
  { id: 'hc', type: 'helper' },
  { id: 'ended', type: 'helper' },
  ...extra,
];

test('a scripted call: session msg, play, record, hangup; the session-ended output follows', async () => {
  await helper.load([fastagiIn, agiRecord, agiHangup, catchNode], onTab(conversationFlow()));
  const [s1, s2, s3, ended] = [collect('h1'), collect('h2'), collect('h3'), collect('ended')];
  const port = await portOf();
  const done = simCall(
    port,
    42,
    { utterances: ['Yes, this is me.'] },
    { AMDSTATUS: 'HUMAN', AMDCAUSE: 'HUMAN-300-300' },
  );
  const m1 = await waitFor(() => s1[0], 5000, 'session msg');
  expect(m1.call).toMatchObject({
    id: 42,
    phone: '+12125550042',
    campaignId: 3,
    direction: 'outbound',
    channel: 'Local/+12125550042@callees-00000042;1',
    amd: { status: 'HUMAN', cause: 'HUMAN-300-300' },
  });
  expect(typeof m1.call.sessionId).toBe('string');
  expect(m1.agi.env.network).toBe('yes');
  expect(m1.payload).toEqual({ script: 'dialer', args: [] });
  // tts-speak's playback half: STREAM FILE by path without extension, through the registry.
  const play = await getSession(m1.call.sessionId)!.streamFile(hello, { durationMs: 500 });
  expect(play).toEqual({ endpos: 4000, failed: false, hungUp: false });
  helper.getNode('rec').receive({ ...m1, turn: { seq: 0 } } as never);
  const m2 = await waitFor(() => s2[0], 5000, 'recording msg');
  expect(m2.recording).toMatchObject({ hungUp: false });
  expect(m2.recording.path).toMatch(
    new RegExp(`^${recDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/call-42-t1-[0-9a-f]{12}\\.wav$`),
  );
  expect(parseWav(fs.readFileSync(m2.recording.path)).simText).toBe('Yes, this is me.');
  expect(m2.recording.durationMs).toBeGreaterThan(500);
  expect(m2.turn).toEqual({ seq: 1, timing: { recordMs: expect.any(Number) } });
  helper.getNode('hang').receive(m2 as never);
  const m3 = await waitFor(() => s3[0], 5000, 'hangup msg');
  expect(m3.call).toMatchObject({ id: 42, hungUp: true, hungUpBy: 'agi' });
  const r = await done;
  expect(r).toMatchObject({ endedBy: 'server_closed', hungUp: true, hungUpBy: 'agi' });
  const e = await waitFor(() => ended[0], 5000, 'ended msg');
  expect(e).toMatchObject({ payload: 'agi_hangup', call: { id: 42 } });
  expect(getSession(m1.call.sessionId)).toBeUndefined();
});

test('200 concurrent sessions through record and hangup, with no cross-talk', async () => {
  const flow = conversationFlow();
  flow[0] = { ...flow[0], wires: [['rec'], ['ended']] };
  flow[1] = { ...flow[1], wires: [['hang']] };
  await helper.load([fastagiIn, agiRecord, agiHangup, catchNode], onTab(flow));
  const [out, errors] = [collect('h3'), collect('hc')];
  const port = await portOf();
  const N = 200;
  const calls = Array.from({ length: N }, (_, i) =>
    simCall(port, 1000 + i, { utterances: [`This is caller ${1000 + i} speaking.`] }),
  );
  const results = await Promise.all(calls);
  await waitFor(() => out.length === N || undefined, 20000, `${N} finished conversations (got ${out.length})`);
  expect(errors).toEqual([]);
  const seen = new Set<number>();
  for (const m of out) {
    const id = m.call.id as number;
    seen.add(id);
    expect(m.recording.path).toContain(`/call-${id}-t1-`);
    expect(parseWav(fs.readFileSync(m.recording.path)).simText).toBe(`This is caller ${id} speaking.`);
    expect(m.call.phone).toBe(`+1212555${String(id).padStart(4, '0')}`);
  }
  expect(seen.size).toBe(N);
  results.forEach((r, i) => {
    expect(r).toMatchObject({ endedBy: 'server_closed', hungUpBy: 'agi' });
    // the reply to the identity's GET FULL VARIABLE (CALL_DIRECTION|CALL_ID|...) carries this session's own
    // call id (no cross-talk)
    const ids = r.transcript.filter((t) => t.dir === 'reply' && /^200 result=1 \([^|)]*\|1\d{3}\|/.test(t.line));
    expect(ids.map((t) => t.line.split('|')[1])).toEqual([`${1000 + i}`]);
    expect(r.recordings).toHaveLength(1);
    expect(r.recordings[0]).toContain(`/call-${1000 + i}-t1-`);
  });
}, 60000);

test('a missing session reaches a Catch node; a caller who already hung up is an ending, not a failure', async () => {
  await helper.load([fastagiIn, agiRecord, agiHangup, catchNode], onTab(conversationFlow()));
  const [s1, caught, ended] = [collect('h1'), collect('hc'), collect('ended')];
  helper.getNode('rec').receive({ payload: 'x' } as never);
  const c1 = await waitFor(() => caught[0], 5000, 'catch of missing session');
  expect(c1.error.message).toMatch(/sessionId is missing/);
  const port = await portOf();
  const done = simCall(port, 7, { hangupAfterMs: 5000 });
  const m1 = await waitFor(() => s1[0], 5000, 'session msg');
  await waitFor(() => getSession(m1.call.sessionId)?.hungUp || undefined, 5000, 'the caller to hang up');
  // A caller who already hung up is an ending, not a failure (issue 15 item 7): agi-record sends the msg
  // on with recording.hungUp and no file, and nothing reaches the Catch node.
  const s2 = collect('h2');
  helper.getNode('rec').receive(m1 as never);
  const r2 = await waitFor(() => s2[0], 5000, 'the hung-up turn');
  expect(r2.recording).toMatchObject({ hungUp: true, path: '' });
  expect(caught).toHaveLength(1);
  // hangup is tolerant: the call is already gone, the msg goes on.
  helper.getNode('hang').receive(m1 as never);
  const s3 = collect('h3');
  helper.getNode('hang').receive(m1 as never);
  await waitFor(() => s3[0], 5000, 'hangup passes through');
  expect(s3[0].call.hungUp).toBe(true);
  await done;
  const e = await waitFor(() => ended[0], 5000, 'ended msg');
  expect(e.payload).toBe('caller_hangup');
});

test('closing the node closes its sessions and frees the port', async () => {
  await helper.load(
    [fastagiIn],
    [
      { id: 'in', type: 'fastagi-in', host: '127.0.0.1', port: '0', wires: [['h1'], []] },
      { id: 'h1', type: 'helper' },
    ],
  );
  const s1 = collect('h1');
  const port = await portOf();
  const done = simCall(port, 9, {});
  await waitFor(() => s1[0], 5000, 'session msg');
  await helper.unload();
  const r = await done;
  expect(r.endedBy).toBe('server_closed');
  // The port is free again.
  await new Promise<void>((resolve, reject) => {
    const srv = net.createServer().once('error', reject);
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve()));
  });
});

test('a caller gone before the call identity is read: fastagi-in reports it to a Catch node and emits no session', async () => {
  await helper.load([fastagiIn, agiRecord, agiHangup, catchNode], onTab(conversationFlow()));
  const [s1, caught] = [collect('h1'), collect('hc')];
  const port = await portOf();
  // A raw Asterisk whose channel is already gone: environment and HANGUP in one packet, 511 to everything.
  const sock = net.connect(port, '127.0.0.1');
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    for (const line of d.split('\n'))
      if (line) sock.write('511 Command Not Permitted on a dead channel or intercept routine\n');
  });
  const closed = new Promise((r) => sock.on('close', r));
  sock.write(
    'agi_network: yes\nagi_network_script: dialer\nagi_channel: PJSIP/trunk-00000011\nagi_uniqueid: 1732486000.11\n\nHANGUP\n',
  );
  const c = await waitFor(() => caught[0], 5000, 'catch of the failed start');
  expect(c.error.message).toMatch(/^AGI session could not start: agi: .*hung up/);
  await closed; // and the server closed the connection
  expect(s1).toEqual([]);
});

test('the secret is a credential: callers without it are refused, callers with it get a session', async () => {
  const secret = 'k' + Math.random().toString(36).slice(2);
  await helper.load(
    [fastagiIn],
    [
      { id: 'in', type: 'fastagi-in', host: '127.0.0.1', port: '0', wires: [['h1'], []] },
      { id: 'h1', type: 'helper' },
    ],
    { in: { secret } },
  );
  const s1 = collect('h1');
  const warnings: string[] = [];
  helper.getNode('in').on('call:warn', (c: { args: unknown[] }) => warnings.push(String(c.args[0])));
  const port = await portOf();
  const base = {
    host: '127.0.0.1',
    port,
    channel: 'PJSIP/trunk-1',
    variables: { CALL_ID: '5', CALL_TOKEN: givenCall(5) },
    persona: {},
    speed: 50,
  };
  const refused = await runAgiCall({ ...base, uniqueid: '1.1', script: 'dialer?secret=wrong' });
  expect(refused).toMatchObject({ endedBy: 'server_closed', commands: 0 });
  await waitFor(() => warnings.find((w) => w.includes('bad_secret')), 5000, 'the refusal to be logged');
  expect(warnings.join('\n')).not.toContain(secret);
  const ok = runAgiCall({ ...base, uniqueid: '1.2', script: `dialer?secret=${secret}` });
  const m = await waitFor(() => s1[0], 5000, 'session msg');
  expect(m.call.id).toBe(5);
  expect(JSON.stringify(m)).not.toContain(secret);
  getSession(m.call.sessionId)!.close();
  await ok;
});

test('port in use: red status and one clear error line', async () => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  const port = (blocker.address() as net.AddressInfo).port;
  try {
    await helper.load(
      [fastagiIn],
      [{ id: 'in', type: 'fastagi-in', host: '127.0.0.1', port: String(port), wires: [[], []] }],
    );
    const n = helper.getNode('in');
    const errors: string[] = [];
    n.on('call:error', (call: { args: unknown[] }) => errors.push(String(call.args[0])));
    await waitFor(() => errors[0], 5000, 'the listen error');
    expect(errors[0]).toBe(
      `FastAGI cannot listen on 127.0.0.1:${port}: the port is already in use (stop the other server or set AGI_PORT)`,
    );
  } finally {
    blocker.close();
  }
});

const storeTargets: Array<{ name: string; url?: string }> = [{ name: 'embedded PGlite' }];
if (hasPostgres()) storeTargets.push({ name: 'PostgreSQL', url: process.env.DATABASE_URL });

describe.each(storeTargets)('with a store ($name)', ({ url }) => {
  let target: DbTarget | undefined;
  const dataDir = path.join(root, `db-${Math.random().toString(36).slice(2)}`);
  beforeAll(() => {
    if (url) target = postgresTarget(url);
  });
  afterAll(async () => {
    await target?.cleanup();
  });
  const load = async () => {
    let creds: Record<string, object> = {};
    let storeDef: object = { id: 'store', type: 'ai-dialer-store', mode: 'embedded', dataDir };
    if (target) {
      await (await target.open()).close(); // create the database
      storeDef = { id: 'store', type: 'ai-dialer-store', mode: 'postgres' };
      creds = { store: { url: target.options().url } };
    }
    await helper.load(
      [storeNode, fastagiIn, agiHangup],
      [
        storeDef,
        { id: 'in', type: 'fastagi-in', host: '127.0.0.1', port: '0', store: 'store', wires: [['h1'], []] },
        { id: 'hang', type: 'agi-hangup', store: 'store', wires: [['h4']] },
        { id: 'h1', type: 'helper' },
        { id: 'h4', type: 'helper' },
      ],
      creds,
    );
  };

  test('an outbound call becomes in_progress; a call without CALL_ID gets an inbound record', async () => {
    await load();
    const s1 = collect('h1');
    const db = await (helper.getNode('store') as unknown as { getDb(): Promise<Db> }).getDb();
    const row = await db.query<{ id: number }>(
      `insert into calls (phone, status) values ('+12125550101', 'initiated') returning id`,
    );
    const id = row.rows[0].id;
    const port = await portOf();
    const out = simCall(port, id, {});
    const m = await waitFor(() => s1[0], 10000, 'session msg');
    expect(m.call.id).toBe(id);
    const r1 = await db.query<{ status: string; agi_uniqueid: string; answered_at: Date | null }>(
      'select status, agi_uniqueid, answered_at from calls where id = $1',
      [id],
    );
    expect(r1.rows[0]).toMatchObject({ status: 'in_progress', agi_uniqueid: `1732486000.${id}` });
    expect(r1.rows[0].answered_at).not.toBeNull();
    getSession(m.call.sessionId)!.close();
    await out;

    const inbound = runAgiCall({
      host: '127.0.0.1',
      port,
      channel: 'PJSIP/trunk-00000009',
      uniqueid: '1732486001.9',
      callerId: '+13105550199',
      variables: {},
      persona: {},
      speed: 50,
    });
    const m2 = await waitFor(() => s1[1], 10000, 'inbound session msg');
    expect(m2.call).toMatchObject({ direction: 'inbound', phone: '+13105550199', callerId: '+13105550199' });
    expect(typeof m2.call.id).toBe('number');
    const r2 = await db.query<{ direction: string; status: string; phone: string }>(
      'select direction, status, phone from calls where id = $1',
      [m2.call.id],
    );
    expect(r2.rows[0]).toEqual({ direction: 'inbound', status: 'in_progress', phone: '+13105550199' });
    // hangup with a store: transcript aggregated from the turns; the inbound call is completed.
    await db.query(
      `insert into call_turns (call_id, seq, user_text, bot_text) values ($1, 0, null, 'Hello'), ($1, 1, 'Hi there', 'How can I help?')`,
      [m2.call.id],
    );
    const s4 = collect('h4');
    helper.getNode('hang').receive(m2 as never);
    const m4 = await waitFor(() => s4[0], 10000, 'hangup msg');
    expect(m4.call).toMatchObject({
      hungUp: true,
      hungUpBy: 'agi',
      transcript: 'Agent: Hello\nCaller: Hi there\nAgent: How can I help?',
    });
    const r3 = await db.query<{ status: string; transcript: string; ended_at: Date | null }>(
      'select status, transcript, ended_at from calls where id = $1',
      [m2.call.id],
    );
    expect(r3.rows[0]).toMatchObject({
      status: 'completed',
      transcript: 'Agent: Hello\nCaller: Hi there\nAgent: How can I help?',
    });
    expect(r3.rows[0].ended_at).not.toBeNull();
    expect(await inbound).toMatchObject({ hungUpBy: 'agi', endedBy: 'server_closed' });
  }, 60000);
});
