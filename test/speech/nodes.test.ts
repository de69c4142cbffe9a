/**
 * tts-speak, stt-transcribe and llm-turn in the real Node-RED runtime: a whole conversation driven by
 * the Asterisk simulator over real FastAGI sockets, with real espeak-ng, the sim STT, the scripted
 * engine and the embedded store; then failures, credentials and injection attempts.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import http from 'http';
import type { AddressInfo } from 'net';
import helper from 'node-red-node-test-helper';
import { runAgiCall, type AgiCallResult } from '../../src/sim/agi-client';
import { parseWav } from '../../src/audio/wav';
import { queueSupervisorLine } from '../../src/events/control-bus';
import { conversations } from '../../src/llm/history';
import type { Persona } from '../../src/sim/persona';
import type { Db } from '../../src/store/db';
import { waitFor } from '../helpers/wait';
import { givenCall } from '../helpers/call-token';
import { hasPostgres, postgresTarget, type DbTarget } from '../helpers/db';

import fastagiIn from '../../nodes/fastagi-in/fastagi-in';
import agiRecord from '../../nodes/agi-record/agi-record';
import agiHangup from '../../nodes/agi-hangup/agi-hangup';
import storeNode from '../../nodes/ai-dialer-store/ai-dialer-store';
import ttsSpeak from '../../nodes/tts-speak/tts-speak';
import sttTranscribe from '../../nodes/stt-transcribe/stt-transcribe';
import llmTurn from '../../nodes/llm-turn/llm-turn';
import llmServer from '../../nodes/ai-dialer-llm/ai-dialer-llm';
import catchNode from '@node-red/nodes/core/common/25-catch.js';
import switchNode from '@node-red/nodes/core/function/10-switch.js';
import { replyDoneSwitch } from '../helpers/flow-nodes';
import { removeScratch } from '../helpers/scratch';

helper.init(require.resolve('node-red'));

type Msg = Record<string, any>;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-speech-nodes-'));
const audioDir = path.join(root, 'audio');
const recDir = path.join(root, 'recordings');
const dbDir = path.join(root, 'db');

beforeAll((done) => {
  delete process.env.ARI_URL;
  helper.startServer(done);
});
afterAll((done) => {
  helper.stopServer(() => {
    removeScratch(root);
    done();
  });
});
afterEach(() => helper.unload());

const onTab = (nodes: object[]) => [{ id: 'f1', type: 'tab' }, ...nodes.map((n) => ({ z: 'f1', ...n }))];
function collect(id: string): Msg[] {
  const out: Msg[] = [];
  helper.getNode(id).on('input', (m: Msg) => out.push(m));
  return out;
}
const portOf = (id = 'in') =>
  waitFor(() => (helper.getNode(id) as unknown as { port?: number }).port, 5000, 'fastagi-in to listen');

function simCall(
  port: number,
  id: number,
  persona: Persona,
  phone = '+12125550100',
  vars: Record<string, string> = {},
): Promise<AgiCallResult> {
  return runAgiCall({
    host: '127.0.0.1',
    port,
    script: 'dialer',
    channel: `Local/${phone}@callees-00000001;1`,
    uniqueid: `1732486000.${id}`,
    variables: { CALL_ID: String(id), CALL_TOKEN: givenCall(id), CONTACT_PHONE: phone, ...vars },
    persona,
    speed: 50,
  });
}

/** fastagi-in -> llm-turn -> tts-speak -> done? hangup : record -> transcribe -> llm-turn ... */
const conversation = (extra: object[] = [], storeMode: 'embedded' | 'postgres' = 'embedded') => [
  { id: 'st', type: 'ai-dialer-store', mode: storeMode, dataDir: dbDir },
  { id: 'in', type: 'fastagi-in', host: '127.0.0.1', port: '0', store: 'st', wires: [['llm'], ['llm']] },
  {
    id: 'llm',
    type: 'llm-turn',
    engine: 'scripted',
    store: 'st',
    greeting: 'Hello {{contact.name|there}}, this is {{campaign.name|the clinic}}.',
    intents: [],
    wires: [['tts'], ['fail']],
  },
  {
    id: 'tts',
    type: 'tts-speak',
    engine: 'espeak-ng',
    voice: 'en-us',
    audioDir,
    play: true,
    store: 'st',
    wires: [['sw', 'turns'], ['fail']],
  },
  replyDoneSwitch(),
  { id: 'rec', type: 'agi-record', silence: '1', maxSeconds: '20', escapeDigits: '#', dir: recDir, wires: [['stt']] },
  { id: 'stt', type: 'stt-transcribe', engine: 'sim', wires: [['llm'], ['fail']] },
  { id: 'hang', type: 'agi-hangup', wires: [['end']] },
  { id: 'end', type: 'helper' },
  { id: 'turns', type: 'helper' },
  { id: 'fail', type: 'helper' },
  ...extra,
];

