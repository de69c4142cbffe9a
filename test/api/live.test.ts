/**
 * The plain WebSocket live monitor (src/api/live.ts) over real sockets: an HTTP server on port 0, the
 * embedded MQTT broker, the real Publisher (whose events feed the monitor) and `ws` / raw TCP clients.
 */
import http from 'http';
import net from 'net';
import { randomBytes } from 'crypto';
import type { AddressInfo } from 'net';
import WebSocket from 'ws';
import mqtt from 'mqtt';
import { attachLive, upgradeAuthFrom, CLOSE, type LiveOptions, type LiveServer } from '../../src/api/live';
import { EmbeddedBroker } from '../../src/events/broker';
import { Publisher } from '../../src/events/publisher';
import { buildEvent } from '../../src/events/builders';
import { eventFeed } from '../../src/events/feed';
import { waitFor } from '../helpers/wait';

const TOKEN = 'full-secret-token-0123';
const READ = 'read-secret-token-4567';

interface Stand {
  port: number;
  base: string;
  live: LiveServer;
  server: http.Server;
  logs: string[];
  close(): Promise<void>;
}

async function stand(opts: LiveOptions = {}): Promise<Stand> {
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  const logs: string[] = [];
  const live = attachLive(server, { log: (l) => logs.push(l), ...opts });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    base: `ws://127.0.0.1:${port}`,
    live,
    server,
    logs,
    close: async () => {
      await live.close();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Open a client; resolves with it and its messages once open, or the HTTP status it was refused with. */
function open(
  url: string,
  o: { protocols?: string[]; headers?: Record<string, string> } = {},
): Promise<{ ws: WebSocket; msgs: string[] } | { status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, o.protocols ?? [], { headers: o.headers });
    const msgs: string[] = [];
    ws.on('message', (d) => msgs.push(String(d)));
    ws.once('open', () => resolve({ ws, msgs }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', reject);
  });
}

async function mustOpen(url: string, o?: Parameters<typeof open>[1]): Promise<{ ws: WebSocket; msgs: string[] }> {
  const r = await open(url, o);
  if ('status' in r) throw new Error(`refused ${r.status} ${r.body}`);
  return r;
}

async function mustRefuse(url: string, o?: Parameters<typeof open>[1]): Promise<{ status: number; error: string }> {
  const r = await open(url, o);
  if (!('status' in r)) {
    r.ws.terminate();
    throw new Error('accepted');
  }
  return { status: r.status, error: JSON.parse(r.body).error };
}

const b64url = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

const closed = (ws: WebSocket) =>
  new Promise<{ code: number; reason: string }>((r) =>
    ws.once('close', (code, reason) => r({ code, reason: String(reason) })),
  );

/** A raw upgrade request; resolves with the socket and the first bytes answered. */
function rawUpgrade(port: number, request: string): Promise<{ sock: net.Socket; head: string }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(request));
    sock.once('data', (d) => resolve({ sock, head: String(d) }));
    sock.once('error', reject);
  });
}

const upgradeRequest = (path = '/api/v1/live', extra = '') =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

