/**
 * ari-originate and ai-dialer-asterisk in the real Node-RED runtime, against the simulator over
 * real HTTP and WebSocket.
 */
import helper from 'node-red-node-test-helper';
import { startSimulator, type SimulatorHandle } from '../../src/sim/index';
import { waitFor } from '../helpers/wait';

import asteriskNode from '../../nodes/ai-dialer-asterisk/ai-dialer-asterisk';
import originateNode from '../../nodes/ari-originate/ari-originate';

helper.init(require.resolve('node-red'));

interface Msg {
  topic?: string;
  event?: string;
  call: Record<string, any>;
  error?: { kind?: string; status?: number };
  keep?: string;
}

function flow(sim: SimulatorHandle, extra: Record<string, unknown> = {}, password?: string) {
  return {
    nodes: [
      { id: 'ast', type: 'ai-dialer-asterisk', mode: 'manual', url: sim.url, username: sim.username, app: 'nr-test' },
      {
        id: 'o',
        type: 'ari-originate',
        asterisk: 'ast',
        endpoint: 'PJSIP/{phone}@trunk',
        agiContext: 'hold',
        timeout: '30',
        amd: 'msg',
        wires: [['answered'], ['outcome']],
        ...extra,
      },
      { id: 'answered', type: 'helper' },
      { id: 'outcome', type: 'helper' },
    ],
    creds: { ast: { password: password ?? sim.password } },
  };
}

