/**
 * Issue 11 probes, replayed (items 1, 2, 3, 4 broker part, 5, 7): against `npm start` as a child process
 * for the editor, CORS, bind refusal and MQTT WebSocket; in-process (the real fastagi-in node in Node-RED,
 * the real FastAGI socket, PGlite) for FastAGI tampering, the AGI fuzz and toll fraud.
 * docs/operations/security.md lists what each probe answered before and after.
 */
import fs from 'fs';
import http from 'http';
import net from 'net';
import os from 'os';
import path from 'path';
import WebSocket from 'ws';
import helper from 'node-red-node-test-helper';
import { runAgiCall } from '../../src/sim/agi-client';
import { getSession } from '../../src/agi/registry';
import { newCallToken, storeCallTokens } from '../../src/agi/call-token';
import { admitCall } from '../../src/agi/admit';
import { appendTurn } from '../../src/store/calls';
import { importContacts } from '../../src/campaign/import';
import { normalizePhone, refusedNumberType } from '../../src/campaign/phone';
import { checkBind, isLoopback } from '../../src/runtime/security';
import type { Db } from '../../src/store/db';
import { ANY_PORTS, portEnv, spawnStart, waitForBanner, type Started } from '../helpers/start';
import { waitFor } from '../helpers/wait';
import { givenCall } from '../helpers/call-token';
import { pgliteTarget, type DbTarget } from '../helpers/db';
import { connect, end } from '../events/mqtt-helpers';

/* eslint-disable @typescript-eslint/no-require-imports */
const fastagiIn = require('../../nodes/fastagi-in/fastagi-in');
const storeNode = require('../../nodes/ai-dialer-store/ai-dialer-store');
/* eslint-enable @typescript-eslint/no-require-imports */

helper.init(require.resolve('node-red'));

type Msg = Record<string, any>;

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-sec-'));
  dirs.push(d);
  return d;
}
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

async function ports() {
  return { ...ANY_PORTS }; // bound as 0, read back from the banner (portEnv)
}

async function stop(rt: Started): Promise<void> {
  if (rt.child.exitCode === null) rt.child.kill('SIGTERM');
  await rt.exited;
}