describe('events: the same JSON as MQTT, in order', () => {
  let broker: EmbeddedBroker;
  let publisher: Publisher;
  let s: Stand;
  const root = `live-test-${process.pid}`;
  beforeAll(async () => {
    broker = await EmbeddedBroker.start({ port: 0 });
    publisher = new Publisher({
      url: broker.url,
      username: broker.internal.username,
      password: broker.internal.password,
      root,
      progressIntervalMs: 0,
    });
    await publisher.whenConnected();
    s = await stand();
  });
  afterAll(async () => {
    await s.close();
    await publisher.close();
    await broker.close();
  });
  beforeEach(() => eventFeed().clearRetained());

  const lifecycle = (callId: number, campaignId: number) => [
    buildEvent({ call: { id: callId, campaignId, phone: '+12125550100' } }, 'call_started'),
    ...[1, 2, 3].map((seq) =>
      buildEvent(
        { call: { id: callId, campaignId }, turn: { seq, userText: `user ${seq}`, botText: `bot ${seq}` } },
        'conversation_turn',
      ),
    ),
    buildEvent(
      {
        call: {
          id: callId,
          campaignId,
          outcome: 'completed',
          durationMs: 4000,
          transcript: [{ seq: 1, userText: 'user 1', botText: 'bot 1' }],
        },
      },
      'call_ended',
    ),
    buildEvent(
      {
        campaignId,
        progress: { state: 'running', total: 3, queued: 1, completed: 2, percent: 66 },
      },
      'campaign_progress',
    ),
  ];

  test('call_started, conversation_turn, call_ended and progress arrive in order, byte-identical to MQTT', async () => {
    const sub = await mqtt.connectAsync(broker.url, {
      username: broker.internal.username,
      password: broker.internal.password,
    });
    const fromMqtt: string[] = [];
    sub.on('message', (_t, p) => fromMqtt.push(String(p)));
    await sub.subscribeAsync(`${root}/#`, { qos: 1 });
    const c = await mustOpen(`${s.base}/api/v1/live`);
    const events = lifecycle(11, 3);
    for (const e of events) publisher.publish(e);
    await waitFor(() => c.msgs.length >= events.length && fromMqtt.length >= events.length, 5000, 'all events');
    expect(c.msgs).toEqual(fromMqtt);
    expect(c.msgs.map((m) => JSON.parse(m).type)).toEqual([
      'call_started',
      'conversation_turn',
      'conversation_turn',
      'conversation_turn',
      'call_ended',
      'campaign_progress',
    ]);
    expect(JSON.parse(c.msgs[0])).toMatchObject({ v: 1, type: 'call_started', callId: 11, campaignId: 3 });
    c.ws.close();
    await sub.endAsync();
  });

  test('a client that joins later gets the last progress of each campaign first (the retained status)', async () => {
    for (const e of [...lifecycle(21, 4), ...lifecycle(22, 5)]) publisher.publish(e);
    await waitFor(() => eventFeed().retained().length === 2, 2000, 'retained');
    const c = await mustOpen(`${s.base}/api/v1/live`);
    await waitFor(() => c.msgs.length === 2, 2000, 'two retained');
    expect(c.msgs.map((m) => JSON.parse(m).campaignId)).toEqual([4, 5]);
    c.ws.close();
  });

  test('?campaign= filters: only that campaign’s events, its retained progress, nothing without a campaign', async () => {
    for (const e of lifecycle(31, 6)) publisher.publish(e);
    await waitFor(() => eventFeed().retained().length === 1, 2000, 'retained');
    const c = await mustOpen(`${s.base}/api/v1/live?campaign=7`);
    const both = await mustOpen(`${s.base}/api/v1/live?campaign=6,7`);
    for (const e of [...lifecycle(32, 6), ...lifecycle(33, 7)]) publisher.publish(e);
    publisher.publish(buildEvent({ call: { id: 34, phone: '+12125550100' } }, 'call_started')); // no campaign
    await waitFor(() => c.msgs.length >= 6 && both.msgs.length >= 13, 5000, 'filtered events');
    await new Promise((r) => setTimeout(r, 100)); // nothing more is on its way
    expect(c.msgs).toHaveLength(6);
    expect(c.msgs.every((m) => JSON.parse(m).campaignId === 7)).toBe(true);
    expect(both.msgs).toHaveLength(13); // 1 retained + 6 + 6
    c.ws.close();
    both.ws.close();
    expect(await mustRefuse(`${s.base}/api/v1/live?campaign=a/b`)).toMatchObject({ status: 400 });
    expect((await mustRefuse(`${s.base}/api/v1/live?campaign=%23`)).error).toMatch(/campaign must be/);
  });

  test('events published while the broker is unreachable still reach the live monitor', async () => {
    const offline = new Publisher({ url: 'mqtt://127.0.0.1:1', root, reconnectPeriodMs: 60000 });
    const c = await mustOpen(`${s.base}/api/v1/live`);
    offline.publish(lifecycle(41, 8)[0]);
    await waitFor(() => c.msgs.length === 1, 2000, 'event');
    expect(offline.stats().buffered).toBe(1);
    c.ws.close();
    await offline.close(0);
  });
});

