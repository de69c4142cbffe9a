/**
 * The shipped examples (examples/*.json, listed by Node-RED under Import > Examples): each is a flat
 * array of nodes that only uses core node types and this package's nodes, wires point at real ids,
 * no secret is in it; and each one loads and deploys in the real Node-RED runtime with every config
 * node in "from environment" mode (temporary embedded database, embedded MQTT broker on a free port,
 * the Asterisk simulator), with no node in an error state. The inbound example then answers one
 * simulated call end to end.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import http from 'http';
import type { AddressInfo } from 'net';
import helper from 'node-red-node-test-helper';
import { createRequire } from 'module';
import pkg from '../../package.json';
import { runAgiCall } from '../../src/sim/agi-client';
import { acquireDb, releaseDb, type Db } from '../../src/store/db';
import { waitFor } from '../helpers/wait';
import { givenCall } from '../helpers/call-token';
import { removeScratch } from '../helpers/scratch';

// Node-RED's own node modules, loaded by path at run time (as Node-RED does)
const nodeLoad = createRequire(__filename);
const ROOT = path.join(__dirname, '..', '..');

/** Our node types -> their TypeScript module (the package registers the compiled dist/ twin). */
const OURS: Record<string, unknown> = {};
for (const type of Object.keys(pkg['node-red'].nodes)) OURS[type] = nodeLoad(path.join(ROOT, 'nodes', type, type));
const core = (p: string) => nodeLoad(`@node-red/nodes/core/${p}`);
/** Core node types the examples may use, and the module that registers each. */
const CORE: Record<string, unknown> = {
  comment: core('common/90-comment.js'),
  inject: core('common/20-inject.js'),
  debug: core('common/21-debug.js'),
  catch: core('common/25-catch.js'),
  status: core('common/25-status.js'),
  complete: core('common/24-complete.js'),
  'link in': core('common/60-link.js'),
  'link out': core('common/60-link.js'),
  junction: core('common/05-junction.js'),
  switch: core('function/10-switch.js'),
  function: core('function/10-function.js'),
  change: core('function/15-change.js'),
  delay: core('function/89-delay.js'),
};
const NodeProto = nodeLoad('@node-red/runtime/lib/nodes/Node.js').prototype as { status: (s: unknown) => unknown; id: string };

helper.init(require.resolve('node-red'));

type N = Record<string, any>;  
const EXAMPLES = ['appointment-reminder', 'lead-qualification', 'inbound-answering'];
const CONFIG_TYPES = new Set(['ai-dialer-store', 'ai-dialer-bus', 'ai-dialer-asterisk', 'ai-dialer-llm']);
const CONFIG_REFS: Record<string, string> = { store: 'ai-dialer-store', bus: 'ai-dialer-bus', asterisk: 'ai-dialer-asterisk', server: 'ai-dialer-llm' };
const load = (name: string): N[] => JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', `${name}.json`), 'utf8'));

