import * as http from 'http';
import * as net from 'net';
import * as mqtt from 'mqtt';
import { EmbeddedBroker, acquireBroker, releaseBroker } from '../../src/events/broker';
import { DialerError } from '../../src/util/errors';
import { connect, end, runId, subscribe, waitFor } from './mqtt-helpers';

const ROOT = 'ai-dialer/v1';
const accounts = [
  { username: 'writer', password: 'w-secret', role: 'writer' as const },
  { username: 'dash', password: 'r-secret', role: 'reader' as const },
];

describe('embedded broker: sockets', () => {
  test("Nagle's algorithm is off on every accepted TCP connection", async () => {
    // an event to a subscriber must not wait for the TCP ACK of the one before; Node has no getter for the
    // option, so the call on the broker's side of the connection is checked
    const calls: [net.Socket, boolean | undefined][] = [];
    const orig = net.Socket.prototype.setNoDelay;
    net.Socket.prototype.setNoDelay = function (this: net.Socket, on?: boolean) {
      calls.push([this, on]);
      return orig.call(this, on);
    };
    const broker = await EmbeddedBroker.start({ port: 0, accounts });
    const client = net.connect(broker.port, '127.0.0.1');
    try {
      await new Promise<void>((r, j) => client.once('connect', r).once('error', j));
      const mine = () => calls.filter(([s, on]) => on === true && s.remotePort === client.localPort);
      await waitFor(() => mine().length > 0, "the broker's side of the connection");
      expect(mine()).toHaveLength(1);
    } finally {
      net.Socket.prototype.setNoDelay = orig;
      client.destroy();
      await broker.close();
    }
  });
});