const stores: Array<[string, () => DbTarget | undefined]> = [['pglite', () => undefined]];
if (hasPostgres()) stores.push(['postgres', () => postgresTarget(process.env.DATABASE_URL as string)]);

test.each(stores)(
  'a whole call on %s: greeting, "do not call me", goodbye and hang-up; turns with timing in the store',
  async (_name, target) => {
    const pg = target();
    if (pg) await (await pg.open()).close(); // create the isolated database
    await helper.load(
      [storeNode, fastagiIn, llmTurn, ttsSpeak, switchNode, agiRecord, sttTranscribe, agiHangup],
      onTab(conversation([], pg ? 'postgres' : 'embedded')),
      pg ? { st: { url: pg.options().url } } : undefined,
    );
    const db = await (helper.getNode('st') as unknown as { getDb(): Promise<Db> }).getDb();
    const camp = await db.query<{ id: number }>(
      `insert into campaigns (name, settings) values ('City Clinic', '{"purpose": "reminder"}') returning id`,
    );
    const contact = await db.query<{ id: number }>(
      `insert into contacts (campaign_id, phone, name, fields) values ($1, '+12125550104', 'Maria', '{"plan": "Gold"}') returning id`,
      [camp.rows[0].id],
    );
    const row = await db.query<{ id: number }>(
      `insert into calls (direction, phone, status, campaign_id, contact_id) values ('outbound', '+12125550104', 'initiated', $1, $2) returning id`,
      [camp.rows[0].id, contact.rows[0].id],
    );
    const callId = row.rows[0].id;
    const [end, turns, fail] = [collect('end'), collect('turns'), collect('fail')];
    const result = await simCall(
      await portOf(),
      callId,
      { utterances: ['Please do not call me again.'] },
      '+12125550104',
      { CAMPAIGN_ID: String(camp.rows[0].id), CONTACT_ID: String(contact.rows[0].id) },
    );
    const last = await waitFor(() => end[0], 20000, 'the hang-up');
    expect(fail).toEqual([]);
    expect(result).toMatchObject({ endedBy: 'server_closed', hungUp: true, hungUpBy: 'agi' });

    // What Asterisk was asked to play: two cached 8 kHz files, by path without extension.
    const plays = result.transcript.filter((t) => t.dir === 'cmd' && t.line.startsWith('STREAM FILE'));
    expect(plays).toHaveLength(2);
    for (const p of plays) {
      const file = /^STREAM FILE "?([^" ]+)"? /.exec(p.line)![1];
      expect(file).toMatch(new RegExp(`^${audioDir}/tts/tts-[0-9a-f]{40}$`));
      const wav = parseWav(fs.readFileSync(file + '.wav'));
      expect(wav).toMatchObject({ sampleRate: 8000, channels: 1, bitsPerSample: 16 });
    }
    expect(result.transcript.some((t) => t.dir === 'reply' && /^200 result=0 endpos=[1-9]\d+$/.test(t.line))).toBe(
      true,
    );

    expect(last.reply).toMatchObject({ done: true, action: { type: 'add_to_dnc' }, source: 'dnc' });
    expect(last.event).toBe('conversation_turn');
    expect(turns.map((m) => m.turn.seq)).toEqual([0, 1]);
    expect(turns[1].transcript).toMatchObject({ text: 'Please do not call me again.', engine: 'sim', simulated: true });
    expect(turns[1].turn.simulated).toBe(true);

    // the playback timing is written after the line was heard, queued behind the call's earlier writes and not
    // awaited by the flow: under load it may land just after the hang-up (in order; nothing is lost)
    const t = await waitFor(
      async () => {
        const r = await db.query<any>('select * from call_turns where call_id = $1 order by seq', [callId]);
        return r.rows.length === 2 &&
          r.rows[0].playback_ms !== null &&
          r.rows[1].playback_ms !== null &&
          r.rows[1].total_ms !== null
          ? r
          : undefined;
      },
      15000,
      'both turns stored with their playback timing',
    );
    expect(t.rows).toHaveLength(2);
    // the greeting template was filled from the store (contact and campaign loaded by id)
    expect(t.rows[0]).toMatchObject({
      seq: 0,
      user_text: null,
      bot_text: 'Hello Maria, this is City Clinic.',
      action: null,
    });
    expect(turns[0].call.contact).toMatchObject({ name: 'Maria', fields: { plan: 'Gold' } });
    expect(turns[0].campaign).toMatchObject({ name: 'City Clinic', purpose: 'reminder' });
    expect(t.rows[0].tts_ms).not.toBeNull();
    expect(t.rows[0].playback_ms).not.toBeNull();
    expect(t.rows[1]).toMatchObject({
      seq: 1,
      user_text: 'Please do not call me again.',
      action: 'add_to_dnc',
      bot_text: 'I understand. We will not call you again. Goodbye.',
    });
    for (const k of ['record_ms', 'stt_ms', 'llm_ms', 'tts_ms', 'playback_ms', 'total_ms'])
      expect(t.rows[1][k]).toEqual(expect.any(Number));
    expect(t.rows[1].engines).toMatchObject({ stt: 'sim (simulated)', llm: 'rule:dnc', tts: 'espeak-ng:en-us' }); // answered by the DNC rule, not the engine
    // the session-ended msg (fastagi-in output 2 -> llm-turn) dropped the history
    await waitFor(() => !conversations.has(String(callId)) || undefined, 5000, 'history dropped');
    if (pg) {
      await helper.unload();
      await pg.cleanup();
    }
  },
  // each step waits for itself (bounded, named); the whole includes PGlite's start and migrations, which took
  // most of a minute at load 15
  120000,
);