describe.each(EXAMPLES)('examples/%s.json', (name) => {
  const flow = load(name);
  const byId = new Map(flow.map((n) => [n.id, n]));

  test('is a flat array of nodes with unique ids, of core or registered types only', () => {
    expect(Array.isArray(flow)).toBe(true);
    expect(flow.length).toBeGreaterThan(5);
    for (const n of flow) {
      expect(n && typeof n === 'object' && !Array.isArray(n)).toBe(true);
      expect(typeof n.id).toBe('string');
      expect(typeof n.type).toBe('string');
      expect(n.type === 'tab' || n.type in CORE || n.type in OURS).toBe(true);
    }
    expect(byId.size).toBe(flow.length);
    expect(flow.filter((n) => n.type === 'tab').length).toBeLessThanOrEqual(1);
  });

  test('every wire, tab, config reference and catch scope points at an existing node', () => {
    for (const n of flow) {
      if (n.type === 'tab' || CONFIG_TYPES.has(n.type)) {
        expect(n.z).toBeUndefined();
        continue;
      }
      if (n.z !== undefined) expect(byId.get(n.z)?.type).toBe('tab');
      expect(typeof n.x).toBe('number');
      expect(typeof n.y).toBe('number');
      expect(Array.isArray(n.wires)).toBe(true);
      for (const port of n.wires) for (const target of port) expect({ from: n.id, to: target, exists: byId.has(target) }).toMatchObject({ exists: true });
      for (const [prop, type] of Object.entries(CONFIG_REFS)) {
        if (n[prop]) expect({ node: n.id, prop, type: byId.get(n[prop])?.type }).toEqual({ node: n.id, prop, type });
      }
      if (n.type === 'catch' && Array.isArray(n.scope)) for (const s of n.scope) expect(byId.has(s)).toBe(true);
      if (n.type === 'switch') expect(n.wires).toHaveLength(n.rules.length);
    }
    // the number of outputs of our nodes matches their editor definition
    const outputs: Record<string, number> = { 'campaign-queue': 2, 'ari-originate': 2, 'fastagi-in': 2, 'tts-speak': 2, 'stt-transcribe': 3, 'llm-turn': 2, 'agi-record': 1, 'agi-hangup': 1, 'call-broadcast': 1 };
    for (const n of flow) if (n.type in outputs) expect({ id: n.id, outputs: n.wires.length }).toEqual({ id: n.id, outputs: outputs[n.type] });
  });

  test('no switch node in the per-turn loop (they handle one msg per event-loop turn: docs/guide/default-flow.md)', () => {
    // the loop: speak -> record -> transcribe -> llm turn -> speak; a node in it is one reached from speak
    // that reaches record again
    const next = (id: string): string[] => (byId.get(id)?.wires ?? []).flat();
    const reach = (from: string[]): Set<string> => {
      const seen = new Set<string>();
      const todo = [...from];
      while (todo.length) {
        const id = todo.pop()!;
        if (seen.has(id)) continue;
        seen.add(id);
        todo.push(...next(id));
      }
      return seen;
    };
    const speak = flow.filter((n) => n.type === 'tts-speak').map((n) => n.id);
    expect(speak.length).toBeGreaterThan(0);
    const inLoop = [...reach(speak.flatMap(next))].filter((id) => {
      const back = reach(next(id));
      return speak.some((s) => back.has(s)) || speak.includes(id);
    });
    expect(inLoop.length).toBeGreaterThan(2);
    expect(inLoop.filter((id) => byId.get(id)?.type === 'switch')).toEqual([]);
  });

  test('holds no secret: no credentials, config nodes from the environment, no key or password literal', () => {
    const text = JSON.stringify(flow);
    for (const n of flow) {
      expect(n.credentials).toBeUndefined();
      for (const [k, v] of Object.entries(n)) {
        if (/pass(word)?|secret|api_?key|token/i.test(k)) expect({ node: n.id, key: k, value: v }).toEqual({ node: n.id, key: k, value: '' });
      }
      if (n.type === 'ai-dialer-store' || n.type === 'ai-dialer-bus' || n.type === 'ai-dialer-asterisk') expect(n.mode).toBe('env');
      if (n.type === 'ai-dialer-llm') expect([n.baseUrl, n.model]).toEqual(['', '']);
      if (n.type === 'llm-turn' || n.type === 'tts-speak' || n.type === 'stt-transcribe') expect(n.baseUrl).toBe('');
    }
    expect(text).not.toMatch(/\b(sk|pk|rk)-[A-Za-z0-9]{10,}/); // API-key shapes
    expect(text).not.toMatch(/[a-z]+:\/\/[^/\s"@]+:[^/\s"@]+@/i); // user:password@ in a URL
    expect(text).not.toMatch(/Bearer\s+[A-Za-z0-9]/);
  });

  test('explains itself: a comment node with what it does and what to tweak', () => {
    const comments = flow.filter((n) => n.type === 'comment');
    expect(comments.length).toBeGreaterThanOrEqual(1);
    const all = comments.map((c) => `${c.name}\n${c.info}`).join('\n');
    expect(all).toMatch(/What it does/);
    expect(all).toMatch(/Tweak/i);
  });
});