/** An MQTT 3.1.1 packet: fixed header byte, remaining length (varint), body. */
function packet(first: number, body: Buffer): Buffer {
  const len: number[] = [];
  let n = body.length;
  do {
    len.push((n % 128) | (n >= 128 ? 128 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return Buffer.concat([Buffer.from([first, ...len]), body]);
}
const str = (s: string) => {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]);
};

describe('embedded broker: writes to a subscriber', () => {
  test('deliveries waiting for one subscriber in one turn leave in one socket write, and leave by themselves', async () => {
    // 10 QoS 1 PUBLISHes arriving in one segment: old code wrote each delivery to the subscriber with a write of
    // its own (10 writev calls, 10 TCP segments with Nagle off); now they leave together at the end of the turn
    const broker = await EmbeddedBroker.start({ port: 0, accounts });
    const sub = await connect(broker.url, { username: 'dash', password: 'r-secret' });
    let raw: net.Socket | undefined;
    const writes: number[] = []; // packets per socket write to the subscriber (PUBLISH fixed headers, QoS 1)
    const proto = net.Socket.prototype as unknown as {
      _writev: (chunks: { chunk: Buffer | string }[], cb: (err?: Error) => void) => void;
      _write: (chunk: Buffer | string, enc: string, cb: (err?: Error) => void) => void;
    };
    const { _writev, _write } = proto;
    const toSub = (s: unknown) => (s as net.Socket).remotePort === (sub.stream as net.Socket).localPort;
    const isPublish = (c: Buffer | string) => typeof c !== 'string' && c.length === 1 && c[0] === 0x32;
    try {
      const got: string[] = [];
      sub.on('message', (_t, payload) => got.push(payload.toString()));
      await subscribe(sub, `${ROOT}/calls/+/events`);
      raw = net.connect(broker.port, '127.0.0.1');
      await new Promise<void>((r, j) => raw!.once('connect', r).once('error', j));
      raw.write(
        packet(
          0x10,
          Buffer.concat([
            str('MQTT'),
            Buffer.from([4, 0xc2, 0, 0]),
            str(`raw-${runId}`),
            str('writer'),
            str('w-secret'),
          ]),
        ),
      );
      await new Promise<void>((r) => raw!.once('data', () => r())); // CONNACK
      proto._writev = function (this: unknown, chunks, cb) {
        if (toSub(this)) writes.push(chunks.filter((c) => isPublish(c.chunk)).length);
        return _writev.call(this, chunks, cb);
      };
      proto._write = function (this: unknown, chunk, enc, cb) {
        if (toSub(this)) writes.push(isPublish(chunk) ? 1 : 0);
        return _write.call(this, chunk, enc, cb);
      };
      const burst = Array.from({ length: 10 }, (_, i) =>
        packet(
          0x32,
          Buffer.concat([str(`${ROOT}/calls/c1/events`), Buffer.from([0, i + 1]), Buffer.from(`{"n":${i}}`)]),
        ),
      );
      raw.write(Buffer.concat(burst));
      await waitFor(() => got.length === 10, 'the 10 deliveries');
      expect(got).toEqual(Array.from({ length: 10 }, (_, i) => `{"n":${i}}`));
      expect(writes.reduce((a, n) => a + n, 0)).toBe(10);
      expect(writes.filter((n) => n > 0)).toEqual([10]);
    } finally {
      proto._writev = _writev;
      proto._write = _write;
      raw?.destroy();
      await end(sub);
      await broker.close();
    }
  });
});

describe('embedded broker: accounts and ACL', () => {
  let broker: EmbeddedBroker;
  const clients: mqtt.MqttClient[] = [];
  beforeAll(async () => {
    broker = await EmbeddedBroker.start({ port: 0, accounts });
  });
  afterAll(async () => {
    for (const c of clients) await end(c);
    await broker.close();
  });
  const open = async (opts: mqtt.IClientOptions) => {
    const c = await connect(broker.url, opts);
    clients.push(c);
    return c;
  };

  test('anonymous is refused when accounts are configured (CONNACK 5)', async () => {
    await expect(connect(broker.url)).rejects.toMatchObject({ code: 5 });
  });
  test('a wrong password is refused (CONNACK 4)', async () => {
    await expect(connect(broker.url, { username: 'writer', password: 'nope' })).rejects.toMatchObject({ code: 4 });
    await expect(connect(broker.url, { username: 'nobody', password: 'w-secret' })).rejects.toMatchObject({ code: 4 });
  });
  test('the reader may subscribe under the root and receives what a writer publishes', async () => {
    const reader = await open({ username: 'dash', password: 'r-secret' });
    const granted = await subscribe(reader, `${ROOT}/#`);
    expect(granted[0].qos).toBe(1);
    const got: string[] = [];
    reader.on('message', (t, p) => got.push(`${t} ${p}`));
    const writer = await open({ username: 'writer', password: 'w-secret' });
    await writer.publishAsync(`${ROOT}/calls/${runId}/events`, '{"x":1}', { qos: 1 });
    await waitFor(() => got.length === 1, 'reader to get the event');
    expect(got[0]).toBe(`${ROOT}/calls/${runId}/events {"x":1}`);
  });
  test('the reader may not subscribe outside the root (SUBACK 128)', async () => {
    const reader = await open({ username: 'dash', password: 'r-secret' });
    // mqtt.js turns SUBACK 0x80 into an error carrying the packet
    await expect(subscribe(reader, '#')).rejects.toMatchObject({ packet: { granted: [128] } });
    await expect(subscribe(reader, '$SYS/#')).rejects.toMatchObject({ packet: { granted: [128] } });
    await expect(subscribe(reader, 'ai-dialer/v2/#')).rejects.toMatchObject({ packet: { granted: [128] } });
  });
  test('the reader may not publish (control or event): the broker drops it and disconnects the reader', async () => {
    const spy = await open({ username: 'writer', password: 'w-secret' });
    await subscribe(spy, `${ROOT}/#`);
    const seen: string[] = [];
    spy.on('message', (t, p) => seen.push(`${t} ${p}`));
    const reader = await open({ username: 'dash', password: 'r-secret' });
    let closed = false;
    reader.on('close', () => (closed = true));
    reader.publish(`${ROOT}/campaigns/${runId}/control`, '{"action":"start"}', { qos: 1 });
    await waitFor(() => closed, 'reader to be disconnected');
    // a writer's control after it proves the spy would have seen the reader's
    const writer = await open({ username: 'writer', password: 'w-secret' });
    await writer.publishAsync(`${ROOT}/campaigns/${runId}/control`, '{"action":"stop"}', { qos: 1 });
    await waitFor(() => seen.some((m) => m.endsWith('"stop"}')), 'writer control to arrive');
    expect(seen).toEqual([`${ROOT}/campaigns/${runId}/control {"action":"stop"}`]);
  });
  test('the internal account writes; $SYS is refused to everyone', async () => {
    const w = await open({ username: broker.internal.username, password: broker.internal.password });
    let closed = false;
    w.on('close', () => (closed = true));
    w.publish('$SYS/x', 'y', { qos: 1 });
    await waitFor(() => closed, 'publisher to $SYS to be disconnected');
  });
});

describe('embedded broker without accounts', () => {
  test('anonymous may subscribe and publish outside the root, but not under it (no spoofed events or controls)', async () => {
    const broker = await EmbeddedBroker.start({ port: 0 });
    try {
      const anon = await connect(broker.url);
      const other = await connect(broker.url);
      await subscribe(other, '#');
      const seen: string[] = [];
      other.on('message', (t) => seen.push(t));
      await anon.publishAsync(`lab/${runId}`, 'ok', { qos: 1 });
      await waitFor(() => seen.length === 1, 'anonymous publish outside the root');
      let closed = false;
      anon.on('close', () => (closed = true));
      anon.publish(`${ROOT}/calls/1/control`, '{"action":"hangup"}', { qos: 1 });
      await waitFor(() => closed, 'anonymous control publisher to be disconnected');
      expect(seen).toEqual([`lab/${runId}`]);
      await end(anon);
      await end(other);
    } finally {
      await broker.close();
    }
  });
});

describe('embedded broker: TCP <-> WebSocket relay', () => {
  test('a message relays between an mqtt.js client over TCP and one over WebSocket at /mqtt, both ways', async () => {
    const server = http.createServer((_req, res) => res.end('ok'));
    // another upgrade listener (like Node-RED's /comms) must keep working for its own path
    const otherUpgrades: string[] = [];
    server.on('upgrade', (req, socket) => {
      if (req.url === '/comms') {
        otherUpgrades.push(req.url);
        socket.destroy();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const httpPort = (server.address() as net.AddressInfo).port;
    const broker = await EmbeddedBroker.start({ port: 0, accounts });
    const detach = broker.attachWebSocket(server, '/mqtt');
    const auth = { username: 'writer', password: 'w-secret' };
    const tcp = await connect(broker.url, auth);
    const ws = await connect(`ws://127.0.0.1:${httpPort}/mqtt`, auth);
    const topic = `${ROOT}/calls/${runId}/events`;
    const atWs: string[] = [];
    const atTcp: string[] = [];
    ws.on('message', (_t, p) => atWs.push(p.toString()));
    tcp.on('message', (_t, p) => atTcp.push(p.toString()));
    await subscribe(ws, topic);
    await subscribe(tcp, `${ROOT}/campaigns/+/status`);
    await tcp.publishAsync(topic, 'from-tcp', { qos: 1 });
    await ws.publishAsync(`${ROOT}/campaigns/${runId}/status`, 'from-ws', { qos: 1, retain: true });
    await waitFor(() => atWs.length === 1 && atTcp.length === 1, 'relay both ways');
    expect(atWs).toEqual(['from-tcp']);
    expect(atTcp).toEqual(['from-ws']);
    // a reader over WebSocket gets the retained status on subscribe
    const dash = await connect(`ws://127.0.0.1:${httpPort}/mqtt`, { username: 'dash', password: 'r-secret' });
    const retained: string[] = [];
    dash.on('message', (_t, p, pk) => pk.retain && retained.push(p.toString()));
    await subscribe(dash, `${ROOT}/campaigns/+/status`);
    await waitFor(() => retained.length === 1, 'retained status over WebSocket');
    // other paths are left to other listeners
    await new Promise<void>((resolve) => {
      const req = http.request({
        host: '127.0.0.1',
        port: httpPort,
        path: '/comms',
        headers: { Connection: 'Upgrade', Upgrade: 'websocket' },
      });
      req.on('error', () => resolve());
      req.on('upgrade', () => resolve());
      req.on('close', () => resolve());
      req.end();
    });
    expect(otherUpgrades).toEqual(['/comms']);
    // clean close: clients disconnected, upgrade listener removed, TCP port released
    let wsClosed = false;
    ws.on('close', () => (wsClosed = true));
    ws.options.reconnectPeriod = 0;
    detach();
    expect(server.listeners('upgrade')).toHaveLength(1);
    await broker.close();
    await waitFor(() => wsClosed, 'WebSocket client to be disconnected by close');
    await expect(connect(broker.url, { ...auth, connectTimeout: 1000 })).rejects.toBeTruthy();
    for (const c of [tcp, ws, dash]) await end(c);
    await new Promise<void>((r) => server.close(() => r()));
  });
});

describe('embedded broker: start-up errors and sharing', () => {
  test('a taken port gives one clear line naming the port, Mosquitto, MQTT_PORT and MQTT_URL', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    let err: unknown;
    try {
      await EmbeddedBroker.start({ port });
    } catch (e) {
      err = e;
    }
    await new Promise<void>((r) => blocker.close(() => r()));
    expect(err).toBeInstanceOf(DialerError);
    expect((err as DialerError).code).toBe('mqtt_port_in_use');
    expect((err as Error).message).toBe(
      `MQTT port ${port} is already in use (is Mosquitto running?). Set MQTT_PORT to another port, or MQTT_URL=mqtt://127.0.0.1:${port} to use the running broker.`,
    );
    expect((err as Error).message).not.toContain('\n');
  });

  test('users of one port share one broker; the last release closes it', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const [a, b] = await Promise.all([acquireBroker({ port }), acquireBroker({ port, accounts: [accounts[0]] })]);
    expect(a).toBe(b);
    expect(a.hasAccounts).toBe(true);
    await releaseBroker(a);
    const c = await connect(a.url, { username: 'writer', password: 'w-secret' });
    await end(c);
    await releaseBroker(b);
    await expect(connect(a.url, { connectTimeout: 1000 })).rejects.toBeTruthy();
  });
});
