/**
 * DNS rebinding guard of an API without credentials (src/api/auth.ts openHostGuard, used by the router
 * when no token and no host login is configured): a request addressed to a DNS name is refused, one
 * addressed to an IP address or localhost (or the host of an allowed origin) goes on.
 */
import http from 'http';
import type { AddressInfo } from 'net';
import express from 'express';
import { createApiRouter } from '../../src/api/router';
import type { Db } from '../../src/store/db';

let server: http.Server;
let port = 0;

/** A database double: the routes under test only list calls. */
const db = { query: async () => ({ rows: [] }) } as unknown as Db;

function get(p: string, host: string, o: { origin?: string } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (o.origin) headers.Origin = o.origin;
    const r = http.request({ host: '127.0.0.1', port, path: p, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    r.setHeader('Host', host);
    r.on('error', reject);
    r.end();
  });
}

async function serve(opts: { token?: string; allowedOrigins?: string[] }): Promise<void> {
  const app = express();
  app.use(
    createApiRouter({ getDb: async () => db, token: opts.token ?? '', readToken: '', ...opts, log: () => undefined }),
  );
  server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as AddressInfo).port;
}

afterEach(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

test('open API: IP addresses and localhost are served, a DNS name is refused 403 JSON (health stays open)', async () => {
  await serve({});
  for (const host of [
    `127.0.0.1:${port}`,
    '127.0.0.1',
    `[::1]:${port}`,
    `localhost:${port}`,
    'app.localhost',
    '10.0.0.5',
  ]) {
    expect([host, (await get('/api/v1/calls', host)).status]).toEqual([host, 200]);
  }
  for (const host of [`rebind.example:${port}`, 'localhost.evil.example', '127.0.0.1.nip.io', 'dialer']) {
    const r = await get('/api/v1/calls', host);
    expect([host, r.status]).toEqual([host, 403]);
    expect(JSON.parse(r.body).error).toMatch(/no credential configured.*set API_TOKEN/);
  }
  // the same-origin POST of a rebound page (Origin = Host) is refused too, before any route
  expect((await get('/api/v1/campaigns', 'rebind.example', { origin: 'http://rebind.example' })).status).toBe(403);
  expect((await get('/api/v1/health', 'rebind.example')).status).toBe(200);
});

test('open API: the host of an origin in API_ALLOWED_ORIGINS is served (a proxy that keeps its name in Host)', async () => {
  await serve({ allowedOrigins: ['https://dialer.example.com'] });
  expect((await get('/api/v1/calls', 'dialer.example.com')).status).toBe(200);
  expect((await get('/api/v1/calls', 'other.example.com')).status).toBe(403);
});

test('with a token the name does not matter: the token is what protects the API', async () => {
  await serve({ token: 'tok-for-host-test' });
  const r = await get('/api/v1/calls', 'dialer.lan:1880');
  expect(r.status).toBe(401);
});