describe('what each example demonstrates', () => {
  test('appointment reminder: campaign -> originate -> outcomes back; scripted intents with the four actions; templated greeting', () => {
    const flow = load('appointment-reminder');
    const one = (type: string) => flow.filter((n) => n.type === type);
    const [queue] = one('campaign-queue');
    const [orig] = one('ari-originate');
    expect(queue.wires[0]).toContain(orig.id);
    expect(orig.wires[1]).toContain(queue.id); // outcomes back to the queue
    const [script] = one('llm-turn');
    expect(script.engine).toBe('scripted');
    expect(script.greeting).toMatch(/\{\{contact\.name[|}]/);
    expect(script.greeting).toMatch(/\{\{contact\.fields\.appointment[|}]/);
    const actions = Object.fromEntries(script.intents.map((i: N) => [i.name, i.action]));
    expect(actions).toMatchObject({ confirm: 'end_call', reschedule: 'schedule_callback', cancel: 'end_call', 'do-not-call': 'add_to_dnc' });
    for (const i of script.intents) expect(typeof i.match === 'string' && i.match.length > 0 && typeof i.reply === 'string').toBe(true);
    // add_to_dnc and schedule_callback replies reach the queue (do-not-call list; contact called again later)
    const actionSwitch = flow.find((n) => n.type === 'switch' && n.property === 'reply.action.type')!;
    for (const a of ['add_to_dnc', 'schedule_callback']) {
      const idx = actionSwitch.rules.findIndex((r: N) => r.v === a);
      expect(actionSwitch.wires[idx]).toContain(queue.id);
    }
    expect(one('call-broadcast').length).toBeGreaterThanOrEqual(1);
    expect(one('fastagi-in')).toHaveLength(1);
    for (const t of ['tts-speak', 'agi-record', 'stt-transcribe', 'agi-hangup']) expect(one(t).length).toBeGreaterThanOrEqual(1);
  });

  test('lead qualification: OpenAI-compatible engine through the LLM config node (env), a system prompt, transfer routed to agi-hangup', () => {
    const flow = load('lead-qualification');
    const [llm] = flow.filter((n) => n.type === 'llm-turn');
    const server = flow.find((n) => n.id === llm.server)!;
    expect(server.type).toBe('ai-dialer-llm');
    expect(llm.engine).toBe('openai');
    expect(llm.systemPrompt.length).toBeGreaterThan(100);
    expect(llm.transferTargets).toBe('sales');
    const sw = flow.find((n) => n.type === 'switch' && n.property === 'reply.action.type')!;
    const idx = sw.rules.findIndex((r: N) => r.v === 'transfer');
    expect(idx).toBeGreaterThanOrEqual(0);
    expect(sw.wires[idx].map((id: string) => flow.find((n) => n.id === id)?.type)).toEqual(['agi-hangup']); // agi-hangup transfers instead of hanging up
  });

  test('inbound answering: fastagi in and the conversation nodes only, no campaign', () => {
    const flow = load('inbound-answering');
    const ours = new Set(flow.filter((n) => n.type in OURS).map((n) => n.type));
    expect([...ours].sort()).toEqual(['agi-hangup', 'agi-record', 'ai-dialer-store', 'fastagi-in', 'llm-turn', 'stt-transcribe', 'tts-speak']);
  });
});

/* ------------------------------------------------------------------ the real runtime */

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-examples-'));
const ENV_KEYS = ['DATABASE_URL', 'DATA_DIR', 'MQTT_URL', 'MQTT_PORT', 'MQTT_HOST', 'ARI_URL', 'AGI_PORT', 'AGI_HOST', 'LLM_BASE_URL', 'LLM_MODEL', 'LLM_API_KEY', 'TTS_ENGINE', 'STT_ENGINE'];
const savedEnv: Record<string, string | undefined> = {};
const dbOpts = { dataDir: path.join(root, 'db') };
let db: Db;
let fakeLlm: http.Server;
/** What the fake OpenAI-compatible endpoint answers (default 503), and the request bodies it got. */
let llmAnswer: ((body: N) => N) | undefined;
const llmRequests: N[] = [];
/** The last status each node showed (by node id). */
const statuses = new Map<string, { fill?: string; text?: string }>();
const origStatus = NodeProto.status;

beforeAll(async () => {
  for (const k of ENV_KEYS) savedEnv[k] = process.env[k];
  for (const k of ENV_KEYS) delete process.env[k];
  process.env.DATA_DIR = root; // the store from environment opens $DATA_DIR/db
  process.env.MQTT_PORT = '0'; // the embedded broker: any free port (the bus binds 0)
  process.env.MQTT_HOST = '127.0.0.1';
  // an OpenAI-compatible chat endpoint for the lead example
  fakeLlm = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const body = JSON.parse(raw || '{}');
      llmRequests.push({ url: req.url, body });
      if (!llmAnswer) return void res.writeHead(503).end();
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(llmAnswer(body)));
    });
  });
  await new Promise<void>((r) => fakeLlm.listen(0, '127.0.0.1', () => r()));
  process.env.LLM_BASE_URL = `http://127.0.0.1:${(fakeLlm.address() as AddressInfo).port}/v1`;
  process.env.LLM_MODEL = 'test-model';
  db = await acquireDb(dbOpts); // held open across examples (PGlite opens in seconds)
  NodeProto.status = function (this: { id: string }, s: unknown) {
    statuses.set(this.id, (typeof s === 'string' ? { text: s } : (s as object)) ?? {});
    return origStatus.call(this, s);
  };
  await new Promise<void>((r) => helper.startServer(() => r()));
}, 60000);