describe('ari-originate in the Node-RED runtime', () => {
  let sim: SimulatorHandle;
  beforeAll((done) => {
    helper.startServer(done);
  });
  afterAll((done) => {
    helper.stopServer(done);
  });
  beforeEach(async () => {
    sim = await startSimulator({ speed: 20 });
  });
  afterEach(async () => {
    await helper.unload();
    await sim.close();
  });

  async function load(extra: Record<string, unknown> = {}, password?: string) {
    const f = flow(sim, extra, password);
    await helper.load([asteriskNode, originateNode], f.nodes, f.creds);
    const answered: Msg[] = [];
    const outcome: Msg[] = [];
    helper.getNode('answered').on('input', (m: Msg) => answered.push(m));
    helper.getNode('outcome').on('input', (m: Msg) => outcome.push(m));
    const o = helper.getNode('o');
    const statuses: Array<{ fill?: string; text?: string }> = [];
    const origStatus = o.status.bind(o);
    (o as any).status = (s: { fill?: string; text?: string }) => {
      statuses.push(s);
      return origStatus(s);
    };
    return { o, answered, outcome, statuses };
  }

  test('every outcome path, each once, on output 2; answered on output 1 with msg properties kept', async () => {
    const { o, answered, outcome } = await load();
    sim.setPersona('+15551001', { dial: { behaviour: 'answer', ringMs: 200 }, hangupAfterMs: 400 });
    sim.setPersona('+15551002', { dial: { behaviour: 'busy', ringMs: 200 } });
    sim.setPersona('+15551003', { dial: { behaviour: 'no_answer' } });
    sim.setPersona('+15551004', { dial: { behaviour: 'congestion', ringMs: 100 } });
    sim.setPersona('+15551005', { dial: { behaviour: 'unreachable' } });
    const calls = [
      { id: 1, phone: '+15551001', campaignId: 5, contact: { fields: { plan: 'gold' } } },
      { id: 2, phone: '+15551002' },
      { id: 3, phone: '+15551003', ringTimeout: 2 },
      { id: 4, phone: '+15551004' },
      { id: 5, phone: '+15551005' },
      { id: 6, phone: 'not a number' },
    ];
    for (const call of calls) o.receive({ call, keep: `k${call.id}` } as any);
    await waitFor(() => outcome.length >= 6 || undefined, 15_000, 'six outcomes');
    const byId = (id: number) => outcome.filter((m) => m.call.id === id);
    expect(byId(1).map((m) => m.call.outcome)).toEqual(['completed']);
    expect(byId(2)[0].call).toMatchObject({ outcome: 'busy', hangupCause: 17, dialStatus: 'BUSY', talkMs: 0 });
    expect(byId(3)[0].call).toMatchObject({ outcome: 'no_answer', hangupCause: 19, dialStatus: 'RINGING' });
    expect(byId(4)[0].call).toMatchObject({ outcome: 'congestion', hangupCause: 34 });
    expect(byId(5)[0].call.outcome).toBe('failed');
    expect(byId(6)[0].call.outcome).toBe('failed');
    expect(byId(6)[0].error?.kind).toBe('invalid_input');
    for (const m of outcome) {
      expect(m.topic).toBe('outcome');
      expect(m.event).toBe('call_ended');
      expect(m.keep).toBe(`k${m.call.id}`);
      expect(typeof m.call.ringMs).toBe('number');
      expect(typeof m.call.talkMs).toBe('number');
    }
    expect(outcome).toHaveLength(6);
    expect(answered).toHaveLength(1);
    expect(answered[0]).toMatchObject({
      topic: 'answered',
      event: 'call_answered',
      keep: 'k1',
      call: { id: 1, outcome: 'answered', campaignId: 5 },
    });
    expect(byId(1)[0].call.talkMs).toBeGreaterThanOrEqual(0);
  });

  test('variables reach the channel; AMD requested in msg.call sets AMD_ENABLED', async () => {
    const { o } = await load();
    sim.setPersona('+15551010', { dial: { behaviour: 'no_answer' } });
    o.receive({
      call: {
        id: 'v1',
        phone: '+15551010',
        campaignId: 3,
        contactId: 8,
        amdEnabled: true,
        contact: { fields: { 'First Name': 'Zoë', notes: 'line1\nline2' } },
      },
    } as any);
    const ch = await waitFor(() => sim.channels().find((c) => c.variables.CALL_ID === 'v1'), 5000, 'channel');
    expect(ch.variables).toMatchObject({
      CALL_ID: 'v1',
      CONTACT_PHONE: '+15551010',
      CAMPAIGN_ID: '3',
      CONTACT_ID: '8',
      AMD_ENABLED: '1',
      AMD_NOTSURE: 'human',
      CONTACT_NOTES: 'line1 line2',
    });
    expect(Object.keys(ch.variables)).toContain('CONTACT_FIRST_NAME');
  });

  test('cancel by id and cancel all: outcome cancelled, once each', async () => {
    const { o, outcome } = await load();
    for (const p of ['+15551020', '+15551021', '+15551022']) sim.setPersona(p, { dial: { behaviour: 'no_answer' } });
    o.receive({ call: { id: 'c1', phone: '+15551020' } } as any);
    o.receive({ call: { id: 'c2', phone: '+15551021' } } as any);
    o.receive({ call: { id: 'c3', phone: '+15551022' } } as any);
    await waitFor(
      () => sim.channels().filter((c) => c.state === 'Ringing').length === 3 || undefined,
      5000,
      'three ringing',
    );
    o.receive({ topic: 'cancel', call: { id: 'c2' } } as any);
    await waitFor(() => outcome.length === 1 || undefined, 5000, 'one cancelled');
    expect(outcome[0].call).toMatchObject({ id: 'c2', outcome: 'cancelled' });
    o.receive({ topic: 'cancel' } as any);
    await waitFor(() => outcome.length === 3 || undefined, 5000, 'all cancelled');
    expect(outcome.map((m) => m.call.outcome)).toEqual(['cancelled', 'cancelled', 'cancelled']);
    expect(new Set(outcome.map((m) => m.call.id))).toEqual(new Set(['c1', 'c2', 'c3']));
    expect(sim.channels()).toHaveLength(0);
  });

  test('simulator restarted mid-call: the node reconnects and the outcome is recorded exactly once', async () => {
    const { o, answered, outcome, statuses } = await load();
    sim.setPersona('+15551030', { dial: { behaviour: 'answer', ringMs: 100 } });
    await waitFor(() => statuses.some((s) => s.fill === 'green') || undefined, 5000, 'connected status');
    o.receive({ call: { id: 'r1', phone: '+15551030' } } as any);
    await waitFor(() => answered.length === 1 || undefined, 5000, 'answered');
    await waitFor(
      () => /1 live/.test(statuses[statuses.length - 1].text ?? '') || undefined,
      5000,
      'status shows 1 live call',
    );
    await sim.restart({ downMs: 50 });
    await waitFor(() => outcome.length === 1 || undefined, 10_000, 'reconciled outcome');
    expect(outcome[0].call).toMatchObject({ id: 'r1', outcome: 'completed' });
    expect(outcome[0].call.reason).toMatch(/channel gone/);
    expect(statuses.some((s) => s.fill === 'yellow' && /reconnecting/.test(s.text ?? ''))).toBe(true);
    await waitFor(
      () =>
        (statuses[statuses.length - 1].fill === 'green' && /0 live/.test(statuses[statuses.length - 1].text ?? '')) ||
        undefined,
      5000,
      'green again, 0 live',
    );
    // A new call works over the new connection.
    sim.setPersona('+15551031', { dial: { behaviour: 'busy', ringMs: 50 } });
    o.receive({ call: { id: 'r2', phone: '+15551031' } } as any);
    await waitFor(() => outcome.length === 2 || undefined, 5000, 'second outcome');
    expect(outcome.map((m) => m.call.outcome)).toEqual(['completed', 'busy']);
  });

  test('wrong credentials: red status naming the problem, the call fails with an unauthorized error', async () => {
    const { o, outcome, statuses } = await load({}, 'wrong-password');
    await waitFor(() => statuses.find((s) => s.fill === 'red'), 5000, 'red status');
    expect(statuses.find((s) => s.fill === 'red')?.text).toMatch(/ARI login refused, retry \d+ s/);
    o.receive({ call: { id: 'w1', phone: '+15551040' } } as any);
    await waitFor(() => outcome.length === 1 || undefined, 5000, 'failed outcome');
    expect(outcome[0].call.outcome).toBe('failed');
    // Known bad credentials: refused at once with the typed error, not sent again with the bad password.
    expect(outcome[0].error).toMatchObject({ kind: 'unauthorized', status: 401 });
  });

  test('100 concurrent originates through the node: 100 outcomes, no duplicates', async () => {
    const { o, outcome } = await load();
    for (let i = 0; i < 100; i++)
      sim.setPersona(`+1777${String(i).padStart(7, '0')}`, {
        dial: { behaviour: i % 2 ? 'busy' : 'congestion', ringMs: 100 + (i % 10) * 20 },
      });
    await waitFor(() => (helper.getNode('ast') as any).service.state === 'connected' || undefined, 5000, 'connected');
    for (let i = 0; i < 100; i++) o.receive({ call: { id: i, phone: `+1777${String(i).padStart(7, '0')}` } } as any);
    await waitFor(() => outcome.length >= 100 || undefined, 20_000, '100 outcomes');
    expect(outcome).toHaveLength(100);
    expect(new Set(outcome.map((m) => m.call.id)).size).toBe(100);
    expect(outcome.filter((m) => m.call.outcome === 'busy')).toHaveLength(50);
    expect(outcome.filter((m) => m.call.outcome === 'congestion')).toHaveLength(50);
  });

  test('a msg without call.id is an error, not a call', async () => {
    const { o, outcome } = await load();
    const errors: string[] = [];
    const orig = (o as any).error.bind(o);
    (o as any).error = (e: unknown, m: unknown) => {
      errors.push(String((e as Error)?.message ?? e));
      return orig(e, m);
    };
    o.receive({ payload: 'x' } as any);
    await waitFor(() => errors.length || undefined, 2000, 'error');
    expect(errors[0]).toMatch(/msg.call/);
    expect(outcome).toHaveLength(0);
  });
});

