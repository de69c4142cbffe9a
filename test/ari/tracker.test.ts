/**
 * The ARI connection and call tracker against the simulator, over real HTTP and WebSocket:
 * every outcome path, variables on the channel, AGI hand-over, cancel, restart mid-call,
 * wrong credentials, 100 concurrent originates.
 */
import net from 'net';
import http from 'http';
import { startSimulator, type SimulatorHandle } from '../../src/sim/index';
import { AriConnection, AriError } from '../../src/ari/client';
import { CallTracker, agiTargetValue, type CallOutcome } from '../../src/ari/calls';
import { waitFor } from '../helpers/wait';

const SPEED = 20;

describe('ARI call tracker through the simulator', () => {
  let sim: SimulatorHandle;
  let conn: AriConnection;
  let tracker: CallTracker;
  const outcomes: CallOutcome[] = [];
  const of = (id: string | number) => outcomes.filter((o) => String(o.callId) === String(id));
  const finalOf = async (id: string | number, ms = 10_000) =>
    waitFor(() => of(id).find((o) => o.outcome !== 'answered'), ms, `final outcome of call ${id}`);

  beforeAll(async () => {
    sim = await startSimulator({ speed: SPEED, agi: { host: '127.0.0.1', port: 1, contexts: ['ai-dialer-agi'] } });
    conn = new AriConnection({
      url: sim.url,
      username: sim.username,
      password: sim.password,
      app: sim.app,
      backoff: { initialMs: 50, maxMs: 500 },
    });
    await conn.start();
    tracker = new CallTracker(conn, { endpointTemplate: 'PJSIP/{phone}@trunk', graceMs: 100, sweepMs: 0 });
    tracker.on('outcome', (o: CallOutcome) => outcomes.push(o));
  });
  afterAll(async () => {
    await tracker.close();
    await conn.close();
    await sim.close();
  });

  test('busy over a trunk: dialstatus BUSY, cause 17, one outcome', async () => {
    sim.setPersona('+15550101', { dial: { behaviour: 'busy', ringMs: 400 } });
    await tracker.originate({ id: 'b1', phone: '+15550101' });
    const o = await finalOf('b1');
    expect(o).toMatchObject({ outcome: 'busy', dialStatus: 'BUSY', hangupCause: 17, talkMs: 0 });
    expect(o.ringMs).toBeGreaterThanOrEqual(0);
    expect(of('b1')).toHaveLength(1);
  });

  test('busy behind a Local channel: cause 0 but dialstatus BUSY still gives busy', async () => {
    sim.setPersona('+15550102', { dial: { behaviour: 'busy', ringMs: 4000 } });
    const { channelId } = await tracker.originate({
      id: 'b2',
      phone: '+15550102',
      endpoint: 'Local/{phone}@from-internal',
    });
    // Local channels are originated with formats=slin (8 kHz, not slin192).
    expect(sim.channels().find((c) => c.id === channelId)?.formats).toBe('slin');
    const o = await finalOf('b2');
    expect(o).toMatchObject({ outcome: 'busy', dialStatus: 'BUSY', hangupCause: 0 });
    expect(o.channel).toMatch(/^Local\/\+15550102@from-internal-[0-9a-f]{8};1$/);
  });

  test('no answer: originate timeout, cause 19 with last dialstatus RINGING', async () => {
    sim.setPersona('+15550103', { dial: { behaviour: 'no_answer' } });
    await tracker.originate({ id: 'n1', phone: '+15550103', timeoutSec: 2 });
    const o = await finalOf('n1');
    expect(o).toMatchObject({ outcome: 'no_answer', dialStatus: 'RINGING', hangupCause: 19 });
  });

  test('congestion from a trunk: cause 34', async () => {
    sim.setPersona('+15550104', { dial: { behaviour: 'congestion', ringMs: 100 } });
    await tracker.originate({ id: 'c1', phone: '+15550104' });
    expect(await finalOf('c1')).toMatchObject({ outcome: 'congestion', dialStatus: 'CONGESTION', hangupCause: 34 });
  });

  test('unreachable and invalid numbers fail, each once', async () => {
    sim.setPersona('+15550105', { dial: { behaviour: 'unreachable' } });
    await tracker.originate({ id: 'u1', phone: '+15550105' });
    expect(await finalOf('u1')).toMatchObject({ outcome: 'failed', dialStatus: 'CHANUNAVAIL' });
    const r = await tracker.originate({ id: 'u2', phone: 'call me; DROP TABLE' });
    expect(r.accepted).toBe(false);
    const o = await finalOf('u2');
    expect(o.outcome).toBe('failed');
    expect(o.error).toBeInstanceOf(AriError);
    expect(o.error?.kind).toBe('invalid_input');
    expect(of('u2')).toHaveLength(1);
  });

  test('a refused originate (bad endpoint) is failed with the HTTP error, slot released', async () => {
    const r = await tracker.originate({ id: 'f1', phone: '+15550106', endpoint: 'Bogus/{phone}' });
    expect(r.accepted).toBe(false);
    const o = await finalOf('f1');
    expect(o.outcome).toBe('failed');
    expect(o.error?.status).toBe(400);
    expect(o.error?.kind).toBe('invalid_input');
    expect(tracker.isLive('f1')).toBe(false);
  });

  test('answered: variables reach the channel, continue to the AGI context only once Up, then completed', async () => {
    sim.setPersona('+15550107', { dial: { behaviour: 'answer', ringMs: 300 } });
    const seen: Array<{ type: string; state?: string; context?: string }> = [];
    const onEv = (ev: {
      type: string;
      channel?: { id: string; state: string; dialplan?: { context: string } };
      peer?: { id: string };
    }) => {
      const id = ev.channel?.id ?? ev.peer?.id;
      if (id?.startsWith('aid-a1-'))
        seen.push({ type: ev.type, state: ev.channel?.state, context: ev.channel?.dialplan?.context });
    };
    conn.on('event', onEv);
    // The AGI target is a closed port here: the dialplan's AGI fails and Asterisk hangs up (cause 16).
    const { channelId } = await tracker.originate({
      id: 'a1',
      phone: '+15550107',
      campaignId: 9,
      contactId: 33,
      callerId: '"Acme" <+15550000>',
      fields: { 'first name': 'Ann', company: 'Acme\r\nAGI EXEC', nested: { x: 1 } },
    });
    const vars = await waitFor(() => sim.channels().find((c) => c.id === channelId)?.variables, 2000, 'channel');
    expect(vars).toMatchObject({
      CALL_ID: 'a1',
      CONTACT_PHONE: '+15550107',
      CAMPAIGN_ID: '9',
      CONTACT_ID: '33',
      CONTACT_FIRST_NAME: 'Ann',
      CONTACT_COMPANY: 'Acme AGI EXEC',
      AMD_ENABLED: '0',
    });
    expect(vars).not.toHaveProperty('CONTACT_NESTED');
    expect(await conn.getChannelVar(channelId, 'CALL_ID')).toBe('a1');
    expect(await conn.getChannelVar(channelId, 'NOT_SET')).toBeUndefined();
    const o = await finalOf('a1');
    conn.off('event', onEv);
    expect(of('a1').map((x) => x.outcome)).toEqual(['answered', 'completed']);
    expect(o).toMatchObject({ hangupCause: 16, hangupCauseText: 'Normal Clearing' });
    // Never continued on early media: StasisStart came with the channel Up, StasisEnd then shows the AGI context.
    const start = seen.find((e) => e.type === 'StasisStart');
    expect(start?.state).toBe('Up');
    const end = seen.find((e) => e.type === 'StasisEnd');
    expect(end?.context).toBe('ai-dialer-agi');
    expect(seen.map((e) => e.type)).toEqual(
      expect.arrayContaining([
        'Dial',
        'ChannelStateChange',
        'ChannelVarset',
        'StasisStart',
        'StasisEnd',
        'ChannelHangupRequest',
        'ChannelDestroyed',
      ]),
    );
  });

  test('cancel while ringing: cancelled once; duplicate ids are refused while live', async () => {
    sim.setPersona('+15550108', { dial: { behaviour: 'no_answer' } });
    await tracker.originate({ id: 'x1', phone: '+15550108', timeoutSec: 60 });
    await expect(tracker.originate({ id: 'x1', phone: '+15550108' })).rejects.toThrow(/already in progress/);
    await waitFor(() => sim.channels().find((c) => c.variables.CALL_ID === 'x1')?.state === 'Ringing', 3000, 'ringing');
    expect(tracker.cancel('x1')).toBe(1);
    const o = await finalOf('x1');
    expect(o.outcome).toBe('cancelled');
    expect(of('x1')).toHaveLength(1);
  });

  test('simulator restarted mid-call: reconnect, reconcile, outcome recorded exactly once', async () => {
    sim.setPersona('+15550109', { dial: { behaviour: 'answer', ringMs: 100 } });
    sim.setPersona('+15550110', { dial: { behaviour: 'no_answer' } });
    // Keep the answered call up: continue into a context that does not run AGI.
    const t2 = new CallTracker(conn, {
      endpointTemplate: 'PJSIP/{phone}@trunk',
      agiContext: 'hold-here',
      graceMs: 100,
      sweepMs: 0,
    });
    const got: CallOutcome[] = [];
    t2.on('outcome', (o: CallOutcome) => got.push(o));
    await t2.originate({ id: 'r1', phone: '+15550109' });
    await t2.originate({ id: 'r2', phone: '+15550110', timeoutSec: 600 });
    await waitFor(() => got.find((o) => o.callId === 'r1' && o.outcome === 'answered'), 5000, 'answered');
    const reconnected = new Promise<void>((resolve) =>
      conn.once('connected', (i: { reconnect: boolean }) => i.reconnect && resolve()),
    );
    await sim.restart({ downMs: 100 });
    await reconnected;
    await waitFor(
      () => got.filter((o) => o.outcome !== 'answered').length === 2 || undefined,
      10_000,
      'both reconciled',
    );
    // Give any stray duplicate a chance to show up before counting.
    await t2.reconcile('test');
    expect(got.filter((o) => o.callId === 'r1').map((o) => o.outcome)).toEqual(['answered', 'completed']);
    expect(got.filter((o) => o.callId === 'r2').map((o) => o.outcome)).toEqual(['failed']);
    expect(got.find((o) => o.callId === 'r2')?.reason).toMatch(/channel gone/);
    expect(t2.live).toBe(0);
    await t2.close();
  });

  test('events dropped but Asterisk kept the call: it continues and ends normally, once', async () => {
    sim.setPersona('+15550111', { dial: { behaviour: 'answer', ringMs: 100 } });
    const t3 = new CallTracker(conn, {
      endpointTemplate: 'PJSIP/{phone}@trunk',
      agiContext: 'hold-here',
      graceMs: 100,
      sweepMs: 0,
    });
    const got: CallOutcome[] = [];
    t3.on('outcome', (o: CallOutcome) => got.push(o));
    const { channelId } = await t3.originate({ id: 'k1', phone: '+15550111' });
    await waitFor(() => got.find((o) => o.outcome === 'answered'), 5000, 'answered');
    const reconnected = new Promise<void>((resolve) => conn.once('connected', () => resolve()));
    await sim.restart({ keepChannels: true });
    await reconnected;
    await t3.reconcile('test');
    expect(got).toHaveLength(1); // still live: nothing invented
    sim.sim.hangupFromCallee(channelId);
    await waitFor(() => got.length === 2 || undefined, 5000, 'completed');
    expect(got.map((o) => o.outcome)).toEqual(['answered', 'completed']);
    await t3.close();
  });

  test('an end whose events were lost is settled by the periodic check, once', async () => {
    sim.setPersona('+15550112', { dial: { behaviour: 'answer', ringMs: 100 } });
    sim.setPersona('+15550113', { dial: { behaviour: 'no_answer' } });
    const t5 = new CallTracker(conn, {
      endpointTemplate: 'PJSIP/{phone}@trunk',
      agiContext: 'hold-here',
      graceMs: 50,
      sweepMs: 200,
    });
    const got: CallOutcome[] = [];
    t5.on('outcome', (o: CallOutcome) => got.push(o));
    const a = await t5.originate({ id: 'l1', phone: '+15550112' });
    const b = await t5.originate({ id: 'l2', phone: '+15550113', timeoutSec: 600 });
    await waitFor(() => got.find((o) => o.callId === 'l1' && o.outcome === 'answered'), 5000, 'answered');
    expect(sim.sim.loseChannel(a.channelId)).toBe(true);
    expect(sim.sim.loseChannel(b.channelId)).toBe(true);
    await waitFor(
      () => got.filter((o) => o.outcome !== 'answered').length === 2 || undefined,
      5000,
      'settled by the sweep',
    );
    expect(got.filter((o) => o.callId === 'l1').map((o) => o.outcome)).toEqual(['answered', 'completed']);
    expect(got.filter((o) => o.callId === 'l2').map((o) => o.outcome)).toEqual(['failed']);
    await t5.reconcile('again');
    expect(got).toHaveLength(3);
    await t5.close();
  });

  test('an answered channel of ours that nobody follows (dialled before a restart) is hung up', async () => {
    sim.setPersona('+15550114', { dial: { behaviour: 'answer', ringMs: 600 } });
    const old = new CallTracker(conn, { endpointTemplate: 'PJSIP/{phone}@trunk', sweepMs: 0 });
    const { channelId } = await old.originate({ id: 'o1', phone: '+15550114' });
    await old.close({ hangup: false }); // the flow that dialled it is gone
    const warnings: string[] = [];
    const onWarn = (w: string) => warnings.push(w);
    tracker.on('warning', onWarn);
    const destroyed = await new Promise<{ id: string; answered: boolean }>((resolve) => {
      const on = (d: { id: string; answered: boolean }) => {
        if (d.id === channelId) {
          sim.sim.off('channel-destroyed', on);
          resolve(d);
        }
      };
      sim.sim.on('channel-destroyed', on);
    });
    tracker.off('warning', onWarn);
    expect(destroyed.answered).toBe(true);
    expect(warnings.some((w) => w.includes(channelId) && /no call follows it/.test(w))).toBe(true);
    expect(of('o1')).toHaveLength(0);
  });

  test('100 concurrent originates each get exactly one final outcome', async () => {
    const t4 = new CallTracker(conn, { endpointTemplate: 'PJSIP/{phone}@trunk', graceMs: 100, sweepMs: 0 });
    const got: CallOutcome[] = [];
    t4.on('outcome', (o: CallOutcome) => got.push(o));
    const behaviours = ['busy', 'congestion', 'answer', 'unreachable'] as const;
    for (let i = 0; i < 100; i++) {
      sim.setPersona(`+1666000${String(i).padStart(4, '0')}`, {
        dial: { behaviour: behaviours[i % 4], ringMs: 200 + (i % 7) * 50 },
      });
    }
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        t4.originate({ id: `m${i}`, phone: `+1666000${String(i).padStart(4, '0')}` }),
      ),
    );
    await waitFor(() => got.filter((o) => o.outcome !== 'answered').length >= 100 || undefined, 20_000, '100 outcomes');
    const finals = got.filter((o) => o.outcome !== 'answered');
    expect(new Set(finals.map((o) => o.callId)).size).toBe(100);
    expect(finals).toHaveLength(100);
    const count = (k: string) => finals.filter((o) => o.outcome === k).length;
    expect(count('busy')).toBe(25);
    expect(count('congestion')).toBe(25);
    expect(count('completed')).toBe(25);
    expect(count('failed')).toBe(25);
    expect(t4.live).toBe(0);
    await t4.close();
  });
});