afterEach(async () => {
  await helper.unload();
  statuses.clear();
});

afterAll(async () => {
  NodeProto.status = origStatus;
  await new Promise<void>((r) => helper.stopServer(() => r()));
  await new Promise<void>((r) => fakeLlm.close(() => r()));
  await releaseDb(dbOpts);
  for (const k of ENV_KEYS) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
  removeScratch(root);
});

/**
 * The example as shipped, with only what a test machine needs changed: port 0 (read back once deployed,
 * see listening) and the Asterisk simulator.
 */
function deployable(name: string): N[] {
  const flow = load(name);
  for (const n of flow) {
    if (n.type === 'fastagi-in') n.port = '0';
    if (n.type === 'ai-dialer-asterisk') Object.assign(n, { mode: 'simulator', agiHost: '127.0.0.1', agiPort: '', simSpeed: '50' });
  }
  return flow;
}

/** The port fastagi-in bound (port 0, read back); a simulator already started is pointed at it, as a dialplan would be. */
async function listening(flow: N[]): Promise<number> {
  const agi = flow.find((n) => n.type === 'fastagi-in')!;
  const agiPort = await waitFor(() => (helper.getNode(agi.id) as unknown as { port?: number }).port, 10000, 'fastagi-in to listen');
  for (const a of flow.filter((n) => n.type === 'ai-dialer-asterisk')) {
    const sim = (helper.getNode(a.id) as unknown as { service?: { simulator?: { sim: { agi: { port: number } } } } }).service?.simulator;
    if (sim) sim.sim.agi.port = agiPort;
  }
  return agiPort;
}

async function deploy(name: string): Promise<{ flow: N[]; agiPort: number }> {
  const flow = deployable(name);
  const modules = [...new Set(flow.filter((n) => n.type !== 'tab').map((n) => (n.type in CORE ? CORE[n.type] : OURS[n.type])))];
  await helper.load(modules as never, flow as never);
  // deployed and settled: the database is open, an originate is connected, the AGI server listens
  await db.query('select 1');
  for (const o of flow.filter((n) => n.type === 'ari-originate')) {
    await waitFor(() => statuses.get(o.id)?.fill === 'green' || undefined, 15000, `${o.id} to connect to the simulator`);
  }
  const agiPort = await listening(flow); // after the originates: their simulator is started
  for (const n of flow) if (n.type !== 'tab' && !CONFIG_TYPES.has(n.type)) expect(helper.getNode(n.id)).toBeTruthy();
  return { flow, agiPort };
}

function problems(): string[] {
  const out: string[] = [];
  for (const [id, s] of statuses) if (s.fill === 'red') out.push(`${id}: status ${s.text}`);
  const spy = helper.log() as unknown as { args: Array<[{ level: number; msg: unknown; id?: string; type?: string }]> };
  for (const [entry] of spy.args) if (entry && entry.level <= 20) out.push(`${entry.type ?? ''} ${entry.id ?? ''}: ${String(entry.msg)}`);
  return out;
}

test.each(EXAMPLES)('%s loads and deploys in the Node-RED runtime with no node in an error state', async (name) => {
  await deploy(name);
  expect(problems()).toEqual([]);
}, 60000);

