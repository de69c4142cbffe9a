/**
 * The HTTP API and dashboard under attack, against `npm start` as a user runs it (a child process:
 * a crash is an exit, not a thrown test error). Replays the probes of issue 11 and asserts the new
 * answers, then throws a few thousand generated malformed bodies and CSVs at the same runtime and
 * checks it still serves and stored nothing half-way.
 */
import fs from 'fs';
import http from 'http';
import net from 'net';
import os from 'os';
import path from 'path';
import { spawnStart, waitForBanner, type Started } from '../helpers/start';
import { waitFor } from '../helpers/wait';
import { seededRandom } from '../../src/util/random';

const TOKEN = 'full-token-for-tests';
const READ = 'read-only-token-for-tests';
const MB = 1024 * 1024;

let rt: Started;
let base = '';
let port = 0;
let dir = '';
let campaignId = 0;

interface Res {
  status: number;
  type: string;
  text: string;
  json: Record<string, unknown>;
  headers: Headers;
}

async function call(
  method: string,
  p: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<Res> {
  const r = await fetch(base + p, { method, body: body as BodyInit | undefined, headers });
  const text = await r.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON: the assertions say so */
  }
  return { status: r.status, type: r.headers.get('content-type') ?? '', text, json, headers: r.headers };
}
const auth = { authorization: `Bearer ${TOKEN}` };
const postJson = (p: string, body: string, h: Record<string, string> = {}) =>
  call('POST', p, body, { ...auth, 'content-type': 'application/json', ...h });

/**
 * A request whose answer may come before its body is sent (a refused upload): read the answer when it
 * comes; a write error after it (the server stops reading once it has answered) is not a failure, one
 * before it is. fetch() drops such an early answer when its own body write fails.
 */
function earlyAnswer(method: string, p: string, body: Buffer, headers: Record<string, string>): Promise<Res> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(base + p, { method, headers: { ...headers, 'content-length': String(body.length) } });
    req.on('response', (r) => {
      answered = true;
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text);
        } catch {
          /* not JSON: the assertions say so */
        }
        const h = new Headers();
        for (const [k, v] of Object.entries(r.headers)) if (typeof v === 'string') h.set(k, v);
        resolve({ status: r.statusCode ?? 0, type: String(r.headers['content-type'] ?? ''), text, json, headers: h });
        req.destroy();
      });
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    req.end(body);
  });
}

/** The project's error shape: JSON `{error: "..."}`, no HTML, no stack, no install path. */
function expectJsonError(r: Res, status: number, match?: RegExp): void {
  expect({ status: r.status, type: r.type.split(';')[0] }).toEqual({ status, type: 'application/json' });
  expect(typeof r.json.error).toBe('string');
  if (match) expect(r.json.error).toMatch(match);
  expect(r.text).not.toMatch(/<html|<pre|\n\s+at |node_modules|\/work\//i);
}

/** Send raw bytes on one connection; resolve with what came back (first `ms` or until close). */
function raw(
  payload: string | Buffer,
  ms = 5000,
  more?: (s: net.Socket) => void,
): Promise<{ text: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve({ text, ms: Date.now() - t0 });
    };
    const timer = setTimeout(done, ms);
    s.on('data', (d) => {
      text += d;
      if (/\r\n\r\n/.test(text) && /\}\s*$/.test(text)) done();
    });
    s.on('error', done);
    s.on('close', done);
    s.write(payload);
    more?.(s);
  });
}

const alive = async (): Promise<void> => {
  expect(rt.child.exitCode).toBeNull();
  expect((await call('GET', '/api/v1/health')).status).toBe(200);
};

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-sec-api-'));
  // every port bound as 0 and read back from the banner
  rt = spawnStart({ PORT: '0', MQTT_PORT: '0', AGI_PORT: '0', DATA_DIR: dir, API_TOKEN: TOKEN, API_READ_TOKEN: READ });
  port = (await waitForBanner(rt, 90000)).http;
  base = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await call('GET', '/api/v1/campaigns', undefined, auth)).status === 200, 30000, 'the API');
  const c = await postJson('/api/v1/campaigns', JSON.stringify({ name: 'security' }));
  expect(c.status).toBe(201);
  campaignId = Number(c.json.id);
}, 120000);

