/**
 * ari-originate's controller driven directly against the Asterisk simulator: the status state
 * machine, the outcome mapping and the originate request as pure functions, then calls placed
 * through a real AriService and followed to their outcomes.
 */
import { AriOriginateController, callRequest, originateStatus, outcomeMsg } from '../../src/controllers/ari-originate';
import { AriService } from '../../src/ari/service';
import { AriError } from '../../src/ari/client';
import { startSimulator, type SimulatorHandle } from '../../src/sim/index';
import type { CallOutcome } from '../../src/ari/calls';
import type { DialerMsg, MsgCall } from '../../src/types/msg';
import { waitFor } from '../helpers/wait';
import { keys, recordingView } from './view';

const source = { id: 'n1', type: 'ari-originate', name: 'dial' };

test('status: one line per connection state, with the live count', () => {
  const short: typeof keys = (key, vars) => `${key.replace('status.', '')}${vars ? JSON.stringify(vars) : ''}`;
  expect(originateStatus('connected', 3, short)).toEqual({
    fill: 'green',
    shape: 'dot',
    text: 'connected · live{"n":3}',
  });
  expect(originateStatus('idle', 0, keys)).toMatchObject({
    fill: 'yellow',
    text: expect.stringMatching(/^status.connecting/),
  });
  expect(originateStatus('reconnecting', 0, keys).text).toMatch(/^status.reconnecting/);
  expect(originateStatus('unauthorized', 0, keys, { retryInMs: 4500 })).toEqual({
    fill: 'red',
    shape: 'ring',
    text: 'status.unauthorized {"s":5}',
  });
  expect(originateStatus('unreachable', 1, keys).fill).toBe('red');
  expect(originateStatus('closed', 1, keys)).toEqual({});
  expect(originateStatus('error', 0, keys, { error: 'bad url' })).toEqual({
    fill: 'red',
    shape: 'dot',
    text: 'bad url',
  });
});

test('outcome mapping: answered to output 1 semantics, final outcomes carry cause, reason and a typed error', () => {
  const base: CallOutcome = { callId: 5, outcome: 'answered', phone: '+1', channelId: 'c1', ringMs: 10, talkMs: 0 };
  const a = outcomeMsg({ call: { id: 5, phone: '+1', contactId: 2 }, keep: 'me' }, base, source);
  expect(a).toMatchObject({
    topic: 'answered',
    event: 'call_answered',
    keep: 'me',
    call: { id: 5, contactId: 2, outcome: 'answered', channelId: 'c1' },
  });
  const f = outcomeMsg(
    undefined,
    {
      ...base,
      outcome: 'failed',
      hangupCause: 34,
      hangupCauseText: 'congestion',
      reason: 'no route',
      error: new AriError('network', 'down'),
    },
    source,
  );
  expect(f).toMatchObject({
    topic: 'outcome',
    event: 'call_ended',
    call: { id: 5, phone: '+1', outcome: 'failed', hangupCause: 34, hangupCauseText: 'congestion', reason: 'no route' },
    error: { message: expect.stringMatching(/down/), source, kind: 'network' },
  });
});

test('the originate request: AMD as the node says or as the call asks; contact fields and ids', () => {
  const call = {
    id: 1,
    phone: '+1555',
    contact: { id: 8, fields: { plan: 'gold' } },
    amd: { requested: true },
    ringTimeout: 12,
  } as unknown as MsgCall;
  expect(callRequest(call, { amd: 'msg' })).toMatchObject({
    id: 1,
    phone: '+1555',
    contactId: 8,
    fields: { plan: 'gold' },
    amd: true,
    amdNotSure: 'human',
    timeoutSec: 12,
  });
  expect(callRequest(call, { amd: 'never' }).amd).toBe(false);
  expect(callRequest({ id: 2, phone: '+1' }, { amd: 'always', amdNotSure: 'machine' })).toMatchObject({
    amd: true,
    amdNotSure: 'machine',
  });
  expect(callRequest({ id: 2, phone: '+1', amdEnabled: true }, {}).amd).toBe(true);
  expect(callRequest({ id: 2, phone: '+1', ringTimeout: -1 }, {}).timeoutSec).toBeUndefined();
});