test('inbound answering answers a simulated call: greeting, FAQ answer, goodbye, hang-up; the call record is completed', async () => {
  const { agiPort } = await deploy('inbound-answering');
  const caller = '+12125550177';
  const result = await runAgiCall({
    host: '127.0.0.1',
    port: agiPort,
    script: 'ai-dialer',
    channel: 'PJSIP/trunk-00000001',
    uniqueid: `1732490000.${Date.now() % 100000}`,
    callerId: caller,
    context: 'ai-dialer-inbound',
    variables: { CALL_DIRECTION: 'inbound' },
    persona: { utterances: ['When are you open on Saturday?', 'No, that is all, thank you.'] },
    speed: 50,
  });
  expect(result).toMatchObject({ endedBy: 'server_closed', hungUp: true, hungUpBy: 'agi' });
  const plays = result.transcript.filter((t) => t.dir === 'cmd' && t.line.startsWith('STREAM FILE'));
  expect(plays).toHaveLength(3); // greeting, the hours, goodbye
  expect(result.recordings).toHaveLength(2);

  const call = await waitFor(
    async () => (await db.query<N>(`select * from calls where direction = 'inbound' and phone = $1 and status = 'completed'`, [caller])).rows[0],
    10000,
    'the inbound call record to be completed',
  );
  const turns = (await db.query<N>('select seq, user_text, bot_text, action from call_turns where call_id = $1 order by seq', [call.id])).rows;
  expect(turns.map((t) => t.seq)).toEqual([0, 1, 2]);
  expect(turns[0].bot_text).toMatch(/^Thank you for calling Sunrise Dental/);
  expect(turns[1]).toMatchObject({ user_text: 'When are you open on Saturday?' });
  expect(turns[1].bot_text).toMatch(/Saturday until noon/);
  expect(turns[2]).toMatchObject({ user_text: 'No, that is all, thank you.', action: 'end_call', bot_text: 'Thank you for calling Sunrise Dental. Goodbye.' });
  expect(call.transcript).toMatch(/When are you open on Saturday\?/);
  expect(problems()).toEqual([]);
}, 60000);

test('the error-state check catches a misconfigured node (lead qualification without LLM_MODEL)', async () => {
  const model = process.env.LLM_MODEL;
  delete process.env.LLM_MODEL;
  try {
    const { flow } = await deploy('lead-qualification');
    const llm = flow.find((n) => n.type === 'llm-turn')!;
    expect(problems().some((p) => p.includes(llm.id))).toBe(true);
  } finally {
    process.env.LLM_MODEL = model;
  }
}, 60000);

test('appointment reminder places a campaign through the simulator: a confirmation and a do-not-call request end to end', async () => {
  const { flow } = await deploy('appointment-reminder');
  const camp = (
    await db.query<{ id: number }>(
      `insert into campaigns (name, status, timezone, window_start, window_end, max_concurrent, calls_per_second)
       values ('City Clinic', 'draft', 'America/New_York', '00:00', '23:59:59', 2, 50) returning id`,
    )
  ).rows[0].id;
  await db.query(`insert into phone_numbers (campaign_id, number) values ($1, '+12125550100')`, [camp]);
  // the simulator's demo callees: a number ending in 6 says "Yes, this is me." (confirms); ending in 4 asks not to be called
  const yes = '+12125550186';
  const dnc = '+12125550184';
  await db.query(
    `insert into contacts (campaign_id, phone, name, timezone, fields) values
       ($1, $2, 'Maria', 'America/New_York', '{"appointment": "Tuesday at 3 pm"}'),
       ($1, $3, 'Sam', 'America/New_York', '{"appointment": "Friday at 9 am"}')`,
    [camp, yes, dnc],
  );
  const queue = flow.find((n) => n.type === 'campaign-queue')!;
  helper.getNode(queue.id).receive({ topic: 'start', payload: { campaignId: camp } } as never);

  const calls = await waitFor(
    async () => {
      const r = await db.query<N>(`select id, phone, status, outcome, transcript from calls where campaign_id = $1 order by phone`, [camp]);
      return r.rows.length === 2 && r.rows.every((c) => c.status === 'completed' && c.transcript) ? r.rows : undefined;
    },
    30000,
    'both calls to complete',
  );
  const turnsOf = async (phone: string) =>
    (await db.query<N>('select seq, user_text, bot_text, action from call_turns where call_id = $1 order by seq', [calls.find((c) => c.phone === phone)!.id])).rows;
  const maria = await turnsOf(yes);
  expect(maria[0].bot_text).toBe('Hello Maria, this is City Clinic calling to remind you of your appointment on Tuesday at 3 pm. Can you make it? You can also say reschedule or cancel.');
  expect(maria[1]).toMatchObject({ user_text: 'Yes, this is me.', action: 'end_call', bot_text: 'Wonderful, we will see you on Tuesday at 3 pm. Goodbye.' });
  expect(maria).toHaveLength(2);
  const sam = await turnsOf(dnc);
  expect(sam[1]).toMatchObject({ user_text: 'Please do not call me again.', action: 'add_to_dnc' });
  await waitFor(async () => (await db.query(`select 1 from dnc where phone = $1`, [dnc])).rows[0], 10000, 'the number on the do-not-call list');
  const contacts = await waitFor(
    async () => {
      const r = await db.query<N>(`select phone, status from contacts where campaign_id = $1 order by phone`, [camp]);
      return r.rows.every((c) => c.status !== 'pending' && c.status !== 'in_call') ? r.rows : undefined;
    },
    10000,
    'both contacts closed',
  );
  expect(Object.fromEntries(contacts.map((c) => [c.phone, c.status]))).toEqual({ [yes]: 'done', [dnc]: 'dnc' });
  expect(problems()).toEqual([]);
}, 90000);

