/**
 * ai-dialer-bus and call-broadcast in the real Node-RED runtime: publishing to the embedded aedes broker
 * (read over TCP and over WebSocket on the runtime's HTTP server), to the Mosquitto server at
 * 127.0.0.1:1883, and buffering while an external broker is down.
 */
import * as mqtt from 'mqtt';
import { EmbeddedBroker } from '../../src/events/broker';
import { CampaignControl, controlBus } from '../../src/events/control-bus';
import { validateEvent } from '../../src/events/schema';
import { connect, end, mosquittoUp, runId, subscribe, waitFor } from './mqtt-helpers';

import helper from 'node-red-node-test-helper';
import busNode from '../../nodes/ai-dialer-bus/ai-dialer-bus';
import broadcastNode from '../../nodes/call-broadcast/call-broadcast';
import { requireTool } from '../helpers/tools';
import { disposeParked } from '../../src/util/handoff';

helper.init(require.resolve('node-red'));

const call = { id: `${runId}-1`, campaignId: 5, contactId: 3, phone: '+15550102030' };

function flow(bus: Record<string, unknown>, eventType = 'msg') {
  return [
    { id: 'bus', type: 'ai-dialer-bus', ...bus },
    { id: 'b', type: 'call-broadcast', bus: 'bus', eventType, wires: [['out']] },
    { id: 'out', type: 'helper' },
  ];
}

interface Collected {
  topics: string[];
  events: any[];
}
function collect(c: mqtt.MqttClient): Collected {
  const got: Collected = { topics: [], events: [] };
  c.on('message', (t, p) => {
    if (p.length === 0) return; // a cleared retained message
    got.topics.push(t);
    got.events.push(JSON.parse(p.toString()));
  });
  return got;
}

function watch(nodeId: string) {
  const n = helper.getNode(nodeId) as any;
  const errors: string[] = [];
  const statuses: { fill?: string; text?: string }[] = [];
  n.on('call:error', (c: any) => errors.push(String(c.args[0]?.message ?? c.args[0])));
  n.on('call:status', (c: any) => statuses.push(c.args[0]));
  return { node: n, errors, statuses };
}

/**
 * Node-RED's runtime arms a 5 s timer (its default inboundWebSocketTimeout, not unref'd) on every WebSocket
 * upgrade of its HTTP server (@node-red/runtime/lib/index.js); the test helper gives no way to shorten it.
 * Wait out the last one before the file ends, so the Jest worker exits on its own.
 */
const NODE_RED_UPGRADE_TIMER_MS = 5000;
let lastUpgradeAt = 0;

