import * as http from 'http';
import * as net from 'net';
import { acquireBus, resolveBusConfig } from '../../src/events/bus';
import { buildEvent } from '../../src/events/builders';
import {
  CallControl,
  CampaignControl,
  controlBus,
  takeSupervisorLine,
  queueSupervisorLine,
} from '../../src/events/control-bus';
import { parseControl } from '../../src/events/controls';
import { Topics } from '../../src/events/topics';
import { connect, end, runId, subscribe, waitFor } from './mqtt-helpers';

const writer = { username: 'sup', password: 'sup-secret', role: 'writer' as const };
const reader = { username: 'dash', password: 'dash-secret', role: 'reader' as const };

describe('bus configuration from the environment', () => {
  test('MQTT_URL absent -> embedded on MQTT_PORT with env accounts; present -> external', () => {
    const r = resolveBusConfig(
      { mode: 'env' },
      {
        MQTT_PORT: '18830',
        MQTT_WRITER_USER: 'w',
        MQTT_WRITER_PASSWORD: 'p',
        MQTT_READER_USER: 'r',
        MQTT_READER_PASSWORD: 'q',
      },
    );
    expect(r).toMatchObject({ mode: 'embedded', port: 18830, host: '127.0.0.1', root: 'ai-dialer/v1' });
    expect(r.accounts).toEqual([
      { username: 'w', password: 'p', role: 'writer' },
      { username: 'r', password: 'q', role: 'reader' },
    ]);
    const x = resolveBusConfig({}, { MQTT_URL: 'mqtt://10.0.0.5:1883', MQTT_USERNAME: 'u', MQTT_PASSWORD: 'pw' });
    expect(x).toMatchObject({ mode: 'external', url: 'mqtt://10.0.0.5:1883', username: 'u', password: 'pw' });
    // explicit settings win over the environment
    expect(resolveBusConfig({ mode: 'embedded', port: 0 }, { MQTT_URL: 'mqtt://x' })).toMatchObject({
      mode: 'embedded',
      port: 0,
    });
  });
  test('bad port, bad URL and a missing URL are clear errors (and never echo a password)', () => {
    expect(() => resolveBusConfig({}, { MQTT_PORT: 'abc' })).toThrow(/MQTT_PORT "abc" is not a port number/);
    expect(() => resolveBusConfig({}, { MQTT_URL: 'http://user:hunter2@host' })).toThrow(/is not valid/);
    try {
      resolveBusConfig({}, { MQTT_URL: 'http://user:hunter2@host' });
    } catch (e) {
      expect((e as Error).message).not.toContain('hunter2');
    }
    expect(() => resolveBusConfig({ mode: 'external' }, {})).toThrow(/no URL given/);
  });
});

describe('supervisor controls', () => {
  const t = new Topics();
  test('parse: campaign actions, call hangup/say, bare words, junk refused', () => {
    expect(parseControl(t, 'ai-dialer/v1/campaigns/12/control', '{"action":"pause"}')).toEqual({
      kind: 'campaign',
      control: { campaignId: '12', action: 'pause' },
    });
    expect(parseControl(t, 'ai-dialer/v1/campaigns/12/control', 'resume')).toEqual({
      kind: 'campaign',
      control: { campaignId: '12', action: 'resume' },
    });
    expect(parseControl(t, 'ai-dialer/v1/calls/c-9/control', '{"action":"hangup"}')).toEqual({
      kind: 'call',
      control: { callId: 'c-9', action: 'hangup' },
    });
    expect(parseControl(t, 'ai-dialer/v1/calls/c-9/control', '{"action":"say","text":"Hold on\\nEXEC Dial"}')).toEqual({
      kind: 'call',
      control: { callId: 'c-9', action: 'say', text: 'Hold on EXEC Dial' },
    });
    expect(() => parseControl(t, 'ai-dialer/v1/campaigns/12/control', '{"action":"explode"}')).toThrow(
      /must be one of start, stop, pause, resume/,
    );
    expect(() => parseControl(t, 'ai-dialer/v1/calls/1/control', '{"action":"say"}')).toThrow(
      /needs a non-empty "text"/,
    );
    expect(() =>
      parseControl(t, 'ai-dialer/v1/calls/1/control', JSON.stringify({ action: 'say', text: 'x'.repeat(1001) })),
    ).toThrow(/longer than 1000/);
    expect(() => parseControl(t, 'ai-dialer/v1/calls/1/control', '{not json')).toThrow(/not valid JSON/);
    expect(() => parseControl(t, 'ai-dialer/v1/calls/1/control', '[1]')).toThrow(/JSON object/);
    expect(() => parseControl(t, 'ai-dialer/v1/calls/1/events', 'hangup')).toThrow(/not a control topic/);
  });
  test('supervisor lines queue per call, in order, and are taken once', () => {
    const id = `${runId}-lines`;
    expect(takeSupervisorLine(id)).toBeUndefined();
    queueSupervisorLine(id, 'first');
    queueSupervisorLine(id, '  ');
    queueSupervisorLine(id, 'second');
    expect(takeSupervisorLine(id)).toBe('first');
    expect(takeSupervisorLine(id)).toBe('second');
    expect(takeSupervisorLine(id)).toBeUndefined();
  });

  test('writer controls over MQTT reach controlBus once (two bus users share one broker); reader and invalid ones do not', async () => {
    const logs: string[] = [];
    // port 0: both users resolve to the same bus (one broker on the port bound)
    const cfg = { mode: 'embedded' as const, port: 0, accounts: [writer, reader], log: (l: string) => logs.push(l) };
    const [bus1, bus2] = await Promise.all([acquireBus(cfg, {}), acquireBus(cfg, {})]);
    expect(bus1.publisher).toBe(bus2.publisher);
    const campaigns: CampaignControl[] = [];
    const calls: CallControl[] = [];
    const onCampaign = (c: CampaignControl) => campaigns.push(c);
    const onCall = (c: CallControl) => calls.push(c);
    controlBus.on('campaign', onCampaign);
    controlBus.on('call', onCall);
    const url = bus1.broker!.url;
    const sup = await connect(url, writer);
    const dash = await connect(url, reader);
    try {
      await bus1.controlsReady;
      const callId = `${runId}-call`;
      // a reader's control never arrives (broker ACL); the reader is disconnected
      let dashClosed = false;
      dash.on('close', () => (dashClosed = true));
      dash.publish(`ai-dialer/v1/campaigns/${runId}/control`, '{"action":"stop"}', { qos: 1 });
      await waitFor(() => dashClosed, 'reader disconnected');
      // an invalid control is refused with a log line, nothing emitted
      await sup.publishAsync(`ai-dialer/v1/campaigns/${runId}/control`, '{"action":"explode"}', { qos: 1 });
      await sup.publishAsync(
        `ai-dialer/v1/calls/${callId}/control`,
        JSON.stringify({ action: 'say', text: 'A supervisor joins.' }),
        { qos: 1 },
      );
      await sup.publishAsync(`ai-dialer/v1/calls/${callId}/control`, '{"action":"hangup"}', { qos: 1 });
      await sup.publishAsync(`ai-dialer/v1/campaigns/${runId}/control`, '{"action":"pause"}', { qos: 1 });
      await waitFor(() => campaigns.length >= 1 && calls.length >= 2, 'controls');
      expect(campaigns).toEqual([{ campaignId: runId, action: 'pause' }]);
      expect(calls).toEqual([
        { callId, action: 'say', text: 'A supervisor joins.' },
        { callId, action: 'hangup' },
      ]);
      expect(takeSupervisorLine(callId)).toBe('A supervisor joins.');
      expect(logs.filter((l) => /control refused/.test(l))).toEqual([
        expect.stringMatching(/must be one of start, stop, pause, resume/),
      ]);
    } finally {
      controlBus.off('campaign', onCampaign);
      controlBus.off('call', onCall);
      await end(sup);
      await end(dash);
      await bus1.release();
      await bus2.release();
    }
    await expect(connect(url, { ...writer, connectTimeout: 1000 })).rejects.toBeTruthy();
  });
});