test('lead qualification transfers a qualified lead to sales (dialplan, not hang-up) when the model calls transfer', async () => {
  llmAnswer = (body) => ({
    id: 'x',
    object: 'chat.completion',
    model: body.model,
    choices: [
      {
        index: 0,
        finish_reason: 'tool_calls',
        message: { role: 'assistant', content: 'Great, let me connect you with our sales team.', tool_calls: [{ id: 't1', type: 'function', function: { name: 'transfer', arguments: '{"destination":"sales"}' } }] },
      },
    ],
  });
  llmRequests.length = 0;
  try {
    const { flow } = await deploy('lead-qualification');
    const qualified: N[] = [];
    helper.getNode(flow.find((n) => n.name === 'qualified lead')!.id).on('input', (m: N) => qualified.push(m));
    const camp = (
      await db.query<{ id: number }>(
        `insert into campaigns (name, status, timezone, window_start, window_end, max_concurrent, calls_per_second)
         values ('Acme Solar', 'draft', 'America/New_York', '00:00', '23:59:59', 2, 50) returning id`,
      )
    ).rows[0].id;
    await db.query(`insert into phone_numbers (campaign_id, number) values ($1, '+12125550100')`, [camp]);
    const lead = '+12125550197'; // a simulator talker: "Yes, this is me." first
    await db.query(`insert into contacts (campaign_id, phone, name, timezone, fields) values ($1, $2, 'Dana', 'America/New_York', '{"interest": "a home battery"}')`, [camp, lead]);
    helper.getNode(flow.find((n) => n.type === 'campaign-queue')!.id).receive({ topic: 'start', payload: { campaignId: camp } } as never);

    const msg = await waitFor(() => qualified[0], 30000, 'the qualified lead');
    expect(msg.reply).toMatchObject({ done: true, action: { type: 'transfer', destination: 'sales' } });
    // not hung up: handed to the dialplan at extension "sales" of the transfer context
    expect(msg.call).toMatchObject({ phone: lead, transferredTo: 'sales@ai-dialer-transfer' });
    expect(msg.call.hungUp).toBeUndefined();
    expect(msg.call.transcript).toMatch(/Caller: Yes, this is me\.\nAgent: Great, let me connect you with our sales team\./);
    // the model saw the rendered system prompt and could only transfer to the listed destination
    const chat = llmRequests.find((r) => r.url === '/v1/chat/completions')!.body;
    expect(chat.model).toBe('test-model');
    expect(chat.messages[0].content).toMatch(/calling Dana on behalf of Acme Solar\.\nThey asked for information about a home battery\./);
    const transfer = chat.tools.find((t: N) => t.function.name === 'transfer');
    expect(transfer.function.parameters.properties.destination.enum).toEqual(['sales']);
    const call = await waitFor(
      async () => (await db.query<N>(`select id, status from calls where campaign_id = $1 and status = 'completed'`, [camp])).rows[0],
      10000,
      'the call record to be completed',
    );
    const turns = (await db.query<N>('select seq, user_text, bot_text, action from call_turns where call_id = $1 order by seq', [call.id])).rows;
    expect(turns[0].bot_text).toBe('Hi Dana, this is Alex from Acme Solar. You asked us about a home battery. Do you have two minutes?');
    expect(turns[1]).toMatchObject({ user_text: 'Yes, this is me.', action: 'transfer', bot_text: 'Great, let me connect you with our sales team.' });
    expect(problems()).toEqual([]);
  } finally {
    llmAnswer = undefined;
  }
}, 90000);

