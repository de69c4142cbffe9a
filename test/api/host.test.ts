/**
 * The API's owner in a host shaped like Node-RED (src/api/host.ts): an outer express app with the
 * editor app mounted first (CORS `*`, a 5 MB JSON parser answering HTML errors, as Node-RED's
 * editor-api does) and httpNode after it; `adminAuth` through a needsPermission-like middleware.
 */
import http from 'http';
import type { AddressInfo } from 'net';
import express, { type RequestHandler } from 'express';
import { openDb, type Db } from '../../src/store/db';
import { serveOnHost, type HostApi } from '../../src/api/host';

interface Host {
  url: string;
  close(): Promise<void>;
  logs: string[];
  stop(): void;
}

async function host(opts: { adminAuth: boolean; token?: string; store?: Db }): Promise<Host> {
  const top = express();
  const admin = express();
  admin.use((_req, res, next) => {
    res.set('Access-Control-Allow-Origin', '*');
    next();
  });
  admin.use(express.json({ limit: '5mb' })); // errors fall through to express's HTML final handler
  const nodeApp = express();
  top.use('/', admin);
  top.use('/', nodeApp);
  // needsPermission: `Bearer admin-rw` has '*', `Bearer admin-ro` has 'read'; else a bare 401
  const needsPermission =
    (perm: string): RequestHandler =>
    (req, res, next) => {
      const a = req.headers.authorization;
      if (a === 'Bearer admin-rw' || (a === 'Bearer admin-ro' && perm.endsWith('.read'))) return next();
      res.status(401).end();
    };
  const logs: string[] = [];
  const nodes: Array<{ id: string; type: string; store?: string }> = opts.store
    ? [
        { id: 'q1', type: 'campaign-queue', store: 's1' },
        { id: 's1', type: 'ai-dialer-store' },
      ]
    : [];
  const red: HostApi = {
    httpNode: nodeApp as never,
    settings: {
      httpNodeRoot: '/',
      httpAdminRoot: '/',
      ...(opts.adminAuth ? { adminAuth: { type: 'credentials' } } : {}),
    },
    auth: { needsPermission },
    nodes: {
      eachNode: (cb) => nodes.forEach(cb),
      getNode: (id) => (id === 's1' && opts.store ? { getDb: async () => opts.store! } : null),
    },
    log: { info: (s) => logs.push(s), warn: (s) => logs.push(s), error: (s) => logs.push(s) },
  };
  const served = serveOnHost(red, { API_TOKEN: opts.token ?? '' } as NodeJS.ProcessEnv)!;
  const server = http.createServer(top);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    logs,
    stop: () => served.stop(),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

let db: Db;
beforeAll(async () => {
  db = await openDb({ dataDir: 'memory://' });
});
afterAll(async () => {
  await db.close();
});

test('served once, ahead of the editor app: no CORS *, our JSON errors and limits, not its HTML parser', async () => {
  const h = await host({ adminAuth: false, store: db });
  try {
    const r = await fetch(`${h.url}/api/v1/campaigns`);
    expect([r.status, r.headers.get('access-control-allow-origin')]).toEqual([200, null]);
    const bad = await fetch(`${h.url}/api/v1/campaigns`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"name":',
    });
    expect([bad.status, bad.headers.get('content-type')]).toEqual([400, expect.stringMatching(/^application\/json/)]);
    const six = await fetch(`${h.url}/api/v1/campaigns`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x', settings: { pad: 'x'.repeat(6 * 1024 * 1024) } }),
    });
    expect(six.status).toBe(400); // read by our 10 MB parser; refused by validation, not a 5 MB 413 page
    expect(((await six.json()) as { error: string }).error).toMatch(/settings must stay under/);
    // the editor's own paths are untouched
    expect((await fetch(`${h.url}/flows`)).headers.get('access-control-allow-origin')).toBe('*');
    expect(h.logs.join('\n')).toMatch(/OPEN: no API_TOKEN and no adminAuth/);
    expect((await (await fetch(`${h.url}/api/v1/health`)).json()) as object).toMatchObject({ auth: 'open' });
    h.stop();
    expect((await fetch(`${h.url}/api/v1/campaigns`)).status).toBe(404); // removed cleanly
  } finally {
    await h.close();
  }
});

test('with adminAuth the routes follow it: editor tokens by permission, refusals as JSON; API_TOKEN still works', async () => {
  const h = await host({ adminAuth: true, token: 'api-tok', store: db });
  try {
    const get = (auth?: string) => fetch(`${h.url}/api/v1/calls`, { headers: auth ? { authorization: auth } : {} });
    const none = await get();
    expect([none.status, none.headers.get('content-type')]).toEqual([401, expect.stringMatching(/^application\/json/)]);
    expect(((await none.json()) as { error: string }).error).toMatch(/login/);
    expect((await get('Bearer admin-ro')).status).toBe(200);
    expect((await get('Bearer admin-rw')).status).toBe(200);
    expect((await get('Bearer api-tok')).status).toBe(200);
    expect((await get('Bearer nope')).status).toBe(401);
    const post = (auth: string) =>
      fetch(`${h.url}/api/v1/campaigns`, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'by admin' }),
      });
    expect((await post('Bearer admin-ro')).status).toBe(401);
    expect((await post('Bearer admin-rw')).status).toBe(201);
    const cfg = (await (await fetch(`${h.url}/dialer/config.json`)).json()) as Record<string, unknown>;
    expect(cfg).toMatchObject({ apiTokenRequired: true, hostLogin: true });
  } finally {
    h.stop();
    await h.close();
  }
});

test('no store deployed: 503 JSON, not a crash', async () => {
  const h = await host({ adminAuth: false });
  try {
    const r = await fetch(`${h.url}/api/v1/campaigns`);
    expect(r.status).toBe(503);
    expect(((await r.json()) as { error: string }).error).toMatch(/no ai-dialer-store/);
  } finally {
    h.stop();
    await h.close();
  }
});