describe('auth, origin, paths', () => {
  let s: Stand;
  beforeAll(async () => {
    s = await stand({ token: TOKEN, readToken: READ, allowedOrigins: ['https://wall.example.com'] });
  });
  afterAll(() => s.close());

  test('no token 401, wrong 403, read or full token accepted (header or subprotocol); the token is never logged', async () => {
    const url = `${s.base}/api/v1/live`;
    const none = await mustRefuse(url);
    expect(none.status).toBe(401);
    expect(none.error).toMatch(/API token/);
    expect((await mustRefuse(url, { headers: { Authorization: 'Bearer nope' } })).status).toBe(403);
    expect((await mustRefuse(url, { protocols: ['ai-dialer.v1', `bearer.${b64url('nope')}`] })).status).toBe(403);
    for (const t of [READ, TOKEN]) {
      const a = await mustOpen(url, { headers: { Authorization: `Bearer ${t}` } });
      const b = await mustOpen(url, { headers: { 'X-API-Token': t } });
      const c = await mustOpen(url, { protocols: ['ai-dialer.v1', `bearer.${b64url(t)}`] });
      expect(c.ws.protocol).toBe('ai-dialer.v1'); // the token entry is never echoed
      for (const x of [a, b, c]) x.ws.close();
    }
    // a token in the URL is refused (it would be logged by proxies), even a right one
    const q = await mustRefuse(`${url}?token=${READ}`);
    expect(q.status).toBe(400);
    expect(q.error).toMatch(/not|refused/);
    expect((await mustRefuse(`${url}?access_token=${READ}`)).status).toBe(400);
    // a token entry without the protocol name a browser needs answered; not base64url
    expect((await mustRefuse(url, { protocols: [`bearer.${b64url(READ)}`] })).status).toBe(400);
    expect((await mustRefuse(url, { protocols: ['ai-dialer.v1', 'bearer.***'] })).status).toBe(400);
    expect(s.logs.join('\n')).not.toMatch(new RegExp(`${READ}|${TOKEN}|${b64url(READ)}`));
  });

  test('a foreign Origin is refused (403), the own origin and API_ALLOWED_ORIGINS are not', async () => {
    const url = `${s.base}/api/v1/live`;
    const auth = { Authorization: `Bearer ${READ}` };
    const foreign = await mustRefuse(url, { headers: { ...auth, Origin: 'https://evil.example.com' } });
    expect(foreign.status).toBe(403);
    expect(foreign.error).toMatch(/API_ALLOWED_ORIGINS/);
    expect(s.logs.some((l) => l.includes('evil.example.com'))).toBe(true);
    for (const origin of [`http://127.0.0.1:${s.port}`, 'https://wall.example.com']) {
      const c = await mustOpen(url, { headers: { ...auth, Origin: origin } });
      c.ws.close();
    }
  });

  test('unknown paths under /api/v1/ are 404; other paths are left to other listeners; malformed handshakes 400', async () => {
    const r = await mustRefuse(`${s.base}/api/v1/livex`, { headers: { Authorization: `Bearer ${READ}` } });
    expect(r.status).toBe(404);
    expect(r.error).toMatch(/\/api\/v1\/live/);
    let other = 0;
    s.server.on('upgrade', (req, sock) => {
      if (req.url === '/elsewhere') {
        other++;
        sock.end('HTTP/1.1 418 Teapot\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      }
    });
    const elsewhere = await open(`${s.base}/elsewhere`);
    expect('status' in elsewhere && elsewhere.status).toBe(418);
    expect(other).toBe(1);
    // no Sec-WebSocket-Key: ws says which header is wrong
    const bad = await rawUpgrade(
      s.port,
      `GET /api/v1/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAuthorization: Bearer ${READ}\r\n\r\n`,
    );
    expect(bad.head).toMatch(/^HTTP\/1\.1 400/);
    bad.sock.destroy();
    // not GET
    const post = await rawUpgrade(s.port, upgradeRequest('/api/v1/live').replace(/^GET/, 'POST'));
    expect(post.head).toMatch(/^HTTP\/1\.1 405/);
    post.sock.destroy();
    // a request target that is not a path
    const weird = await rawUpgrade(s.port, upgradeRequest('http://[::1/api/v1/live'));
    expect(weird.head).toMatch(/^HTTP\/1\.1 4\d\d/);
    weird.sock.destroy();
    expect(s.live.clients()).toBe(0);
  });

  test("the host's login (Node-RED adminAuth) through a needsPermission-like middleware", async () => {
    const needsPermission =
      (perm: string) => (req: http.IncomingMessage, res: { status(c: number): { end(): void } }, next: () => void) => {
        const a = req.headers.authorization;
        if (a === 'Bearer admin-rw' || (a === 'Bearer admin-ro' && perm.endsWith('.read'))) return next();
        res.status(401).end();
      };
    const h = await stand({ hostAuth: upgradeAuthFrom(needsPermission('aidialer.read') as never), token: TOKEN });
    try {
      const url = `${h.base}/api/v1/live`;
      expect((await mustRefuse(url)).status).toBe(401);
      expect((await mustRefuse(url, { headers: { Authorization: 'Bearer other' } })).status).toBe(401);
      for (const c of [
        await mustOpen(url, { headers: { Authorization: 'Bearer admin-ro' } }),
        await mustOpen(url, { protocols: ['ai-dialer.v1', `bearer.${b64url('admin-rw')}`] }),
        await mustOpen(url, { headers: { Authorization: `Bearer ${TOKEN}` } }),
      ])
        c.ws.close();
    } finally {
      await h.close();
    }
  });
});

describe('hostile and slow clients', () => {
  test('a client that does not read is closed (4001) and the server never holds more than the limit', async () => {
    const limit = 64 * 1024;
    const s = await stand({ maxBufferedBytes: limit, closeGraceMs: 200 });
    try {
      const { sock, head } = await rawUpgrade(s.port, upgradeRequest());
      expect(head).toMatch(/^HTTP\/1\.1 101/);
      sock.pause(); // never reads again
      const good = await mustOpen(`${s.base}/api/v1/live`);
      let count = 0;
      good.ws.on('message', () => count++);
      const feed = eventFeed();
      const text = 'x'.repeat(900);
      let sent = 0;
      let maxHeld = 0;
      // pump until the slow one is gone (kernel buffers fill first, then the server's)
      while (s.live.clients() === 2 && sent < 200000) {
        for (let i = 0; i < 200; i++, sent++)
          feed.publish(
            buildEvent(
              { call: { id: sent + 1, campaignId: 1 }, turn: { seq: 1, userText: text } },
              'conversation_turn',
            ),
            JSON.stringify({ n: sent, text }),
          );
        maxHeld = Math.max(maxHeld, s.live.bufferedBytes() - good.ws.bufferedAmount);
        await new Promise((r) => setImmediate(r));
      }
      await waitFor(() => s.live.clients() === 1, 3000, 'the slow client cut off');
      expect(maxHeld).toBeLessThanOrEqual(limit + 2048);
      expect(s.logs.join('\n')).toMatch(/fell more than 65536 bytes behind/);
      // the reading client got everything
      await waitFor(() => count === sent, 5000, 'the fast client caught up');
      sock.destroy();
      good.ws.close();
    } finally {
      await s.close();
    }
  });

  test('garbage after the handshake, a frame over 4 KiB, and client messages: closed or ignored, never a crash', async () => {
    const s = await stand();
    try {
      const watcher = await mustOpen(`${s.base}/api/v1/live`);
      // unmasked garbage: ws closes with a protocol error
      const g = await rawUpgrade(s.port, upgradeRequest());
      g.sock.write(randomBytes(4096));
      await new Promise((r) => g.sock.once('close', r));
      // a frame larger than 4 KiB: 1009
      const big = await mustOpen(`${s.base}/api/v1/live`);
      const bigClosed = closed(big.ws);
      big.ws.send('y'.repeat(64 * 1024));
      expect((await bigClosed).code).toBe(CLOSE.tooBig);
      // small messages are read and dropped; the connection stays
      const chat = await mustOpen(`${s.base}/api/v1/live`);
      for (let i = 0; i < 100; i++) chat.ws.send(`{"type":"subscribe","n":${i}}`);
      chat.ws.send(randomBytes(100));
      eventFeed().publish(buildEvent({ call: { id: 5, phone: '+12125550100' } }, 'call_started'), '{"ok":1}');
      await waitFor(() => chat.msgs.includes('{"ok":1}') && watcher.msgs.includes('{"ok":1}'), 2000, 'still served');
      await waitFor(() => s.live.clients() === 2, 2000, 'two left');
      chat.ws.close();
      watcher.ws.close();
    } finally {
      await s.close();
    }
  });

  test('many connections: past the limit 503 with Retry-After; all released when they go', async () => {
    const s = await stand({ maxClients: 20 });
    try {
      const results = await Promise.all(Array.from({ length: 30 }, () => open(`${s.base}/api/v1/live`)));
      const ok = results.filter((r): r is { ws: WebSocket; msgs: string[] } => 'ws' in r);
      const refused = results.filter((r): r is { status: number; body: string } => 'status' in r);
      expect(ok).toHaveLength(20);
      expect(refused.map((r) => r.status)).toEqual(Array(10).fill(503));
      for (const c of ok) c.ws.terminate();
      await waitFor(() => s.live.clients() === 0, 3000, 'all released');
      const again = await mustOpen(`${s.base}/api/v1/live`);
      again.ws.close();
    } finally {
      await s.close();
    }
  });

  test('keepalive: a client that never answers pings is cut off; a normal client stays', async () => {
    const s = await stand({ pingIntervalMs: 100 });
    try {
      const normal = await mustOpen(`${s.base}/api/v1/live`);
      const mute = await rawUpgrade(s.port, upgradeRequest()); // reads, never pongs
      mute.sock.on('data', () => undefined);
      await waitFor(() => s.live.clients() === 2 || undefined, 1000, 'both in');
      await new Promise((r) => mute.sock.once('close', r));
      await waitFor(() => s.live.clients() === 1, 1000, 'the mute client released');
      await new Promise((r) => setTimeout(r, 300)); // three more ping rounds
      expect(normal.ws.readyState).toBe(WebSocket.OPEN);
      normal.ws.close();
    } finally {
      await s.close();
    }
  });
});

describe('stop', () => {
  test('close(): every client gets 1001, the feed and the upgrade listener are released, the server closes', async () => {
    const feed = eventFeed();
    const before = feed.listenerCount;
    const s = await stand();
    const upgradeListeners = s.server.listenerCount('upgrade');
    expect(feed.listenerCount).toBe(before + 1);
    const cs = await Promise.all([1, 2, 3].map(() => mustOpen(`${s.base}/api/v1/live`)));
    const codes = cs.map((c) => closed(c.ws));
    const t0 = Date.now();
    await s.close(); // live.close() then server.close(): would hang on an open socket
    expect(Date.now() - t0).toBeLessThan(2000);
    expect((await Promise.all(codes)).map((c) => c.code)).toEqual([1001, 1001, 1001]);
    expect(feed.listenerCount).toBe(before);
    expect(s.server.listenerCount('upgrade')).toBe(upgradeListeners - 1);
    expect(s.live.clients()).toBe(0);
  });
});