test("Node-RED's example library lists the three flows and the default flow under the package (Import > Examples)", async () => {
  const library = nodeLoad('@node-red/registry/lib/library.js') as {
    init(): void;
    addExamplesDir(module: string, dir: string): Promise<void>;
    getExampleFlows(): Record<string, { f?: string[] }> | null;
    getExampleFlowPath(module: string, p: string): string | null;
  };
  const pkgJson = pkg;
  expect(pkgJson.files).toContain('examples/'); // shipped in the npm package
  library.init();
  await library.addExamplesDir(pkgJson.name, path.join(ROOT, 'examples'));
  // the default flow: copied there by the build (npm test and npm pack build first) from flows/ai-dialer.json
  expect(library.getExampleFlows()?.[pkgJson.name]?.f?.sort()).toEqual([...EXAMPLES, 'default-flow'].sort());
  for (const e of EXAMPLES) expect(fs.existsSync(library.getExampleFlowPath(pkgJson.name, e) as string)).toBe(true);
  expect(fs.readFileSync(library.getExampleFlowPath(pkgJson.name, 'default-flow') as string, 'utf8')).toBe(
    fs.readFileSync(path.join(ROOT, 'flows', 'ai-dialer.json'), 'utf8'),
  );
});

test('appointment reminder: "reschedule" says the callback line, hangs up and asks the queue for a callback in 24 hours', async () => {
  const { agiPort } = await deploy('appointment-reminder');
  const camp = (await db.query<{ id: number }>(`insert into campaigns (name, status) values ('Dental Care', 'draft') returning id`)).rows[0].id;
  const phone = '+12125550133';
  const contact = (
    await db.query<{ id: number }>(`insert into contacts (campaign_id, phone, name, fields) values ($1, $2, 'Lee', '{"appointment": "Monday at 11"}') returning id`, [camp, phone])
  ).rows[0].id;
  const callId = (
    await db.query<{ id: number }>(`insert into calls (direction, phone, status, campaign_id, contact_id) values ('outbound', $1, 'initiated', $2, $3) returning id`, [phone, camp, contact])
  ).rows[0].id;
  const result = await runAgiCall({
    host: '127.0.0.1',
    port: agiPort,
    script: 'ai-dialer',
    channel: `PJSIP/trunk-0000000${callId % 10}`,
    uniqueid: `1732491000.${callId}`,
    variables: {
      CALL_ID: String(callId),
      CALL_TOKEN: givenCall(callId),
      CONTACT_PHONE: phone,
      CAMPAIGN_ID: String(camp),
      CONTACT_ID: String(contact),
    },
    persona: { utterances: ['Sorry, I need to reschedule.'] },
    speed: 50,
  });
  expect(result).toMatchObject({ endedBy: 'server_closed', hungUp: true, hungUpBy: 'agi' });
  const turns = (await db.query<N>('select seq, user_text, bot_text, action from call_turns where call_id = $1 order by seq', [callId])).rows;
  expect(turns[0].bot_text).toMatch(/^Hello Lee, this is Dental Care calling to remind you of your appointment on Monday at 11\./);
  expect(turns[1]).toMatchObject({ user_text: 'Sorry, I need to reschedule.', action: 'schedule_callback', bot_text: 'No problem. We will call you back tomorrow to find a new time. Goodbye.' });
  const meta = await waitFor(async () => (await db.query<N>('select metadata from calls where id = $1', [callId])).rows[0].metadata?.callback_at, 10000, 'the callback request');
  const inHours = (new Date(meta).getTime() - Date.now()) / 3600_000;
  expect(inHours).toBeGreaterThan(23);
  expect(inHours).toBeLessThanOrEqual(24);
  expect(problems()).toEqual([]);
}, 60000);

/* ------------------------------------------------------------------ record and stream mode */

/** What the callee says in each example, and what its conversation ends with. */
const IN_BOTH_MODES: Record<string, { utterances: string[]; turns: number; action: string }> = {
  'appointment-reminder': { utterances: ['Yes, this is me.'], turns: 2, action: 'end_call' },
  'lead-qualification': { utterances: ['Yes, this is me.'], turns: 2, action: 'end_call' },
  'inbound-answering': { utterances: ['When are you open on Saturday?', 'No, that is all, thank you.'], turns: 3, action: 'end_call' },
};