describe('event bus + broadcast nodes in Node-RED', () => {
  const clients: mqtt.MqttClient[] = [];
  beforeAll((done) => {
    helper.startServer(done);
  });
  afterAll(async () => {
    await new Promise<void>((resolve, reject) => helper.stopServer((err?: Error) => (err ? reject(err) : resolve())));
    const left = lastUpgradeAt + NODE_RED_UPGRADE_TIMER_MS + 50 - Date.now();
    if (lastUpgradeAt && left > 0) await new Promise((r) => setTimeout(r, left));
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await end(c);
    await helper.unload();
  });
  const open = async (url: string, opts: mqtt.IClientOptions = {}) => {
    const c = await connect(url, opts);
    clients.push(c);
    return c;
  };

  test('embedded broker: events published, read over TCP and WebSocket (/mqtt on the runtime port); bad msg -> done(err); writer controls reach controlBus', async () => {
    await helper.load(
      [busNode, broadcastNode],
      flow({ mode: 'embedded', port: '0', writerUser: 'sup', readerUser: 'dash', ws: true }),
      {
        bus: { writerPassword: 'sup-pw', readerPassword: 'dash-pw' },
      },
    );
    const b = watch('b');
    const bus = helper.getNode('bus') as any;
    const handle = await bus.getBus();
    await handle.controlsReady;
    const port: number = handle.broker.port; // port 0: bound and read back
    expect(port).toBeGreaterThan(0);
    const dash = { username: 'dash', password: 'dash-pw' };
    const tcp = await open(`mqtt://127.0.0.1:${port}`, dash);
    const wsUrl = helper.url().replace(/^http/, 'ws') + '/mqtt';
    lastUpgradeAt = Date.now();
    const ws = await open(wsUrl, dash);
    const atTcp = collect(tcp);
    const atWs = collect(ws);
    await subscribe(tcp, 'ai-dialer/v1/#');
    await subscribe(ws, `ai-dialer/v1/calls/${call.id}/events`);
    // anonymous is refused (accounts configured)
    await expect(connect(`mqtt://127.0.0.1:${port}`)).rejects.toMatchObject({ code: 5 });

    const out: any[] = [];
    helper.getNode('out').on('input', (m: any) => out.push(m));
    b.node.receive({ event: 'call_started', call });
    b.node.receive({
      event: 'conversation_turn',
      call,
      turn: {
        seq: 1,
        userText: 'hello',
        botText: 'Hi there',
        timing: { recordMs: 1200, sttMs: 150, llmMs: 300, ttsMs: 80, playbackMs: 900 },
      },
    });
    b.node.receive({
      event: 'call_ended',
      call: {
        ...call,
        outcome: 'completed',
        durationMs: 4200,
        transcript: [{ seq: 1, userText: 'hello', botText: 'Hi there' }],
      },
    });
    b.node.receive({ event: 'campaign_progress', progress: { campaignId: 5, queued: 9, completed: 1 } });
    await waitFor(() => atTcp.events.length === 4 && atWs.events.length === 3, 'events over TCP and WebSocket');
    expect(atTcp.events.map((e) => e.type)).toEqual([
      'call_started',
      'conversation_turn',
      'call_ended',
      'campaign_progress',
    ]);
    for (const e of atTcp.events) expect(validateEvent(e)).toEqual([]);
    expect(atTcp.topics).toEqual([
      ...Array(3).fill(`ai-dialer/v1/calls/${call.id}/events`),
      'ai-dialer/v1/campaigns/5/status',
    ]);
    expect(atWs.events.map((e) => e.type)).toEqual(['call_started', 'conversation_turn', 'call_ended']);
    expect(atWs.events[1].timing).toEqual({ recordMs: 1200, sttMs: 150, llmMs: 300, ttsMs: 80, playbackMs: 900 });
    await waitFor(() => out.length === 4, 'msgs passed on');
    expect(out[0].broadcast).toEqual({ type: 'call_started', topic: `ai-dialer/v1/calls/${call.id}/events` });
    await waitFor(
      () => b.statuses.some((s) => s.fill === 'green' && /connected · 4 sent/.test(s.text ?? '')),
      `status with counts (got ${JSON.stringify(b.statuses)})`,
    );

    // invalid input: a clear error for a Catch node, nothing published
    b.node.receive({ event: 'call_ended', call: { ...call, durationMs: 5 } });
    b.node.receive({ call });
    b.node.receive({ event: 'call_started', call: { ...call, id: 'a/b' } });
    await waitFor(() => b.errors.length === 3, 'three errors');
    expect(b.errors[0]).toMatch(/call_ended needs msg\.call\.outcome/);
    expect(b.errors[1]).toMatch(/msg\.event is undefined; set it to call_started/);
    expect(b.errors[2]).toMatch(/callId/);

    // supervisor control from the writer account
    const got: CampaignControl[] = [];
    const on = (c: CampaignControl) => got.push(c);
    controlBus.on('campaign', on);
    try {
      const sup = await open(`mqtt://127.0.0.1:${port}`, { username: 'sup', password: 'sup-pw' });
      await sup.publishAsync(`ai-dialer/v1/campaigns/${runId}/control`, '{"action":"start"}', { qos: 1 });
      await waitFor(() => got.length === 1, 'campaign control');
      expect(got).toEqual([{ campaignId: runId, action: 'start' }]);
    } finally {
      controlBus.off('campaign', on);
    }
    // the reader saw the control too (it may read everything under the root) and no event from the bad msgs
    expect(atTcp.events.filter((e) => e.type).map((e) => e.type)).toEqual([
      'call_started',
      'conversation_turn',
      'call_ended',
      'campaign_progress',
    ]);
  });

  test('external broker down: the call carries on (done at once), status shows buffering, events arrive in order when it is back', async () => {
    // a broker that is down: bound as 0, read back and closed; it comes back on the same port below
    const first = await EmbeddedBroker.start({ port: 0 });
    const port = first.port;
    await first.close();
    await helper.load([busNode, broadcastNode], flow({ mode: 'external', url: `mqtt://127.0.0.1:${port}` }, 'status'), {
      bus: { username: 'w', password: 'w-pw' },
    });
    const b = watch('b');
    const out: any[] = [];
    helper.getNode('out').on('input', (m: any) => out.push(m));
    const statuses = ['initiated', 'ringing', 'in_progress', 'completed'];
    for (const s of statuses) b.node.receive({ call, status: s });
    await waitFor(() => out.length === 4, 'all four msgs done while the broker is down');
    await waitFor(() => b.statuses.some((s) => /down · 4 held, 0 lost/.test(s.text ?? '')), 'buffering status');
    expect(b.errors).toEqual([]);
    const broker = await EmbeddedBroker.start({
      port,
      accounts: [{ username: 'r', password: 'r-pw', role: 'reader' }],
    });
    try {
      const r = await open(broker.url, { username: 'r', password: 'r-pw' });
      const got = collect(r);
      await subscribe(r, `ai-dialer/v1/calls/${call.id}/events`);
      broker.addAccounts([{ username: 'w', password: 'w-pw', role: 'writer' }]);
      await waitFor(() => got.events.length === 4, 'buffered events after the broker is back');
      expect(got.events.map((e) => e.status)).toEqual(statuses);
      await waitFor(() => b.statuses.some((s) => s.fill === 'green'), 'connected status');
      await helper.unload();
    } finally {
      await broker.close();
    }
  });

  test('two bus nodes on one port share one embedded broker; it closes with the last of them', async () => {
    // both on port 0: the same port setting, one broker on the port bound (read back below)
    await helper.load(
      [busNode, broadcastNode],
      [
        { id: 'bus1', type: 'ai-dialer-bus', mode: 'embedded', port: '0', readerUser: 'dash' },
        { id: 'bus2', type: 'ai-dialer-bus', mode: 'embedded', port: '0', writerUser: 'sup' },
        { id: 'b1', type: 'call-broadcast', bus: 'bus1', eventType: 'call_started', wires: [] },
        { id: 'b2', type: 'call-broadcast', bus: 'bus2', eventType: 'call_started', wires: [] },
      ],
      { bus1: { readerPassword: 'dash-pw' }, bus2: { writerPassword: 'sup-pw' } },
    );
    const [h1, h2] = await Promise.all([
      (helper.getNode('bus1') as any).getBus(),
      (helper.getNode('bus2') as any).getBus(),
    ]);
    expect(h1.broker).toBe(h2.broker);
    const port: number = h1.broker.port;
    const sub = await open(`mqtt://127.0.0.1:${port}`, { username: 'dash', password: 'dash-pw' });
    const got = collect(sub);
    await subscribe(sub, 'ai-dialer/v1/calls/+/events');
    helper.getNode('b1').receive({ call: { ...call, id: `${runId}-s1` } });
    helper.getNode('b2').receive({ call: { ...call, id: `${runId}-s2` } });
    await waitFor(() => got.events.length === 2, 'both events');
    expect(got.events.map((e) => e.callId).sort()).toEqual([`${runId}-s1`, `${runId}-s2`]);
    await end(sub);
    clients.length = 0;
    await helper.unload();
    // a bus closed without its node being removed is kept 30 s for the next Deploy (src/util/handoff.ts);
    // the flows stopping for good (the runtime's shutdown) release it: the broker closes with the last bus
    await disposeParked();
    await expect(
      connect(`mqtt://127.0.0.1:${port}`, { username: 'dash', password: 'dash-pw', connectTimeout: 1000 }),
    ).rejects.toBeTruthy();
  });

  test('port taken (a Mosquitto on 1883): the bus falls back to WebSocket only with one line, and broadcast works', async () => {
    const blocker = await EmbeddedBroker.start({ port: 0 });
    try {
      await helper.load([busNode, broadcastNode], flow({ mode: 'embedded', port: String(blocker.port) }), {});
      const busLog: string[] = [];
      (helper.getNode('bus') as any).on('call:log', (c: any) => busLog.push(String(c.args[0])));
      const b = watch('b');
      b.node.receive({ event: 'call_started', call });
      // as `npm start` does: one line, and the events still go out (sent: 1)
      await waitFor(() => b.statuses.some((s) => s.fill === 'green' && /1/.test(String(s.text))), 'event sent');
      expect(b.errors).toEqual([]);
      expect(busLog.filter((l) => /already in use/.test(l))).toEqual([
        expect.stringContaining(`MQTT port ${blocker.port} is already in use`),
      ]);
    } finally {
      await helper.unload();
      await blocker.close();
    }
  });
});