async function login(base: string, username: string, password: string): Promise<Response> {
  return fetch(`${base}/auth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: 'node-red-admin', grant_type: 'password', scope: '*', username, password }),
  });
}

/** Open MQTT over WebSocket at /mqtt with a browser Origin; resolves with the HTTP status of a refusal, or 101. */
function wsUpgrade(url: string, origin?: string, host?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, 'mqtt', {
      ...(origin ? { origin } : {}),
      ...(host ? { headers: { Host: host } } : {}),
    });
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

/** One HTTP request with exactly these headers (fetch cannot set Host). */
function rawHttp(
  port: string,
  method: string,
  p: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port: Number(port), method, path: p, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    r.on('error', reject);
    r.end(body);
  });
}

const flowNode = JSON.stringify({ id: 'pwn', label: 'pwn', nodes: [] });

describe('npm start: editor login, CORS, MQTT WebSocket origin (loopback defaults)', () => {
  let rt: Started;
  let p: Awaited<ReturnType<typeof ports>>;
  let dataDir: string;
  let base: string;
  let password: string;

  beforeAll(async () => {
    p = await ports();
    dataDir = tmp();
    rt = spawnStart({ ...p, DATA_DIR: dataDir });
    Object.assign(p, portEnv(await waitForBanner(rt, 90000)));
    base = `http://127.0.0.1:${p.PORT}`;
    const m = /Editor login: +admin \/ (\S+)/.exec(rt.out());
    password = m ? m[1] : '';
  }, 120000);
  afterAll(() => stop(rt), 30000);

  test('a password is generated on first start, printed once in the banner, stored only as a bcrypt hash', () => {
    expect(password).toMatch(/^[A-Za-z0-9_-]{20}$/);
    expect(rt.out()).toContain('To change it: set EDITOR_PASSWORD');
    const file = path.join(dataDir, 'editor-credentials.json');
    const text = fs.readFileSync(file, 'utf8');
    expect(text).not.toContain(password);
    expect(JSON.parse(text).hash).toMatch(/^\$2[aby]\$10\$/);
    expect(fs.statSync(file).mode & 0o077).toBe(0);
    // never in a log line: once in the whole output
    expect(rt.out().split(password).length - 1).toBe(1);
  });

  test('POST /flow without a token is 401 (before: 200, a flow with an exec node ran as the runtime user)', async () => {
    const r = await fetch(`${base}/flow`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: flowNode,
    });
    expect(r.status).toBe(401);
    expect((await fetch(`${base}/flows`)).status).toBe(401);
    expect((await fetch(`${base}/settings`)).status).toBe(401);
  });

  test('/auth/token works with the generated password, not with a wrong one; the token opens the admin API', async () => {
    expect((await login(base, 'admin', 'wrong-password')).status).toBe(403);
    const ok = await login(base, 'admin', password);
    expect(ok.status).toBe(200);
    const { access_token } = (await ok.json()) as { access_token: string };
    const flows = await fetch(`${base}/flows`, { headers: { Authorization: `Bearer ${access_token}` } });
    expect(flows.status).toBe(200);
  });

  test('no Access-Control-Allow-Origin: * for a page on another origin (before: * on /flow, preflight allowed POST)', async () => {
    const pre = await fetch(`${base}/flow`, {
      method: 'OPTIONS',
      headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' },
    });
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    expect(pre.headers.get('access-control-allow-methods')).toBeNull();
    for (const route of ['/flows', '/auth/login', '/settings', '/nodes']) {
      const r = await fetch(`${base}${route}`, { headers: { Origin: 'http://evil.example' } });
      expect([route, r.headers.get('access-control-allow-origin')]).toEqual([route, null]);
    }
  });

  test('MQTT over WebSocket: a foreign Origin is refused (403); the runtime own origin and non-browsers connect', async () => {
    const url = `ws://127.0.0.1:${p.PORT}/mqtt`;
    expect(await wsUpgrade(url, 'http://evil.example')).toBe(403);
    expect(await wsUpgrade(url, `http://evil.example:${p.PORT}`)).toBe(403);
    expect(await wsUpgrade(url, 'null')).toBe(403);
    // a DNS name pointing at this machine (rebinding) is not "the own origin"
    expect(await wsUpgrade(url, `http://rebind.example:${p.PORT}`, `rebind.example:${p.PORT}`)).toBe(403);
    expect(await wsUpgrade(url, `http://localhost:${p.PORT}`)).toBe(403); // page on another host than asked
    expect(await wsUpgrade(url, `http://127.0.0.1:${p.PORT}`)).toBe(101);
    expect(await wsUpgrade(url, `http://localhost:${p.PORT}`, `localhost:${p.PORT}`)).toBe(101);
    expect(await wsUpgrade(url)).toBe(101);
    // loopback-only runtime, no accounts: anonymous from this machine may read (the documented local default)
    const c = await connect(url, { wsOptions: { origin: `http://127.0.0.1:${p.PORT}` } } as never);
    await end(c);
  });

  test('DNS rebinding: with no API token the API answers a request addressed to a DNS name with 403 (before: 200 with call records)', async () => {
    // A page on rebind.example:PORT whose name is re-pointed at 127.0.0.1 is same-origin to the browser:
    // its GET carries no Origin, its POST carries Origin = Host. Only IP addresses and localhost are served.
    const named = { Host: `rebind.example:${p.PORT}` };
    const read = await rawHttp(p.PORT, 'GET', '/api/v1/calls', named);
    expect(read.status).toBe(403);
    expect(JSON.parse(read.body).error).toMatch(/set API_TOKEN/);
    const write = await rawHttp(
      p.PORT,
      'POST',
      '/api/v1/campaigns',
      {
        ...named,
        Origin: `http://rebind.example:${p.PORT}`,
        'Content-Type': 'application/json',
      },
      '{"name":"rebound"}',
    );
    expect(write.status).toBe(403);
    expect(JSON.parse(write.body).error).toMatch(/set API_TOKEN/);
    // addressed by IP or localhost it is the documented loopback default: open
    expect((await rawHttp(p.PORT, 'GET', '/api/v1/calls', { Host: `127.0.0.1:${p.PORT}` })).status).toBe(200);
    expect((await rawHttp(p.PORT, 'GET', '/api/v1/calls', { Host: `localhost:${p.PORT}` })).status).toBe(200);
    const campaigns = (await (await fetch(`${base}/api/v1/campaigns`)).json()) as { campaigns: { name: string }[] };
    expect(campaigns.campaigns.map((c) => c.name)).not.toContain('rebound');
  });

  test('caller IDs: a premium-rate number is refused; the campaign setting allowPremium allows it', async () => {
    const mk = async (settings?: object) => {
      const r = await fetch(`${base}/api/v1/campaigns`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'toll fraud probe', ...(settings ? { settings } : {}) }),
      });
      expect(r.status).toBe(201);
      return ((await r.json()) as { id: number }).id;
    };
    const add = (id: number, number: string) =>
      fetch(`${base}/api/v1/campaigns/${id}/phone-numbers`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ number }),
      });
    const plain = await mk();
    const refused = await add(plain, '+19005550123');
    expect(refused.status).toBe(400);
    expect(JSON.stringify(await refused.json())).toContain('premium rate');
    expect((await add(plain, '+12125550123')).status).toBeLessThan(300);
    const allowed = await mk({ allowPremium: true });
    expect((await add(allowed, '+19005550123')).status).toBeLessThan(300);
  });

  test('second start on the same DATA_DIR: the password is not printed again and still works', async () => {
    await stop(rt);
    const p2 = await ports();
    rt = spawnStart({ ...p2, DATA_DIR: dataDir });
    Object.assign(p2, portEnv(await waitForBanner(rt, 90000)));
    expect(rt.out()).not.toContain(password);
    expect(rt.out()).toContain('password shown at first start');
    expect((await login(`http://127.0.0.1:${p2.PORT}`, 'admin', password)).status).toBe(200);
  }, 120000);
});