describe('against the simulator', () => {
  let sim: SimulatorHandle;
  let service: AriService;
  beforeAll(async () => {
    sim = await startSimulator({ speed: 20 });
    service = new AriService({
      mode: 'manual',
      url: sim.url,
      username: sim.username,
      password: sim.password,
      app: 'ctl-test',
    });
  });
  afterAll(async () => {
    await service.close();
    await sim.close();
  });

  test('busy and answered calls reach their outputs once; a duplicate id and a msg without a call are refused; cancel ends a ringing call', async () => {
    sim.setPersona('+15553001', { dial: { behaviour: 'busy', ringMs: 50 } });
    sim.setPersona('+15553002', { dial: { behaviour: 'answer', ringMs: 50 }, hangupAfterMs: 300 });
    sim.setPersona('+15553003', { dial: { behaviour: 'no_answer' } });
    const view = recordingView();
    const out: { port: 0 | 1; msg: DialerMsg }[] = [];
    const ctl = new AriOriginateController(
      { timeout: '30' },
      service,
      view,
      keys,
      {
        send: (port, msg) => out.push({ port, msg }),
        clone: (m) => structuredClone(m),
        source,
      },
      { DIAL_ENDPOINT: 'PJSIP/{phone}@trunk' },
    );
    await ctl.handle({ call: { id: 'b1', phone: '+15553001' }, keep: 1 });
    await ctl.handle({ call: { id: 'a1', phone: '+15553002' } });
    await ctl.handle({ call: { id: 'r1', phone: '+15553003' } });
    await expect(ctl.handle({ call: { id: 'r1', phone: '+15553003' } })).rejects.toThrow('error.duplicate {"id":"r1"}');
    await expect(ctl.handle({ payload: 'x' })).rejects.toThrow('error.noCall');
    await ctl.handle({ topic: 'cancel', call: { id: 'r1' } });
    await waitFor(() => out.filter((o) => o.port === 1).length === 3 || undefined, 10_000, 'three outcomes');
    const by = (id: string, port: number) => out.filter((o) => o.msg.call?.id === id && o.port === port);
    expect(by('b1', 1)).toHaveLength(1);
    expect(by('b1', 1)[0].msg).toMatchObject({ keep: 1, call: { outcome: 'busy' } });
    expect(by('a1', 0)[0].msg.call?.outcome).toBe('answered');
    expect(by('a1', 1)[0].msg.call?.outcome).toBe('completed');
    expect(by('r1', 1)[0].msg.call?.outcome).toBe('cancelled');
    await waitFor(() => view.statuses.some((s) => s.fill === 'green') || undefined, 5000, 'a connected status');
    await ctl.close();
    expect(view.last()).toEqual({});
  });

  test('closed while the connection is being made: nothing is dialed, the call ends as failed, the tracker is let go', async () => {
    const fresh = new AriService({
      mode: 'manual',
      url: sim.url,
      username: sim.username,
      password: sim.password,
      app: 'ctl-early-close',
    });
    const requests: string[] = [];
    const onRequest = (method: string, pathname: string) => requests.push(`${method} ${pathname}`);
    sim.sim.on('request', onRequest);
    const out: DialerMsg[] = [];
    const ctl = new AriOriginateController(
      {},
      fresh,
      recordingView(),
      keys,
      { send: (_p, m) => out.push(m), clone: (m) => ({ ...m }), source },
      { DIAL_ENDPOINT: 'PJSIP/{phone}@trunk' },
    );
    try {
      const dialing = ctl.handle({ call: { id: 'e1', phone: '+15553010' } });
      await ctl.close(); // a Deploy, before the connection was ready
      await expect(dialing).rejects.toThrow('error.closed {"id":"e1"}');
      expect(out).toHaveLength(1);
      expect(out[0]).toMatchObject({ topic: 'outcome', call: { id: 'e1', outcome: 'failed' } });
      expect(requests.filter((r) => r.startsWith('POST') && r.includes('/channels'))).toEqual([]);
      // the tracker made once the connection was ready follows nothing: closed, off the connection's events
      const conn = await fresh.connect();
      await waitFor(() => conn.listenerCount('event') === 0 || undefined, 5000, 'the late tracker closed');
    } finally {
      sim.sim.off('request', onRequest);
      await fresh.close();
    }
  });

  test('a connection that can never be made: the call still ends, as failed, and the input fails', async () => {
    const unconfigured = new AriService({ mode: 'env' }, {});
    const out: DialerMsg[] = [];
    const view = recordingView();
    const ctl = new AriOriginateController(
      {},
      unconfigured,
      view,
      keys,
      { send: (_p, m) => out.push(m), clone: (m) => ({ ...m }), source },
      {},
    );
    await expect(ctl.handle({ call: { id: 9, phone: '+1' } })).rejects.toThrow(/ARI_URL is not set/);
    // not a yellow "connecting": red, naming what is missing; the log says how to set it
    expect(view.last()).toEqual({ fill: 'red', shape: 'dot', text: 'status.notSet {"name":"ARI_URL"}' });
    expect(view.statuses.some((s) => s.fill === 'yellow' && s !== view.statuses[0])).toBe(false);
    expect(view.errors.map((e) => e.text).join('\n')).toMatch(
      /ARI_URL is not set: set it in Node-RED's environment \(e\.g\. ARI_URL=http/,
    );
    expect(out[0]).toMatchObject({
      topic: 'outcome',
      event: 'call_ended',
      call: { id: 9, outcome: 'failed', ringMs: 0 },
    });
    await ctl.close();
    await unconfigured.close();
  });

  test('simulator mode without an injected simulator is a configuration error (src/ari never loads src/sim)', async () => {
    const s = new AriService({ mode: 'simulator' }, {});
    await expect(s.connect()).rejects.toThrow(/simulator is not available/);
    await s.close();
    let started = 0;
    const injected = new AriService({ mode: 'simulator', agiPort: 1 }, {}, async (o) => {
      started++;
      const h = await startSimulator(o);
      return h;
    });
    await injected.connect();
    expect(started).toBe(1);
    await injected.close();
  });
});