describe('ARI connection errors', () => {
  test('wrong password: one typed 401 error, reported once, retried slowly (no tight loop)', async () => {
    const sim = await startSimulator({ password: 'right-one' });
    let requests = 0;
    sim.sim.on('request', () => requests++);
    const conn = new AriConnection({
      url: sim.url,
      username: sim.username,
      password: 'wrong',
      app: 'x',
      unauthorizedRetryMs: 60_000,
    });
    const warnings: string[] = [];
    conn.on('warning', (w: string) => warnings.push(w));
    const err = await conn.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AriError);
    expect((err as AriError).status).toBe(401);
    expect((err as AriError).kind).toBe('unauthorized');
    expect(conn.state).toBe('unauthorized');
    expect(conn.retryInMs).toBeGreaterThanOrEqual(30_000);
    expect(warnings).toHaveLength(1);
    expect(requests).toBe(1); // one document request, then it waits: no tight loop
    await conn.close();
    await sim.close();
  });

  test('connection refused is a typed network error; REST before connect is refused clearly', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const conn = new AriConnection({
      url: `http://127.0.0.1:${port}`,
      username: 'u',
      password: 'p',
      app: 'x',
      backoff: { initialMs: 60_000 },
    });
    const err = (await conn.start().catch((e: unknown) => e)) as AriError;
    expect(err.kind).toBe('network');
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(conn.state).toBe('unreachable');
    await expect(conn.listChannels()).rejects.toMatchObject({ kind: 'network' });
    await conn.close();
  });

  test('a 5xx or a server that is not ARI is a typed bad_response, never an uncaught exception', async () => {
    let mode: 'error' | 'html' = 'error';
    const server = http.createServer((_req, res) => {
      if (mode === 'error') {
        res.writeHead(503, { 'Content-Type': 'application/json' });
        res.end('{"message":"Service Unavailable"}');
      } else {
        res.writeHead(200, { 'Content-Type': 'text/html' });
        res.end('<html>not ARI</html>');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/ari`;
    const c1 = new AriConnection({ url, username: 'u', password: 'p', app: 'x', backoff: { initialMs: 60_000 } });
    await expect(c1.start()).rejects.toMatchObject({ kind: 'bad_response', status: 503 });
    expect(c1.state).toBe('error');
    await c1.close();
    mode = 'html';
    const c2 = new AriConnection({ url, username: 'u', password: 'p', app: 'x', backoff: { initialMs: 60_000 } });
    await expect(c2.start()).rejects.toMatchObject({
      kind: 'bad_response',
      message: expect.stringMatching(/not an ARI resource listing/),
    });
    await c2.close();
    await new Promise((r) => server.close(r));
  });

  test('connections with different credentials in one process do not mix them up', async () => {
    const a = await startSimulator({ password: 'alpha-pass' });
    const b = await startSimulator({ password: 'bravo-pass' });
    const ca = new AriConnection({ url: a.url, username: a.username, password: 'alpha-pass', app: 'a' });
    const cb = new AriConnection({ url: b.url, username: b.username, password: 'bravo-pass', app: 'b' });
    const bad = new AriConnection({
      url: b.url,
      username: b.username,
      password: 'alpha-pass',
      app: 'c',
      unauthorizedRetryMs: 60_000,
    });
    const results = await Promise.allSettled([ca.start(), cb.start(), bad.start()]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    // After the bad one tried, both good ones still authenticate with their own password.
    await expect(ca.listChannels()).resolves.toEqual([]);
    await expect(cb.listChannels()).resolves.toEqual([]);
    await expect(bad.listChannels()).rejects.toMatchObject({ kind: 'unauthorized' });
    await Promise.all([ca.close(), cb.close(), bad.close()]);
    await a.close();
    await b.close();
  });

  test('bad settings are not_configured errors', () => {
    expect(() => new AriConnection({ url: 'ftp://x', username: 'u', password: 'p', app: 'a' })).toThrow(/http/);
    expect(() => new AriConnection({ url: 'http://x', username: 'u', password: 'p', app: 'a b' })).toThrow(
      /Stasis app/,
    );
  });

  test('404 and 409 from REST are typed', async () => {
    const sim = await startSimulator({});
    const conn = new AriConnection({ url: sim.url, username: sim.username, password: sim.password, app: 'x' });
    await conn.start();
    await expect(conn.getChannel('nope')).rejects.toMatchObject({ kind: 'not_found', status: 404 });
    await expect(conn.hangup('nope')).rejects.toMatchObject({ kind: 'not_found', status: 404 });
    const ch = await conn.originate({ endpoint: 'PJSIP/+15550199@trunk', app: 'x', channelId: 'dup-1' });
    await expect(
      conn.originate({ endpoint: 'PJSIP/+15550199@trunk', app: 'x', channelId: 'dup-1' }),
    ).rejects.toMatchObject({ kind: 'refused', status: 409 });
    await expect(conn.continueInDialplan(ch.id, { context: 'x' })).rejects.toMatchObject({
      kind: 'refused',
      status: 409,
    });
    await conn.hangup(ch.id);
    await conn.close();
    await sim.close();
  });
});

describe('AGI_ADVERTISE as the channel variable AGI_TARGET', () => {
  test('host:port as given; a bare host takes the FastAGI port (AGI_PORT, the port bound under npm start)', () => {
    expect(agiTargetValue('node-red:4573', '5000')).toBe('node-red:4573');
    expect(agiTargetValue('127.0.0.1', '40123')).toBe('127.0.0.1:40123');
    expect(agiTargetValue('[::1]', 40124)).toBe('[::1]:40124');
    expect(agiTargetValue('', '40123')).toBeUndefined();
  });
  test('a bare host without a port to take, or anything else, is refused with the setting named', () => {
    expect(() => agiTargetValue('127.0.0.1', undefined)).toThrow(
      /AGI_ADVERTISE must be host:port, or host with AGI_PORT/,
    );
    expect(() => agiTargetValue('127.0.0.1', '0')).toThrow(/AGI_ADVERTISE/);
    expect(() => agiTargetValue('a b:1', '5')).toThrow(/AGI_ADVERTISE/);
  });
});