describe('WebSocket-only embedded broker (MQTT_TCP_DISABLED=1, the MQTT port is taken)', () => {
  test('no public TCP listener on MQTT_PORT; events flow over WebSocket; the internal publisher still works', async () => {
    // MQTT_PORT is a port this test holds (bound as 0 and read back): the bus must not even try it, and a
    // connection to it reaches the holder, not a broker
    const holder = net.createServer((s) => s.end('held by the test\n'));
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as net.AddressInfo).port;
    const server = http.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const httpPort = (server.address() as net.AddressInfo).port;
    const logs: string[] = [];
    const bus = await acquireBus(
      { mode: 'env', httpServer: server, accounts: [reader], log: (l: string) => logs.push(l) },
      { MQTT_PORT: String(port), MQTT_TCP_DISABLED: '1' },
    );
    try {
      expect(bus.describe).toMatch(/TCP off: WebSocket only/);
      expect(bus.broker!.port).not.toBe(port);
      expect(logs.filter((l) => /already in use/.test(l))).toEqual([]); // never tried to bind it
      // whoever answers on MQTT_PORT is the holder, not a broker
      const answer = await new Promise<string>((resolve, reject) => {
        const c = net.connect(port, '127.0.0.1');
        let text = '';
        c.on('data', (d) => (text += d));
        c.on('end', () => resolve(text));
        c.on('error', reject);
      });
      expect(answer).toBe('held by the test\n');
      const ws = await connect(`ws://127.0.0.1:${httpPort}/mqtt`, reader);
      const got: string[] = [];
      ws.on('message', (_t, p) => got.push(JSON.parse(p.toString()).type));
      await subscribe(ws, 'ai-dialer/v1/#');
      await bus.publisher.whenConnected();
      bus.publisher.publish(
        buildEvent({ event: 'call_started', call: { id: `${runId}-ws`, campaignId: null, phone: '+15550000001' } }),
      );
      await waitFor(() => got.length === 1, 'event over WebSocket');
      expect(got).toEqual(['call_started']);
      await end(ws);
    } finally {
      await bus.release();
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => holder.close(() => r()));
    }
    expect(server.listeners('upgrade')).toHaveLength(0);
  });
});

describe('embedded broker with its TCP port taken (a Mosquitto on 1883)', () => {
  test('falls back to WebSocket only, says so in one line, and still carries events', async () => {
    // the port is taken by a server bound to port 0 and read back
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as net.AddressInfo).port;
    const lines: string[] = [];
    const bus = await acquireBus({ mode: 'embedded', port, host: '127.0.0.1', log: (l: string) => lines.push(l) }, {});
    try {
      expect(lines.filter((l) => /already in use/.test(l))).toEqual([
        expect.stringContaining(`MQTT port ${port} is already in use`),
      ]);
      expect(bus.describe).toContain('WebSocket only');
      expect(bus.broker).toBeDefined();
      expect(bus.broker!.port).not.toBe(port);
      // this process's publisher still reaches the broker
      bus.publisher.publish(buildEvent({ event: 'status', call: { id: 1, campaignId: 1 }, status: 'ringing' }));
      await bus.controlsReady;
    } finally {
      await bus.release();
      await new Promise((r) => taken.close(r));
    }
  });
});