describe.each(['record', 'stream'])('every example completes a call in %s mode', (media) => {
  test.each(EXAMPLES)('%s', async (name) => {
    const want = IN_BOTH_MODES[name];
    if (name === 'lead-qualification')
      llmAnswer = (body) => ({
        id: 'x',
        object: 'chat.completion',
        model: body.model,
        choices: [
          {
            index: 0,
            finish_reason: 'tool_calls',
            message: { role: 'assistant', content: 'Thank you, goodbye.', tool_calls: [{ id: 't1', type: 'function', function: { name: 'end_call', arguments: '{}' } }] },
          },
        ],
      });
    try {
      const flow = deployable(name);
      for (const n of flow) if (n.type === 'fastagi-in') n.media = media;
      const modules = [...new Set(flow.filter((n) => n.type !== 'tab').map((n) => (n.type in CORE ? CORE[n.type] : OURS[n.type])))];
      await helper.load(modules as never, flow as never);
      const agiPort = await listening(flow);
      const inbound = name === 'inbound-answering';
      const phone = `+1212555${inbound ? '02' : '03'}${media === 'stream' ? 1 : 0}${EXAMPLES.indexOf(name)}`;
      const variables: Record<string, string> = inbound ? { CALL_DIRECTION: 'inbound' } : {};
      if (!inbound) {
        const camp = (await db.query<{ id: number }>(`insert into campaigns (name, status) values ('Modes', 'draft') returning id`)).rows[0].id;
        const contact = (
          await db.query<{ id: number }>(`insert into contacts (campaign_id, phone, name, fields) values ($1, $2, 'Kim', '{"appointment": "Monday at 11", "interest": "solar"}') returning id`, [camp, phone])
        ).rows[0].id;
        const callId = (
          await db.query<{ id: number }>(`insert into calls (direction, phone, status, campaign_id, contact_id) values ('outbound', $1, 'initiated', $2, $3) returning id`, [phone, camp, contact])
        ).rows[0].id;
        Object.assign(variables, { CALL_ID: String(callId), CALL_TOKEN: givenCall(callId), CONTACT_PHONE: phone, CAMPAIGN_ID: String(camp), CONTACT_ID: String(contact) });
      }
      const result = await runAgiCall({
        host: '127.0.0.1',
        port: agiPort,
        script: 'ai-dialer',
        channel: `PJSIP/trunk-000000${media === 'stream' ? 5 : 4}${EXAMPLES.indexOf(name)}`,
        uniqueid: `1732492000.${Date.now() % 100000}`,
        callerId: phone,
        context: inbound ? 'ai-dialer-inbound' : 'ai-dialer',
        variables,
        persona: { utterances: want.utterances.map((text) => ({ text, pauseMs: 300 })) },
        speed: 50,
      });
      expect(result).toMatchObject({ endedBy: 'server_closed', hungUp: true, hungUpBy: 'agi' });
      if (media === 'stream') {
        // the conversation went over AudioSocket: no RECORD FILE, no STREAM FILE
        expect(result.audioSocket).toHaveLength(1);
        expect(result.audioSocket[0].endedBy).toBe('server_hangup');
        expect(result.transcript.filter((t) => t.dir === 'cmd' && /^(RECORD|STREAM) FILE/.test(t.line))).toEqual([]);
      } else {
        expect(result.audioSocket).toEqual([]);
        expect(result.recordings).toHaveLength(want.utterances.length);
      }
      // an inbound call is completed by fastagi in; an outbound one by its originate (not in this test)
      const call = await waitFor(
        async () => (await db.query<N>(`select * from calls where phone = $1 and (status = 'completed' or direction = 'outbound')`, [phone])).rows[0],
        10000,
        'the call record',
      );
      const turns = await waitFor(
        async () => {
          const rows = (await db.query<N>('select seq, user_text, bot_text, action, media from call_turns where call_id = $1 order by seq', [call.id])).rows;
          return rows.length >= want.turns ? rows : undefined;
        },
        10000,
        'the turns stored',
      );
      expect(turns).toHaveLength(want.turns);
      expect(turns.slice(1).map((t) => t.user_text)).toEqual(want.utterances);
      expect(turns[turns.length - 1].action).toBe(want.action);
      if (media === 'stream') for (const t of turns) expect({ seq: t.seq, media: t.media }).toEqual({ seq: t.seq, media: 'stream' });
      expect(problems()).toEqual([]);
    } finally {
      llmAnswer = undefined;
    }
  }, 60000);
});