test('a talker: two answers through the loop, history kept between turns', async () => {
  await helper.load(
    [storeNode, fastagiIn, llmTurn, ttsSpeak, switchNode, agiRecord, sttTranscribe, agiHangup],
    onTab(conversation()),
  );
  // The scripted default intents: "yes ..." ends the call.
  const [end, turns] = [collect('end'), collect('turns')];
  const r = await simCall(await portOf(), 9001, {
    utterances: ['Hmm, what is this about?', 'Yes, that works for me.'],
  });
  await waitFor(() => end[0], 20000, 'the hang-up');
  expect(turns.map((m) => [m.turn.seq, m.turn.botText])).toEqual([
    [0, 'Hello there, this is the clinic.'],
    [1, "Sorry, I didn't catch that. Could you say that again?"],
    [2, 'Great, we will see you then. Goodbye.'],
  ]);
  expect(turns[2].turn.timing).toEqual({
    recordMs: expect.any(Number),
    sttMs: expect.any(Number),
    llmMs: expect.any(Number),
    ttsMs: expect.any(Number),
    playbackMs: expect.any(Number),
  });
  expect(r.transcript.filter((t) => t.line.startsWith('STREAM FILE'))).toHaveLength(3);
}, 60000);

test('a contact name with quotes and newlines cannot reach an AGI command: the only command is STREAM FILE of a hashed path', async () => {
  await helper.load(
    [fastagiIn, ttsSpeak],
    onTab([
      { id: 'in', type: 'fastagi-in', host: '127.0.0.1', port: '0', wires: [['h1'], []] },
      {
        id: 'tts',
        type: 'tts-speak',
        engine: 'espeak-ng',
        audioDir,
        text: 'Hello {{contact.name}}, goodbye.',
        wires: [['spoken'], ['fail']],
      },
      { id: 'h1', type: 'helper' },
      { id: 'spoken', type: 'helper' },
      { id: 'fail', type: 'helper' },
    ]),
  );
  const [h1, spoken, fail] = [collect('h1'), collect('spoken'), collect('fail')];
  const call = simCall(await portOf(), 31337, {});
  const m1 = await waitFor(() => h1[0], 5000, 'session msg');
  const evil = 'Eve" ""\nHANGUP\r\nEXEC Dial PJSIP/900@trunk\n\n';
  helper.getNode('tts').receive({ ...m1, call: { ...m1.call, contact: { name: evil } } } as never);
  const m = await waitFor(
    () => spoken[0] ?? (fail[0] && Promise.reject(new Error(JSON.stringify(fail[0].error)))),
    15000,
    'spoken',
  );
  expect(m.turn).toBeUndefined();
  expect(m.playback).toMatchObject({ failed: false, hungUp: false });
  const { getSession } = await import('../../src/agi/registry');
  const session = getSession(m1.call.sessionId)!;
  await session.hangup();
  session.close();
  const r = await call;
  const all = r.transcript.filter((t) => t.dir === 'cmd').map((t) => t.line);
  // fastagi-in's own read of the call's variables comes first (one GET FULL VARIABLE); from the playback on,
  // everything is ours
  const cmds = all.slice(all.findIndex((l) => l.startsWith('STREAM FILE')));
  expect(all.slice(0, all.length - cmds.length)).toEqual([
    expect.stringMatching(/^GET FULL VARIABLE "\$\{CALL_DIRECTION\}\|/),
  ]);
  expect(cmds[0]).toMatch(new RegExp(`^STREAM FILE "?${audioDir}/tts/tts-[0-9a-f]{40}"? ""$`));
  expect(cmds.slice(1)).toEqual(['HANGUP']); // ours, after the test; nothing else was ever sent
}, 30000);

describe('failures', () => {
  test('no session: to output 2 when it is wired, to a Catch node when it is not (never both)', async () => {
    await helper.load(
      [ttsSpeak, catchNode],
      onTab([
        { id: 'wired', type: 'tts-speak', engine: 'espeak-ng', audioDir, wires: [['ok'], ['bad']] },
        { id: 'unwired', type: 'tts-speak', engine: 'espeak-ng', audioDir, wires: [['ok']] },
        { id: 'c', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
        { id: 'ok', type: 'helper' },
        { id: 'bad', type: 'helper' },
        { id: 'caught', type: 'helper' },
      ]),
    );
    const [ok, bad, caught] = [collect('ok'), collect('bad'), collect('caught')];
    helper.getNode('wired').receive({ payload: 'Hello', call: { id: 1 } } as never);
    const b = await waitFor(() => bad[0], 10000, 'output 2');
    expect(b.error).toEqual({
      stage: 'playback',
      kind: 'not_found',
      engine: 'agi',
      message: expect.stringContaining('msg.call.sessionId is missing'),
    });
    expect(b.tts).toMatchObject({ engine: 'espeak-ng', durationMs: expect.any(Number) }); // synthesized, not played
    helper.getNode('unwired').receive({ payload: 'Hello', call: { id: 1 } } as never);
    const c = await waitFor(() => caught[0], 10000, 'catch');
    expect(c.error.message).toContain('msg.call.sessionId is missing');
    expect(c.error.source.id).toBe('unwired');
    // a session that has ended is the caller's hangup: an ending, not a failure (on to output 1, nothing caught)
    helper.getNode('unwired').receive({ payload: 'Hello', call: { id: 1, sessionId: 'gone' } } as never);
    const h = await waitFor(() => ok[0], 10000, 'the hangup to output 1');
    expect(h.playback).toMatchObject({ hungUp: true });
    expect(bad).toHaveLength(1);
    expect(caught).toHaveLength(1);
    expect(ok).toHaveLength(1);
  });

  test('play unticked: synthesize only; a misconfigured engine is not_configured', async () => {
    await helper.load(
      [ttsSpeak],
      onTab([
        {
          id: 't',
          type: 'tts-speak',
          engine: 'espeak-ng',
          audioDir,
          play: false,
          text: 'Hi {{contact.name}}',
          wires: [['ok'], ['bad']],
        },
        { id: 'o', type: 'tts-speak', engine: 'openai', baseUrl: '', wires: [['ok'], ['bad']] },
        { id: 'ok', type: 'helper' },
        { id: 'bad', type: 'helper' },
      ]),
    );
    const [ok, bad] = [collect('ok'), collect('bad')];
    helper
      .getNode('t')
      .receive({ call: { id: 2, contact: { name: 'Zoë' } }, turn: { seq: 3, timing: { recordMs: 5 } } } as never);
    const m = await waitFor(() => ok[0], 10000, 'spoken');
    expect(m.tts.file).toMatch(/tts-[0-9a-f]{40}\.wav$/);
    expect(m.playback).toBeUndefined();
    expect(m.turn).toMatchObject({ seq: 3, botText: 'Hi Zoë', timing: { recordMs: 5, ttsMs: expect.any(Number) } });
    expect(m.event).toBe('conversation_turn');
    helper.getNode('o').receive({ payload: 'x' } as never);
    const b = await waitFor(() => bad[0], 5000, 'failure');
    expect(b.error).toMatchObject({ stage: 'tts', kind: 'not_configured', engine: 'openai' });
  });

  test('stt-transcribe: an unreachable Vosk server is a network failure on output 2; no recording is invalid input', async () => {
    await helper.load(
      [sttTranscribe],
      onTab([
        { id: 's', type: 'stt-transcribe', engine: 'vosk', voskUrl: 'ws://127.0.0.1:1', wires: [['ok'], ['bad']] },
        { id: 'ok', type: 'helper' },
        { id: 'bad', type: 'helper' },
      ]),
    );
    const bad = collect('bad');
    const { encodeWav } = await import('../../src/audio/wav');
    const s = new Int16Array(8000).map((_, i) => Math.round(4000 * Math.sin(i / 3)));
    fs.writeFileSync(path.join(root, 'x.wav'), encodeWav({ sampleRate: 8000, channels: 1, samples: s }));
    helper.getNode('s').receive({ recording: { path: path.join(root, 'x.wav') } } as never);
    helper.getNode('s').receive({ payload: { nothing: true } } as never);
    await waitFor(() => bad.length === 2 || undefined, 10000, 'two failures');
    const kinds = bad.map((m) => m.error.kind).sort();
    expect(kinds).toEqual(['invalid_input', 'network']);
  });
});

describe('llm-turn', () => {
  let server: http.Server;
  let base: string;
  const seen: Array<{ headers: http.IncomingHttpHeaders; body: any }> = [];
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', () => {
        seen.push({ headers: req.headers, body: JSON.parse(raw) });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            choices: [{ index: 0, message: { role: 'assistant', content: 'Happy to help.' }, finish_reason: 'stop' }],
          }),
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  afterAll(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );

  test('API key from credentials; supervisor line first; msg.reply, payload and turn timing', async () => {
    await helper.load(
      [llmTurn],
      onTab([
        {
          id: 'l',
          type: 'llm-turn',
          engine: 'openai',
          baseUrl: base,
          model: 'llama3.2',
          mode: 'tools',
          systemPrompt: 'Call for {{contact.name}}.',
          wires: [['ok'], ['bad']],
        },
        { id: 'ok', type: 'helper' },
        { id: 'bad', type: 'helper' },
      ]),
      { l: { apiKey: 'sk-from-credentials' } },
    );
    const ok = collect('ok');
    const call = { id: 777, contact: { name: 'Lee\n"admin"' } };
    helper.getNode('l').receive({
      call,
      transcript: { text: 'Who is this?' },
      turn: { seq: 1, timing: { recordMs: 900, sttMs: 40 } },
    } as never);
    const m = await waitFor(() => ok[0], 5000, 'reply');
    expect(m.reply).toEqual({ text: 'Happy to help.', done: false, source: 'engine' });
    expect(m.payload).toBe('Happy to help.');
    expect(m.turn).toMatchObject({
      seq: 1,
      botText: 'Happy to help.',
      timing: { recordMs: 900, sttMs: 40, llmMs: expect.any(Number) },
      engines: { llm: 'openai:llama3.2' },
    });
    expect(seen[0].headers.authorization).toBe('Bearer sk-from-credentials');
    expect(seen[0].body.messages[0].content.split('\n')[0]).toBe('Call for Lee "admin".');
    queueSupervisorLine('777', 'Let me put a colleague on.');
    helper.getNode('l').receive({ call, transcript: { text: 'Hello?' }, turn: { seq: 2, timing: {} } } as never);
    const m2 = await waitFor(() => ok[1], 5000, 'supervisor reply');
    expect(m2.reply).toEqual({ text: 'Let me put a colleague on.', done: false, source: 'supervisor' });
    expect(seen).toHaveLength(1); // engine skipped
    expect(conversations.has('777')).toBe(true);
    helper.getNode('l').receive({ topic: 'agi_ended', call } as never);
    await waitFor(() => !conversations.has('777') || undefined, 5000, 'history dropped at call end');
    expect(ok).toHaveLength(2);
  });

  test('an ai-dialer-llm config node supplies the endpoint and key to several llm-turn nodes', async () => {
    await helper.load(
      [llmServer, llmTurn],
      onTab([
        {
          id: 'srv',
          type: 'ai-dialer-llm',
          baseUrl: base,
          model: 'qwen2.5',
          temperature: '0.1',
          maxTokens: '64',
          mode: 'json',
        },
        {
          id: 'a',
          type: 'llm-turn',
          server: 'srv',
          baseUrl: 'http://ignored.invalid/v1',
          model: 'ignored',
          wires: [['ok'], ['bad']],
        },
        { id: 'b', type: 'llm-turn', engine: 'openai', server: 'srv', wires: [['ok'], ['bad']] },
        { id: 'ok', type: 'helper' },
        { id: 'bad', type: 'helper' },
      ]),
      { srv: { apiKey: 'sk-shared' } },
    );
    const [ok, bad] = [collect('ok'), collect('bad')];
    const before = seen.length;
    helper
      .getNode('a')
      .receive({ call: { id: 'x1' }, transcript: { text: 'hi' }, turn: { seq: 1, timing: {} } } as never);
    helper
      .getNode('b')
      .receive({ call: { id: 'x2' }, transcript: { text: 'hello' }, turn: { seq: 1, timing: {} } } as never);
    await waitFor(() => ok.length + bad.length === 2 || undefined, 5000, 'two replies');
    expect(bad).toEqual([]);
    const reqs = seen.slice(before);
    expect(reqs).toHaveLength(2);
    for (const r of reqs) {
      expect(r.headers.authorization).toBe('Bearer sk-shared');
      expect(r.body).toMatchObject({
        model: 'qwen2.5',
        temperature: 0.1,
        max_tokens: 64,
        response_format: { type: 'json_object' },
      });
      expect(r.body.tools).toBeUndefined();
    }
    expect(ok.map((m) => m.reply.text)).toEqual(['Happy to help.', 'Happy to help.']); // prose in JSON mode: a safe reply
  });

  test('an invalid intent is a configuration error reported on every msg', async () => {
    await helper.load(
      [llmTurn, catchNode],
      onTab([
        {
          id: 'l',
          type: 'llm-turn',
          engine: 'scripted',
          intents: [{ match: '/(/', reply: 'x', action: 'none' }],
          wires: [['ok']],
        },
        { id: 'c', type: 'catch', scope: null, wires: [['caught']] },
        { id: 'ok', type: 'helper' },
        { id: 'caught', type: 'helper' },
      ]),
    );
    const caught = collect('caught');
    helper.getNode('l').receive({ payload: 'hello' } as never);
    const c = await waitFor(() => caught[0], 5000, 'catch');
    expect(c.error.message).toMatch(/invalid regular expression/);
  });
});