describe('ai-dialer-asterisk in simulator mode', () => {
  beforeAll((done) => {
    helper.startServer(done);
  });
  afterAll((done) => {
    helper.stopServer(done);
  });
  afterEach(() => helper.unload());

  test('starts an in-process simulator; demo personas answer calls', async () => {
    await helper.load(
      [asteriskNode, originateNode],
      [
        { id: 'ast', type: 'ai-dialer-asterisk', mode: 'simulator', app: 'sim-mode', simSpeed: '50', agiPort: '1' },
        {
          id: 'o',
          type: 'ari-originate',
          asterisk: 'ast',
          endpoint: '',
          agiContext: 'ai-dialer-agi',
          timeout: '30',
          amd: 'never',
          wires: [['a'], ['f']],
        },
        { id: 'a', type: 'helper' },
        { id: 'f', type: 'helper' },
      ],
    );
    const got: Msg[] = [];
    helper.getNode('f').on('input', (m: Msg) => got.push(m));
    // demoPersona: a number ending in 1 is busy.
    helper.getNode('o').receive({ call: { id: 's1', phone: '+15550001' } } as any);
    await waitFor(() => got.length || undefined, 10_000, 'outcome');
    expect(got[0].call).toMatchObject({ id: 's1', outcome: 'busy' });
  });

  test('from environment without ARI_URL: a clear configuration error, the call still gets an outcome', async () => {
    const saved = process.env.ARI_URL;
    delete process.env.ARI_URL;
    try {
      await helper.load(
        [asteriskNode, originateNode],
        [
          { id: 'ast', type: 'ai-dialer-asterisk', mode: 'env', app: '' },
          {
            id: 'o',
            type: 'ari-originate',
            asterisk: 'ast',
            endpoint: '',
            agiContext: 'ai-dialer-agi',
            timeout: '30',
            amd: 'msg',
            wires: [[], ['f']],
          },
          { id: 'f', type: 'helper' },
        ],
      );
      const got: Msg[] = [];
      helper.getNode('f').on('input', (m: Msg) => got.push(m));
      helper.getNode('o').receive({ call: { id: 'e1', phone: '+15550005' } } as any);
      await waitFor(() => got.length || undefined, 5000, 'outcome');
      expect(got[0].call).toMatchObject({ outcome: 'failed' });
      expect(got[0].call.reason).toMatch(/ARI_URL is not set/);
    } finally {
      if (saved !== undefined) process.env.ARI_URL = saved;
    }
  });
});