describe('event bus + broadcast nodes publishing to Mosquitto (127.0.0.1:1883)', () => {
  let up = false;
  beforeAll(async () => {
    up = requireTool('Mosquitto at 127.0.0.1:1883', await mosquittoUp(), '.ci/run starts it');
  });
  afterEach(async () => {
    await helper.unload();
  });
  test('events reach a real mqtt.js subscriber on Mosquitto, retained progress included', async () => {
    if (!up) return;
    const root = `ai-dialer-test/${runId}`;
    await helper.load([busNode, broadcastNode], flow({ mode: 'external', url: 'mqtt://127.0.0.1:1883', root }), {});
    const b = watch('b');
    const sub = await connect('mqtt://127.0.0.1:1883');
    try {
      const got = collect(sub);
      await subscribe(sub, `${root}/#`);
      b.node.receive({
        event: 'call_answered',
        call: { ...call, channel: 'PJSIP/trunk-01', amd: { status: 'HUMAN' } },
      });
      b.node.receive({ event: 'campaign_progress', progress: { campaignId: `m${runId}`, queued: 3, completed: 1 } });
      await waitFor(() => got.events.length === 2, 'events at the Mosquitto subscriber');
      expect(got.topics).toEqual([`${root}/calls/${call.id}/events`, `${root}/campaigns/m${runId}/status`]);
      expect(got.events[0]).toMatchObject({ v: 1, type: 'call_answered', callId: call.id, amd: 'HUMAN' });
      for (const e of got.events) expect(validateEvent(e)).toEqual([]);
      // retained on Mosquitto: a late subscriber gets it; then clear it
      const late = await connect('mqtt://127.0.0.1:1883');
      const lateGot = collect(late);
      await subscribe(late, `${root}/campaigns/+/status`);
      await waitFor(() => lateGot.events.length === 1, 'retained progress');
      expect(lateGot.events[0]).toMatchObject({ type: 'campaign_progress', percent: 25 });
      await late.publishAsync(`${root}/campaigns/m${runId}/status`, '', { qos: 1, retain: true });
      await end(late);
    } finally {
      await end(sub);
    }
  });
});