describe('npm start: binding beyond loopback', () => {
  test('HOST=0.0.0.0 without authentication: refused with one line naming what is missing, exit 1', async () => {
    const rt = spawnStart({ ...(await ports()), DATA_DIR: tmp(), HOST: '0.0.0.0' });
    expect(await rt.exited).toBe(1);
    const lines = rt
      .out()
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('ai-dialer:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('refusing to listen on HOST=0.0.0.0 without authentication');
    for (const name of [
      'API_TOKEN',
      'EDITOR_PASSWORD',
      'MQTT_WRITER_USER/MQTT_WRITER_PASSWORD',
      'MQTT_READER_USER/MQTT_READER_PASSWORD',
      'ALLOW_INSECURE=1',
    ])
      expect(lines[0]).toContain(name);
  }, 60000);

  test('the check names only what is missing, and AGI_SECRET when FastAGI itself is exposed', () => {
    const all = {
      API_TOKEN: 't'.repeat(32),
      EDITOR_PASSWORD: 'a-long-password',
      MQTT_WRITER_USER: 'w',
      MQTT_WRITER_PASSWORD: 'wp',
      MQTT_READER_USER: 'r',
      MQTT_READER_PASSWORD: 'rp',
    };
    expect(checkBind({ HOST: '0.0.0.0', ...all }).missing).toEqual([]);
    expect(checkBind({ HOST: '0.0.0.0', ...all, API_TOKEN: '' }).missing).toEqual(['API_TOKEN']);
    expect(checkBind({ HOST: '127.0.0.1', AGI_HOST: '0.0.0.0', ...all }).missing).toEqual(['AGI_SECRET']);
    expect(checkBind({ HOST: '::1' }).missing).toEqual([]);
    expect(checkBind({ HOST: '0.0.0.0', EDITOR: 'off', MQTT_URL: 'mqtt://b:1883', API_TOKEN: 'x' }).missing).toEqual(
      [],
    );
    expect(isLoopback('127.1.2.3')).toBe(true);
    expect(isLoopback('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopback('10.0.0.1')).toBe(false);
  });

  test('ALLOW_INSECURE=1 starts, loudly; EDITOR=off serves no editor nor admin API; anonymous MQTT is refused once exposed', async () => {
    const p = await ports();
    const rt = spawnStart({ ...p, DATA_DIR: tmp(), HOST: '0.0.0.0', ALLOW_INSECURE: '1', EDITOR: 'off' });
    try {
      Object.assign(p, portEnv(await waitForBanner(rt, 90000)));
      const out = rt.out();
      expect(out).toContain('!! INSECURE (ALLOW_INSECURE=1): listening on HOST=0.0.0.0 WITHOUT API_TOKEN');
      expect(out).toContain('Editor:             off');
      expect(out).not.toContain('Editor login');
      const base = `http://127.0.0.1:${p.PORT}`;
      const flow = await fetch(`${base}/flow`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: flowNode,
      });
      expect(flow.status).toBe(404);
      expect((await fetch(`${base}/flows`)).status).toBe(404);
      expect((await fetch(`${base}/dialer`)).status).toBe(200); // the dashboard is still served
      // the runtime is not loopback-only: anonymous MQTT gets nothing, even from this machine
      await expect(connect(`ws://127.0.0.1:${p.PORT}/mqtt`)).rejects.toThrow(/Not authorized|Connection refused/i);
    } finally {
      await stop(rt);
    }
  }, 120000);

  test('with accounts configured, anonymous MQTT is refused and the read-only account reads the event tree', async () => {
    // MQTT_PORT=0 / AGI_PORT=0: any free port, and the banner prints the port bound (before: 0)
    const p = await ports();
    const rt = spawnStart({
      ...p,
      DATA_DIR: tmp(),
      EDITOR_PASSWORD: 'correct-horse-battery',
      MQTT_WRITER_USER: 'writer',
      MQTT_WRITER_PASSWORD: 'writer-secret-1',
      MQTT_READER_USER: 'dashboard',
      MQTT_READER_PASSWORD: 'reader-secret-1',
    });
    try {
      Object.assign(p, portEnv(await waitForBanner(rt, 90000)));
      const mqttPort = Number(/MQTT \(TCP\): +mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(rt.out())?.[1]);
      const agiPort = Number(/FastAGI: +agi:\/\/127\.0\.0\.1:(\d+)/.exec(rt.out())?.[1]);
      expect(mqttPort).toBeGreaterThan(0);
      expect(agiPort).toBeGreaterThan(0);
      await new Promise<void>((res, rej) => {
        const s = net.connect(agiPort, '127.0.0.1', () => (s.destroy(), res()));
        s.once('error', rej);
      });
      p.MQTT_PORT = String(mqttPort);
      expect(rt.out()).toContain('Editor login:       admin (password from EDITOR_PASSWORD)');
      expect(rt.out()).not.toContain('correct-horse-battery');
      expect((await login(`http://127.0.0.1:${p.PORT}`, 'admin', 'correct-horse-battery')).status).toBe(200);
      await expect(connect(`mqtt://127.0.0.1:${p.MQTT_PORT}`)).rejects.toThrow(/Not authorized|Connection refused/i);
      await expect(connect(`ws://127.0.0.1:${p.PORT}/mqtt`)).rejects.toThrow(/Not authorized|Connection refused/i);
      const reader = await connect(`mqtt://127.0.0.1:${p.MQTT_PORT}`, {
        username: 'dashboard',
        password: 'reader-secret-1',
      });
      const granted = await new Promise<number[]>((res, rej) =>
        reader.subscribe('ai-dialer/v1/#', { qos: 0 }, (err, g) => (err ? rej(err) : res((g ?? []).map((x) => x.qos)))),
      );
      expect(granted).toEqual([0]);
      await end(reader);
    } finally {
      await stop(rt);
    }
  }, 120000);
});

describe('FastAGI: a session can only drive the call it was given (in-process, real sockets, PGlite)', () => {
  let target: DbTarget;
  let db: Db;
  let port: number;
  const sessions: Msg[] = [];
  const warnings: string[] = [];

  beforeAll((done) => {
    helper.startServer(done);
  });
  afterAll((done) => {
    helper.stopServer(done);
  });

  beforeAll(async () => {
    target = pgliteTarget();
    await helper.load(
      [storeNode, fastagiIn],
      [
        { id: 'store', type: 'ai-dialer-store', mode: 'embedded', dataDir: target.options().dataDir },
        {
          id: 'in',
          type: 'fastagi-in',
          host: '127.0.0.1',
          port: '0',
          store: 'store',
          envTimeout: '1',
          commandTimeout: '1',
          wires: [['s'], []],
        },
        { id: 's', type: 'helper' },
      ],
    );
    helper.getNode('s').on('input', (m: Msg) => sessions.push(m));
    const n = helper.getNode('in') as unknown as { warn: (m: unknown) => void; port?: number };
    const warn = n.warn.bind(n);
    n.warn = (m: unknown) => {
      warnings.push(String(m));
      warn(m);
    };
    port = await waitFor(() => n.port, 5000, 'fastagi-in to listen');
    db = await (helper.getNode('store') as unknown as { getDb(): Promise<Db> }).getDb();
  }, 60000);
  afterAll(async () => {
    await helper.unload();
    await target.cleanup();
  });

  /** A call row like the campaign queue makes, with its token hash stored (as another runtime would have). */
  async function callRow(status: string): Promise<{ id: number; token: string }> {
    const r = await db.query<{ id: number }>(
      `insert into calls (direction, phone, status) values ('outbound', '+12125550101', $1) returning id`,
      [status],
    );
    const id = r.rows[0].id;
    const token = newCallToken();
    await storeCallTokens(db, [{ callId: id, token }]);
    return { id, token };
  }

  const agi = (variables: Record<string, string>, i = 0) =>
    runAgiCall({
      host: '127.0.0.1',
      port,
      script: 'ai-dialer',
      channel: `PJSIP/trunk-0000${i}`,
      uniqueid: `1732490000.${i}`,
      variables,
      persona: {},
      speed: 50,
    });

  const snapshot = async (id: number) =>
    (
      await db.query(
        `select status, transcript, agi_session, (select count(*)::int from call_turns t where t.call_id = c.id) as turns
           from calls c where id = $1`,
        [id],
      )
    ).rows[0];

  test('a completed call cannot be claimed again: refused call_closed, turns and transcript untouched', async () => {
    const { id, token } = await callRow('in_progress');
    await appendTurn(db, id, { seq: 1, userText: 'I would like the offer', botText: 'Great' });
    await db.query(
      `update calls set status = 'completed', transcript = 'Caller: I would like the offer' where id = $1`,
      [id],
    );
    const before = await snapshot(id);
    const seen = sessions.length;
    const r = await agi({ CALL_ID: String(id), CALL_TOKEN: token }, 1);
    expect(r.endedBy).toBe('server_closed');
    expect(sessions.length).toBe(seen);
    expect(await snapshot(id)).toEqual(before);
    expect(warnings.some((w) => w.includes('call_closed') && w.includes(`call ${id}`))).toBe(true);
    // and the store itself refuses a late turn
    await expect(appendTurn(db, id, { seq: 1, userText: 'do not call me' })).rejects.toThrow(/closed/);
    expect(await snapshot(id)).toEqual(before);
  });

  test('a missing or wrong token is refused bad_token (before: any local client could claim CALL_ID=8)', async () => {
    const { id } = await callRow('initiated');
    const seen = sessions.length;
    await agi({ CALL_ID: String(id) }, 2);
    await agi({ CALL_ID: String(id), CALL_TOKEN: newCallToken() }, 3);
    await agi({ CALL_ID: String(id), CALL_TOKEN: '' }, 4);
    expect(sessions.length).toBe(seen);
    expect((await snapshot(id)).status).toBe('initiated');
    expect(warnings.filter((w) => w.includes('bad_token') && w.includes(`call ${id}`)).length).toBe(3);
    // the token never shows in a log line
    expect(warnings.join('\n')).not.toMatch(/CALL_TOKEN=|[A-Za-z0-9_-]{24}\b.*bad_token/);
  });

  test('the right token drives an open call once; a second session for it is refused already_driven', async () => {
    const { id, token } = await callRow('initiated');
    const seen = sessions.length;
    const first = agi({ CALL_ID: String(id), CALL_TOKEN: token }, 5);
    const m = await waitFor(() => sessions[seen], 10000, 'the admitted session');
    expect(m.call).toMatchObject({ id, direction: 'outbound' });
    expect(JSON.stringify(m)).not.toContain(token);
    expect(await snapshot(id)).toMatchObject({ status: 'in_progress', agi_session: m.call.sessionId });
    const second = await agi({ CALL_ID: String(id), CALL_TOKEN: token }, 6);
    expect(second.endedBy).toBe('server_closed');
    expect(sessions.length).toBe(seen + 1);
    expect(warnings.some((w) => w.includes('already_driven') && w.includes(`call ${id}`))).toBe(true);
    getSession(m.call.sessionId)!.close();
    await first;
  });

  test('an inbound call gets a fresh record and cannot name an existing one', async () => {
    const { id } = await callRow('in_progress');
    const before = await snapshot(id);
    const seen = sessions.length;
    const call = agi({ CALL_DIRECTION: 'inbound', CALL_ID: String(id) }, 7);
    const m = await waitFor(() => sessions[seen], 10000, 'the inbound session');
    expect(m.call.direction).toBe('inbound');
    expect(m.call.id).not.toBe(id);
    expect(typeof m.call.id).toBe('number');
    expect(await snapshot(id)).toEqual(before);
    getSession(m.call.sessionId)!.close();
    await call;
  });

  test('an inbound call cannot name an existing contact either (its name and fields would reach the conversation)', async () => {
    const camp = await db.query<{ id: number }>(`insert into campaigns (name) values ('inbound-contact') returning id`);
    const contact = await db.query<{ id: number }>(
      `insert into contacts (campaign_id, phone, name, fields) values ($1, '+12125550177', 'Katherine Johnson', '{"appointment":"Tuesday"}') returning id`,
      [camp.rows[0].id],
    );
    const contactId = contact.rows[0].id;
    const seen = sessions.length;
    // before: greeted "Hello Katherine Johnson ... your appointment on Tuesday" (llm-turn loads msg.call.contactId)
    const call = agi(
      { CALL_DIRECTION: 'inbound', CONTACT_ID: String(contactId), CAMPAIGN_ID: String(camp.rows[0].id) },
      12,
    );
    const m = await waitFor(() => sessions[seen], 10000, 'the inbound session');
    expect(m.call).toMatchObject({ direction: 'inbound', contactId: null, campaignId: camp.rows[0].id });
    expect(m.call.contact).toBeUndefined();
    const row = (await db.query(`select contact_id from calls where id = $1`, [m.call.id])).rows[0];
    expect(row.contact_id).toBeNull();
    getSession(m.call.sessionId)!.close();
    await call;
  });

  test('a call id nobody originated is refused (unknown_call), also with a made-up token', async () => {
    const seen = sessions.length;
    await agi({ CALL_ID: '987654', CALL_TOKEN: newCallToken() }, 8);
    await agi({ CALL_ID: 'not-a-number', CALL_TOKEN: newCallToken() }, 9);
    expect(sessions.length).toBe(seen);
    expect(warnings.some((w) => w.includes('unknown_call') && w.includes('call 987654'))).toBe(true);
    expect((await db.query(`select count(*)::int as n from calls where id = 987654`)).rows[0].n).toBe(0);
  });

  test('a call this process originated (token known here) is admitted without a stored hash', async () => {
    const r = await db.query<{ id: number }>(
      `insert into calls (direction, phone, status) values ('outbound', '+12125550102', 'initiated') returning id`,
    );
    const id = r.rows[0].id;
    const seen = sessions.length;
    const call = agi({ CALL_ID: String(id), CALL_TOKEN: givenCall(id) }, 10);
    const m = await waitFor(() => sessions[seen], 10000, 'the admitted session');
    expect(m.call.id).toBe(id);
    getSession(m.call.sessionId)!.close();
    await call;
  });

  test('store down: only a call originated here is admitted; others are refused store_unavailable', async () => {
    expect(await admitCall({ storeDown: true, sessionId: 's1', callId: 424242, token: newCallToken() })).toMatchObject({
      ok: false,
      reason: 'store_unavailable',
    });
    const token = givenCall(434343);
    expect(await admitCall({ storeDown: true, sessionId: 's2', callId: 434343, token })).toMatchObject({ ok: true });
    expect(await admitCall({ storeDown: true, sessionId: 's3' })).toMatchObject({ ok: true });
  });

  test('fuzz: 3,000 malformed environment blocks and AGI lines; the server still serves and nothing is half-stored', async () => {
    const open = await callRow('initiated');
    const closed = await callRow('completed');
    const before = { open: await snapshot(open.id), closed: await snapshot(closed.id) };
    const callsBefore = (await db.query<{ n: number }>('select count(*)::int as n from calls')).rows[0].n;
    let seed = 11;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)];
    const junk = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
    const keys = [
      'agi_network',
      'agi_request',
      'agi_channel',
      'agi_uniqueid',
      'agi_callerid',
      'agi_arg_1',
      'agi_network_script',
      'agi_x',
    ];
    const values = [
      'yes',
      `agi://127.0.0.1/ai-dialer?call_id=${open.id}`,
      `${open.id}`,
      `call_id=${closed.id}`,
      '\u0000\u0001',
      'x'.repeat(5000),
      '"quoted"',
      '; rm -rf /',
      '',
      'é漢字',
    ];
    const blocks: Array<() => Buffer> = [
      () => junk(1 + Math.floor(rnd() * 300)),
      () =>
        Buffer.from(
          Array.from({ length: 1 + Math.floor(rnd() * 8) }, () => `${pick(keys)}: ${pick(values)}`).join('\n') + '\n\n',
        ),
      () => Buffer.from(`agi_network: yes\nagi_arg_1: ${pick(values)}\n`), // never ends
      () => Buffer.from('agi_request: x\n' + 'a'.repeat(70000) + '\n\n'),
      () => Buffer.from('\n\n\n'),
      () => Buffer.from(`agi_network: yes\nagi_channel: PJSIP/x\nagi_arg_1: call_id=${pick([open.id, closed.id])}\n\n`),
      () => Buffer.concat([Buffer.from('agi_network: yes\n'), junk(50), Buffer.from('\n\n')]),
    ];
    const replies = [
      '200 result=1 (x)',
      '200 result=1 (forged-token-forged-token)',
      `200 result=1 (${open.id})`,
      '200 result=1 (inbound)',
      '200 result=0',
      '510 Invalid or unknown command',
      '520-Invalid',
      'HANGUP',
      '',
      '200 result=1 (' + 'z'.repeat(9000) + ')',
      junk(40).toString('latin1'),
    ];
    const one = () =>
      new Promise<void>((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        let answered = 0;
        const done = () => {
          s.destroy();
          resolve();
        };
        s.setTimeout(3000, done);
        s.on('error', done);
        s.on('close', done);
        s.on('data', () => {
          // answer every command with something malformed, then drop the line
          if (answered++ > 12 || rnd() < 0.05) return done();
          s.write(pick(replies) + '\n');
        });
        s.on('connect', () => {
          s.write(pick(blocks)());
          if (rnd() < 0.5) setTimeout(done, Math.floor(rnd() * 50));
        });
      });
    const N = 3000;
    const warnedBefore = warnings.length;
    let next = 0;
    await Promise.all(
      Array.from({ length: 60 }, async () => {
        while (next < N) {
          next++;
          await one();
        }
      }),
    );
    // the server saw them: refusals logged with their reasons (bad environment, timeouts, tokens, ...)
    const refusals = warnings.slice(warnedBefore).filter((w) => w.startsWith('FastAGI refused'));
    const reasons = new Set(refusals.map((w) => /: (\w+) \(/.exec(w)?.[1]));
    expect(refusals.length).toBeGreaterThan(300);
    expect(reasons.size).toBeGreaterThanOrEqual(3);
    // still serving: a real call with its token gets a session
    const fresh = await callRow('initiated');
    const seen = sessions.length;
    const call = agi({ CALL_ID: String(fresh.id), CALL_TOKEN: fresh.token }, 99);
    const m = await waitFor(
      () => sessions.slice(seen).find((x) => x.call.id === fresh.id),
      10000,
      'a session after the fuzz',
    );
    getSession(m.call.sessionId)!.close();
    await call;
    // nothing half-stored: the named calls are untouched, no turns, and every new row is a whole inbound record
    expect(await snapshot(open.id)).toEqual(before.open);
    expect(await snapshot(closed.id)).toEqual(before.closed);
    const added = await db.query<{ direction: string; status: string; agi_session: string | null }>(
      'select direction, status, agi_session from calls where id > $1 and id <> $2',
      [closed.id, fresh.id],
    );
    for (const row of added.rows)
      expect(row).toMatchObject({ direction: 'inbound', status: 'in_progress', agi_session: expect.any(String) });
    expect((await db.query<{ n: number }>('select count(*)::int as n from calls')).rows[0].n).toBe(
      callsBefore + 1 + added.rows.length,
    );
    expect((await db.query<{ n: number }>('select count(*)::int as n from dnc')).rows[0].n).toBe(0);
  }, 180000);
});

describe('toll fraud: premium-rate and other non-dialable numbers', () => {
  test('number types: premium, shared cost, personal, unknown refused; fixed, mobile, toll free pass; allowPremium allows', () => {
    const cases: Array<[string, boolean]> = [
      ['+19005550123', false], // US premium rate
      ['+448712345678', false], // UK premium rate
      ['+33892123456', false], // FR premium rate
      ['+447012345678', false], // UK personal number
      ['+12125550123', true],
      ['+18005550199', true], // toll free
      ['+441234567890', true],
    ];
    for (const [n, ok] of cases) {
      const p = normalizePhone(n);
      if (!p.ok) throw new Error(`${n}: ${p.reason}`);
      expect([n, refusedNumberType(p) === undefined]).toEqual([n, ok]);
      expect(refusedNumberType(p, true)).toBeUndefined();
    }
    expect(refusedNumberType({ e164: '+1', type: undefined })).toMatch(/unknown type/);
  });

  test('contacts: refused at import by default (the row is reported), imported with settings.allowPremium', async () => {
    const t = pgliteTarget();
    const db = await t.open();
    try {
      const mk = async (settings: object) =>
        (
          await db.query<{ id: number }>(`insert into campaigns (name, settings) values ('c', $1) returning id`, [
            JSON.stringify(settings),
          ])
        ).rows[0].id;
      const csv = 'phone,name\n+19005550123,Premium\n+12125550123,Ada\n';
      const strict = await importContacts(db, await mk({}), csv);
      expect(strict.inserted).toBe(1);
      expect(JSON.stringify(strict)).toContain('premium rate');
      const lax = await importContacts(db, await mk({ allowPremium: true }), csv);
      expect(lax.inserted).toBe(2);
    } finally {
      await db.close();
      await t.cleanup();
    }
  }, 60000);
});