afterAll(async () => {
  if (rt && rt.child.exitCode === null) {
    rt.child.kill('SIGTERM');
    await rt.exited;
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('HTTP API and dashboard: the probes of issue 11', () => {
  test('no Access-Control-Allow-Origin: * anywhere; other origins are refused, preflight too', async () => {
    for (const p of ['/api/v1/campaigns', '/api/v1/health', '/dialer/', '/dialer/config.json']) {
      const r = await call('GET', p, undefined, auth);
      expect([p, r.headers.get('access-control-allow-origin')]).toEqual([p, null]);
    }
    const evil = { origin: 'http://evil.example' };
    expectJsonError(await call('GET', '/api/v1/campaigns', undefined, { ...auth, ...evil }), 403, /cross-origin/);
    const pre = await call('OPTIONS', '/api/v1/campaigns', undefined, {
      ...evil,
      'access-control-request-method': 'POST',
    });
    expect([pre.status, pre.headers.get('access-control-allow-origin')]).toEqual([403, null]);
    // a form post from another page (no preflight for multipart) never runs
    const fd = new FormData();
    fd.set('file', new Blob(['phone\n2125550100\n']), 'a.csv');
    const r = await fetch(`${base}/api/v1/campaigns/${campaignId}/contacts`, {
      method: 'POST',
      body: fd,
      headers: evil,
    });
    expect(r.status).toBe(403);
    // the runtime's own origin is fine
    const same = await call('GET', '/api/v1/campaigns', undefined, { ...auth, origin: base });
    expect(same.status).toBe(200);
  });

  test('reads carry personal data: every route but health needs a token; the read-only token only reads', async () => {
    for (const p of [
      '/api/v1/calls',
      '/api/v1/calls/1',
      `/api/v1/campaigns/${campaignId}`,
      `/api/v1/campaigns/${campaignId}/status`,
      `/api/v1/calls/automated/status?campaignId=${campaignId}`,
      '/api/v1/campaigns',
    ]) {
      expectJsonError(await call('GET', p), 401, /token/);
      expectJsonError(await call('GET', p, undefined, { authorization: 'Bearer wrong' }), 403);
      expect([p, (await call('GET', p, undefined, { 'x-api-token': READ })).status]).toEqual([
        p,
        p === '/api/v1/calls/1' ? 404 : 200,
      ]);
    }
    expectJsonError(
      await postJson('/api/v1/campaigns', '{"name":"x"}', { authorization: `Bearer ${READ}` }),
      403,
      /read-only/,
    );
    const health = await call('GET', '/api/v1/health');
    expect([health.status, health.json.auth]).toEqual([200, 'token']);
    const cfg = await call('GET', '/dialer/config.json');
    expect(cfg.json.apiTokenRequired).toBe(true);
    expect(cfg.text).not.toContain(TOKEN);
  });

  test('an 87-byte multipart body without its closing boundary is a 400 and the process lives', async () => {
    const body = '--XB\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\nphone\r\n212555010';
    expect(Buffer.byteLength(body)).toBe(87);
    const r = await raw(
      `POST /api/v1/campaigns/${campaignId}/contacts HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${TOKEN}\r\n` +
        `Content-Type: multipart/form-data; boundary=XB\r\nContent-Length: 87\r\nConnection: close\r\n\r\n${body}`,
    );
    expect(r.text).toMatch(/^HTTP\/1.1 400/);
    expect(r.text).toMatch(/"error":"bad multipart body/);
    await alive();
    // and many of them at once, plus aborted uploads
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        raw(
          `POST /api/v1/campaigns/${campaignId}/contacts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n` +
            `Content-Type: ${i % 2 ? 'multipart/form-data; boundary=XB' : 'text/csv'}\r\nContent-Length: 100000\r\n\r\n${body}`,
          200,
        ),
      ),
    );
    await alive();
    const c = await call('GET', `/api/v1/campaigns/${campaignId}`, undefined, auth);
    expect(c.json.contacts_total).toBe(0);
  });

  test('route, campaign and size are checked before the body is read: 49 MB to an unknown campaign is a 404 at once', async () => {
    const head = (p: string, len: number, type = 'text/csv') =>
      `POST ${p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: ${type}\r\nContent-Length: ${len}\r\n\r\n`;
    // only the headers and 64 KB are sent: the answer cannot have waited for the rest
    const first = Buffer.alloc(64 * 1024, 'a');
    const unknown = await raw(Buffer.concat([Buffer.from(head('/api/v1/campaigns/999999/contacts', 49 * MB)), first]));
    expect(unknown.text).toMatch(/^HTTP\/1.1 404/);
    expect(unknown.text).toMatch(/campaign 999999 not found/);
    const tooBig = await raw(head(`/api/v1/campaigns/${campaignId}/contacts`, 51 * MB));
    expect(tooBig.text).toMatch(/^HTTP\/1.1 413/);
    expect(tooBig.text).toMatch(/"limit":52428800/);
    const noRoute = await raw(Buffer.concat([Buffer.from(head('/api/v1/nope', 49 * MB)), first]));
    expect(noRoute.text).toMatch(/^HTTP\/1.1 404/);
    const noAuth = await raw(
      `POST /api/v1/campaigns/${campaignId}/contacts HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: ${49 * MB}\r\n\r\n`,
    );
    expect(noAuth.text).toMatch(/^HTTP\/1.1 401/);
    await alive();
  });

  test('every /api/v1 error is JSON with the error shape, never HTML or a stack; limits are the documented ones', async () => {
    const p = '/api/v1/campaigns';
    expectJsonError(await postJson(p, '{"name": '), 400, /not valid JSON/);
    expectJsonError(await postJson(p, '"just a string"'), 400, /object or array/);
    expectJsonError(
      await postJson(p, '{"name":"x"}', { 'content-type': 'application/json; charset=latin1' }),
      415,
      /UTF-8/,
    );
    expectJsonError(await postJson(p, '{"name":"x"}', { 'content-encoding': 'gzip' }), 415);
    expectJsonError(
      await call('POST', p, 'name=x', { ...auth, 'content-type': 'application/x-www-form-urlencoded' }),
      415,
    );
    expectJsonError(await call('GET', '/api/v1/no-such-thing', undefined, auth), 404, /no such route/);
    expectJsonError(await call('DELETE', p, undefined, auth), 404);
    // JSON: 10 MB is the limit (the old 5 MB admin parser no longer answers first)
    const six = await postJson(p, JSON.stringify({ name: 'x', settings: { pad: 'x'.repeat(6 * MB) } }));
    expectJsonError(six, 400, /settings must stay under/);
    expectJsonError(
      await postJson(p, JSON.stringify({ name: 'x', pad: 'x'.repeat(11 * MB) })),
      413,
      /larger than the limit/,
    );
    // uploads: 50 MB (checked from the declared length, see above) and counted while streaming
    const csvBig = Buffer.alloc(50 * MB + 10, 'x');
    const up = await earlyAnswer('POST', `/api/v1/campaigns/${campaignId}/contacts`, csvBig, {
      ...auth,
      'content-type': 'text/csv',
    });
    expectJsonError(up, 413);
    await alive();
  });

  test('NUL bytes and absurd nesting are 400s naming the field; a bad CSV row is skipped and reported', async () => {
    expectJsonError(
      await postJson('/api/v1/campaigns', JSON.stringify({ name: 'a\u0000b' })),
      400,
      /field "name" contains a NUL byte/,
    );
    expectJsonError(
      await postJson('/api/v1/campaigns', JSON.stringify({ name: 'x', settings: { greeting: 'hi\u0000' } })),
      400,
      /field "settings.greeting" contains a NUL byte/,
    );
    const deep = '{"name":"deep","settings":{"a":' + '['.repeat(5000) + ']'.repeat(5000) + '}}';
    expectJsonError(
      await postJson('/api/v1/campaigns', deep),
      400,
      /field "settings.a\[0\].*nested deeper than 32 levels/,
    );
    const csv = 'phone,name\n2125550100,Ann\n2125550101,B\u0000b\nnot-a-number,Cy\n2125550102,Di\n';
    const r = await call('POST', `/api/v1/campaigns/${campaignId}/contacts`, csv, {
      ...auth,
      'content-type': 'text/csv',
    });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ rows: 4, inserted: 2, invalid: 2 });
    expect(r.json.errors).toEqual([
      { line: 3, reason: 'column "name" contains a NUL byte' },
      { line: 4, reason: expect.any(String) },
    ]);
    const json = await postJson(
      `/api/v1/campaigns/${campaignId}/contacts`,
      JSON.stringify([{ phone: '2125550103', name: 'E\u0000' }, '2125550104']),
    );
    expect(json.json).toMatchObject({
      rows: 2,
      inserted: 1,
      invalid: 1,
      errors: [{ line: 1, reason: '"name" contains a NUL byte' }],
    });
    await alive();
  });
});

describe('fuzz: generated malformed bodies and CSVs', () => {
  test('a few thousand requests: never a 5xx, never HTML, the process serves, nothing half-stored', async () => {
    const seed = Number(process.env.FUZZ_SEED ?? 1234);
    const rand = seededRandom(seed);
    const pick = <T>(a: T[]): T => a[Math.floor(rand() * a.length)];
    const junk = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
    const c = await postJson('/api/v1/campaigns', JSON.stringify({ name: 'fuzz' }));
    const fuzzId = Number(c.json.id);
    const validCsv = () =>
      'phone,name,plan\n' +
      Array.from(
        { length: 1 + Math.floor(rand() * 20) },
        () => `212555${String(Math.floor(rand() * 10000)).padStart(4, '0')},N${Math.floor(rand() * 99)},p`,
      ).join('\n');
    const mutate = (s: string): string | Buffer => {
      const b = Buffer.from(s);
      switch (Math.floor(rand() * 9)) {
        case 0:
          return b.subarray(0, Math.floor(rand() * b.length));
        case 1: {
          const i = Math.floor(rand() * b.length);
          return Buffer.concat([b.subarray(0, i), junk(1 + Math.floor(rand() * 8)), b.subarray(i)]);
        }
        case 2:
          return s.replace(/,/g, () => pick([',', '"', '\u0000', ';', '\n', '""', '\r']));
        case 3:
          return s + '\n"unterminated,' + 'x'.repeat(Math.floor(rand() * 5000));
        case 4:
          return junk(Math.floor(rand() * 4000));
        case 5:
          return s.replace(/\d/g, (d) => (rand() < 0.1 ? pick(['\u0000', 'x', '+', '\uFFFF', '\uD800']) : d));
        case 6:
          return '\uFEFF' + s.replace(/\n/g, '\r');
        case 7:
          return '['.repeat(Math.floor(rand() * 3000)) + s;
        default:
          return s;
      }
    };
    const jsonBodies = [
      () => JSON.stringify({ name: 'f' + Math.floor(rand() * 1e6), max_concurrent: pick([1, -1, 1e20, '3', null]) }),
      () =>
        JSON.stringify({
          name: pick(['', 'x'.repeat(300), 'ok', '\u0000', 5]),
          settings: pick([{}, [], 'x', { greeting: 7 }]),
        }),
      () =>
        JSON.stringify(
          pick([[], [1, 2], { contacts: pick([[], ['2125550100'], [{ phone: {} }]]) }, { numbers: ['x'] }]),
        ),
      () => JSON.stringify({ number: pick(['+12125559000', '0', '+1900555', 'x']), label: pick(['a', 5, null]) }),
      () => JSON.stringify({ campaignId: pick([fuzzId, -1, 'x', 999999, null]) }),
    ];
    const routes: Array<{ p: string; m: string; kind: 'json' | 'upload' }> = [
      { p: '/api/v1/campaigns', m: 'POST', kind: 'json' },
      { p: `/api/v1/campaigns/${fuzzId}`, m: 'PATCH', kind: 'json' },
      { p: `/api/v1/campaigns/${fuzzId}/contacts`, m: 'POST', kind: 'upload' },
      { p: `/api/v1/campaigns/${fuzzId}/phone-numbers`, m: 'POST', kind: 'json' },
      { p: `/api/v1/dnc?campaignId=${fuzzId}`, m: 'POST', kind: 'upload' },
      { p: '/api/v1/calls/automated/pause', m: 'POST', kind: 'json' },
      { p: `/api/v1/campaigns/${pick(['0', 'x', '99999999999', '-1', '%00'])}/contacts`, m: 'POST', kind: 'upload' },
    ];
    let inserted = 0;
    let numbersAdded = 0;
    const statuses: Record<number, number> = {};
    const N = Number(process.env.FUZZ_N ?? 2000);
    let next = 0;
    const worker = async () => {
      while (next < N) {
        next++;
        const r = pick(routes);
        let body: string | Buffer;
        let type: string;
        if (r.kind === 'upload' && rand() < 0.7) {
          body = mutate(validCsv());
          type = pick([
            'text/csv',
            'text/plain',
            'text/csv; charset=utf-8',
            'multipart/form-data; boundary=Z',
            'application/octet-stream',
          ]);
          if (type.startsWith('multipart') && rand() < 0.7)
            body = Buffer.concat([
              Buffer.from('--Z\r\nContent-Disposition: form-data; name="file"; filename="f.csv"\r\n\r\n'),
              Buffer.from(body),
              Buffer.from(rand() < 0.5 ? '\r\n--Z--\r\n' : ''),
            ]);
        } else {
          body = rand() < 0.6 ? mutate(pick(jsonBodies)()) : pick(jsonBodies)();
          type = pick(['application/json', 'application/json', 'application/json; charset=utf-16', '', 'text/csv']);
        }
        const headers: Record<string, string> = { ...auth };
        if (type) headers['content-type'] = type;
        const res = await call(r.m, r.p, body, headers);
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (res.status >= 500 || !res.type.startsWith('application/json') || /<html|\n\s+at /.test(res.text))
          throw new Error(`seed ${seed}: ${r.m} ${r.p} ${type} -> ${res.status} ${res.text.slice(0, 200)}`);
        if (r.p === `/api/v1/campaigns/${fuzzId}/contacts` && res.status === 200) inserted += Number(res.json.inserted);
        if (r.p.endsWith('/phone-numbers') && res.status < 300) numbersAdded += Number(res.json.added);
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    await alive();
    // nothing half-stored: what the answers said was stored is exactly what is there
    const after = await call('GET', `/api/v1/campaigns/${fuzzId}`, undefined, auth);
    expect(after.json.contacts_total).toBe(inserted);
    expect((after.json.phone_numbers as unknown[]).length).toBe(numbersAdded);
    const all = (await call('GET', '/api/v1/campaigns', undefined, auth)).json.campaigns as Array<{ name: string }>;
    for (const k of all)
      expect([k.name.includes('\u0000'), k.name.length >= 1 && k.name.length <= 200]).toEqual([false, true]);
    expect(Object.keys(statuses).length).toBeGreaterThan(3); // the generator reached several answers
  }, 600000);
});
