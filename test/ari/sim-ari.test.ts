/**
 * The simulator's ARI surface as a client sees it: auth (basic and api_key), 401s on REST and the
 * events WebSocket, the swagger documents the ARI client builds its operations from, event shapes, and the
 * hand-over to a FastAGI server with the originate variables (GET VARIABLE CALL_ID, AMD results).
 */
import net from 'net';
import http from 'http';
import WebSocket from 'ws';
import { startSimulator, type SimulatorHandle } from '../../src/sim/index';
import { parseArgs, main } from '../../src/sim/cli';
import { waitFor } from '../helpers/wait';

function request(
  sim: SimulatorHandle,
  method: string,
  path: string,
  opts: { auth?: string | null; body?: unknown } = {},
): Promise<{ status: number; json: any; headers: http.IncomingHttpHeaders }> {
  const u = new URL(path, sim.url);
  const auth = opts.auth === undefined ? `${sim.username}:${sim.password}` : opts.auth;
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      u,
      {
        method,
        headers: {
          ...(auth ? { Authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {}),
          ...(body ? { 'Content-Type': 'application/json' } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('simulator ARI over HTTP and WebSocket', () => {
  let sim: SimulatorHandle;
  beforeAll(async () => {
    sim = await startSimulator({ speed: 20 });
  });
  afterAll(async () => {
    await sim.close();
  });

  test('a generated password, never a fixed one', async () => {
    const saved = process.env.ARI_PASSWORD;
    delete process.env.ARI_PASSWORD;
    try {
      const one = await startSimulator({});
      const two = await startSimulator({});
      expect(one.password).not.toBe(two.password);
      expect(one.password.length).toBeGreaterThanOrEqual(12);
      await one.close();
      await two.close();
    } finally {
      if (saved !== undefined) process.env.ARI_PASSWORD = saved;
    }
  });

  test('basic auth and ?api_key work; a wrong password is 401 with a Basic challenge', async () => {
    const ok = await request(sim, 'GET', '/ari/asterisk/info');
    expect(ok.status).toBe(200);
    expect(ok.json.system.version).toBe('22.10.1');
    const key = await request(
      sim,
      'GET',
      `/ari/asterisk/info?api_key=${sim.username}:${encodeURIComponent(sim.password)}`,
      { auth: null },
    );
    expect(key.status).toBe(200);
    const bad = await request(sim, 'GET', '/ari/asterisk/info', { auth: `${sim.username}:nope` });
    expect(bad.status).toBe(401);
    expect(bad.headers['www-authenticate']).toMatch(/^Basic realm=/);
    const none = await request(sim, 'GET', '/ari/api-docs/resources.json', { auth: null });
    expect(none.status).toBe(401);
  });

  test('resources.json lists our four resources; each document has basePath, apis and models', async () => {
    const r = await request(sim, 'GET', '/ari/api-docs/resources.json');
    expect(r.json.apiVersion).toBe('10.0.0');
    expect(r.json.basePath).toBe(`${sim.url}/ari`);
    const names = r.json.apis.map((a: { path: string }) => a.path);
    expect(names).toEqual([
      '/api-docs/asterisk.{format}',
      '/api-docs/channels.{format}',
      '/api-docs/applications.{format}',
      '/api-docs/events.{format}',
    ]);
    const ch = await request(sim, 'GET', '/ari/api-docs/channels.json');
    const nicknames = ch.json.apis.flatMap((a: { operations: Array<{ nickname: string }> }) =>
      a.operations.map((o) => o.nickname),
    );
    expect(nicknames).toEqual(
      expect.arrayContaining([
        'list',
        'originate',
        'get',
        'hangup',
        'continueInDialplan',
        'getChannelVar',
        'setChannelVar',
      ]),
    );
    const ev = await request(sim, 'GET', '/ari/api-docs/events.json');
    for (const t of [
      'StasisStart',
      'StasisEnd',
      'ChannelStateChange',
      'ChannelVarset',
      'ChannelHangupRequest',
      'ChannelDestroyed',
      'Dial',
    ]) {
      expect(ev.json.models[t]).toBeDefined();
    }
    expect((await request(sim, 'GET', '/ari/api-docs/bridges.json')).status).toBe(404);
  });

  test('the events WebSocket refuses wrong credentials (401) and a missing app (400)', async () => {
    const port = sim.port;
    const status = (q: string) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/ari/events?${q}`);
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          ws.terminate();
        });
        ws.on('open', () => {
          resolve(101);
          ws.close();
        });
        ws.on('error', () => undefined);
      });
    expect(await status(`app=a&api_key=${sim.username}:wrong`)).toBe(401);
    expect(await status(`api_key=${sim.username}:${encodeURIComponent(sim.password)}`)).toBe(400);
    expect(await status(`app=a&api_key=${sim.username}:${encodeURIComponent(sim.password)}`)).toBe(101);
  });

  test('originate: events in Asterisk order and shape; applications list the app; bad input is 400', async () => {
    const ws = new WebSocket(
      `ws://127.0.0.1:${sim.port}/ari/events?app=shape&api_key=${sim.username}:${encodeURIComponent(sim.password)}`,
    );
    const events: any[] = [];
    ws.on('message', (d) => events.push(JSON.parse(d.toString())));
    await new Promise((r) => ws.once('open', r));
    const apps = await request(sim, 'GET', '/ari/applications');
    expect(apps.json.map((a: { name: string }) => a.name)).toContain('shape');
    sim.setPersona('+15550300', { dial: { behaviour: 'answer', ringMs: 200 } });
    const o = await request(
      sim,
      'POST',
      '/ari/channels?endpoint=PJSIP/%2B15550300@trunk&app=shape&channelId=shape-1&callerId=%2B15550000',
      { body: { variables: { CALL_ID: '7' } } },
    );
    expect(o.status).toBe(200);
    expect(o.json).toMatchObject({
      id: 'shape-1',
      state: 'Down',
      name: expect.stringMatching(/^PJSIP\/trunk-[0-9a-f]{8}$/),
      caller: { number: '+15550000' },
    });
    await waitFor(() => events.find((e) => e.type === 'StasisStart'), 5000, 'StasisStart');
    expect((await request(sim, 'GET', '/ari/applications/shape')).json.channel_ids).toContain('shape-1');
    const types = events.map((e) => e.type);
    expect(types.indexOf('ChannelStateChange')).toBeLessThan(types.indexOf('StasisStart'));
    const start = events.find((e) => e.type === 'StasisStart');
    expect(start).toMatchObject({
      application: 'shape',
      args: [],
      channel: { id: 'shape-1', state: 'Up', dialplan: { app_name: 'Stasis' } },
    });
    expect(start.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$/);
    expect(events.filter((e) => e.type === 'Dial').map((e) => e.dialstatus)).toEqual(['', 'RINGING', 'ANSWER']);
    expect(events.find((e) => e.type === 'ChannelVarset')).toMatchObject({ variable: 'CALL_ID', value: '7' });
    // variables: set, get, unknown
    expect((await request(sim, 'POST', '/ari/channels/shape-1/variable?variable=X&value=1')).status).toBe(204);
    expect((await request(sim, 'GET', '/ari/channels/shape-1/variable?variable=X')).json).toEqual({ value: '1' });
    expect((await request(sim, 'GET', '/ari/channels/shape-1/variable?variable=Y')).status).toBe(404);
    // hangup with a reason: cause 17 for busy
    expect((await request(sim, 'DELETE', '/ari/channels/shape-1?reason=busy')).status).toBe(204);
    const destroyed = await waitFor(() => events.find((e) => e.type === 'ChannelDestroyed'), 5000, 'ChannelDestroyed');
    expect(destroyed).toMatchObject({ cause: 17, cause_txt: 'User busy', channel: { id: 'shape-1' } });
    expect(types.concat(events.map((e) => e.type)).includes('StasisEnd')).toBe(true);
    expect((await request(sim, 'DELETE', '/ari/channels/shape-1')).status).toBe(404);
    expect((await request(sim, 'DELETE', '/ari/channels/x?reason=sideways')).status).toBe(404);
    expect((await request(sim, 'POST', '/ari/channels?app=shape')).status).toBe(400);
    expect((await request(sim, 'POST', '/ari/channels?endpoint=Nope/1&app=shape')).status).toBe(400);
    expect(
      (await request(sim, 'POST', '/ari/channels?endpoint=PJSIP/1@t&app=shape', { body: { variables: 'x' } })).status,
    ).toBe(400);
    ws.close();
  });

  test('GET /channels as Asterisk 22 answers it: channelvars (ari.conf), both halves of a Local channel, one hangup ends the pair', async () => {
    sim.setPersona('+12125550177', { dial: { behaviour: 'answer', ringMs: 20 } });
    const o = await request(
      sim,
      'POST',
      '/ari/channels?endpoint=Local/%2B12125550177@callees&app=ai-dialer&channelId=aid-77-deadbeef',
      {
        body: { variables: { CALL_ID: '77', CAMPAIGN_ID: '3', OTHER: 'x' } },
      },
    );
    expect(o.status).toBe(200);
    // seen on Asterisk 22.10.1 (test/real-asterisk): the listed variables, an unset one as '', nothing else
    expect(o.json.channelvars).toEqual({ CALL_ID: '77', CAMPAIGN_ID: '3', CONTACT_ID: '', CONTACT_PHONE: '' });
    await waitFor(
      async () =>
        (await request(sim, 'GET', '/ari/channels')).json.find(
          (c: { id: string; state: string }) => c.id === 'aid-77-deadbeef' && c.state === 'Up',
        ),
      5000,
      'answered',
    );
    const list = (await request(sim, 'GET', '/ari/channels')).json as Array<{
      id: string;
      name: string;
      channelvars?: Record<string, string>;
    }>;
    const pair = list.filter((c) => String(c.id).startsWith('aid-77-deadbeef'));
    expect(pair.map((c) => [c.id, c.name.replace(/-[0-9a-f]{8};/, '-N;')])).toEqual([
      ['aid-77-deadbeef', 'Local/+12125550177@callees-N;1'],
      ['aid-77-deadbeef;2', 'Local/+12125550177@callees-N;2'],
    ]);
    expect(pair[1].channelvars).toEqual({ CALL_ID: '77', CAMPAIGN_ID: '3', CONTACT_ID: '', CONTACT_PHONE: '' });
    expect((await request(sim, 'GET', '/ari/channels/aid-77-deadbeef;2')).status).toBe(200);
    // hanging up either half ends the pair
    expect((await request(sim, 'DELETE', '/ari/channels/aid-77-deadbeef;2')).status).toBe(204);
    const after = (await request(sim, 'GET', '/ari/channels')).json as Array<{ id: string }>;
    expect(after.filter((c) => c.id.startsWith('aid-77-'))).toEqual([]);
  });

  test('ai-dialer-sim prints its URL and a generated password; a taken port is one clear message', async () => {
    const saved = process.env.ARI_PASSWORD;
    delete process.env.ARI_PASSWORD;
    const out: string[] = [];
    const err: string[] = [];
    const so = jest.spyOn(process.stdout, 'write').mockImplementation((c: any) => (out.push(String(c)), true));
    const se = jest.spyOn(process.stderr, 'write').mockImplementation((c: any) => (err.push(String(c)), true));
    try {
      const h = await main(['--port', '0', '--speed', '5']);
      expect(h).toBeDefined();
      const text = out.join('');
      expect(text).toContain(`listening on ${h!.url}/ari`);
      expect(text).toContain(`password: ${h!.password}   (generated`);
      const again = await main(['--port', String(h!.port)]);
      expect(again).toBeUndefined();
      expect(err.join('')).toMatch(/port is in use/);
      expect(process.exitCode).toBe(1);
      so.mockRestore();
      se.mockRestore();
      const ok = await request(h as unknown as SimulatorHandle, 'GET', '/ari/asterisk/info');
      expect(ok.status).toBe(200);
      await h!.close();
    } finally {
      so.mockRestore();
      se.mockRestore();
      process.exitCode = 0;
      if (saved !== undefined) process.env.ARI_PASSWORD = saved;
    }
  });

  test('CLI arguments are parsed and checked', () => {
    expect(parseArgs(['--port', '9000', '--speed=5', '--agi-port', '4600'])).toMatchObject({
      port: 9000,
      speed: 5,
      agiPort: 4600,
    });
    expect(() => parseArgs(['--port'])).toThrow(/needs a value/);
    expect(() => parseArgs(['--bogus'])).toThrow(/unknown option/);
  });
});

describe('continue in dialplan reaches a FastAGI server with the channel variables', () => {
  test('GET VARIABLE CALL_ID, CONTACT_PHONE and AMDSTATUS answer what the originate and the persona set', async () => {
    const answers: Record<string, string> = {};
    let env = '';
    const agi = net.createServer((sock) => {
      let buf = '';
      const queue = [
        'GET VARIABLE CALL_ID',
        'GET VARIABLE CONTACT_PHONE',
        'GET VARIABLE AMDSTATUS',
        'GET VARIABLE AMD_PATH',
        'HANGUP',
      ];
      let sent = '';
      let inEnv = true;
      sock.on('data', (d) => {
        buf += d.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (inEnv) {
            if (line === '') {
              inEnv = false;
              sent = queue.shift() as string;
              sock.write(`${sent}\n`);
            } else env += `${line}\n`;
            continue;
          }
          if (line === 'HANGUP') continue;
          answers[sent] = line;
          const next = queue.shift();
          if (!next) {
            sock.end();
            return;
          }
          sent = next;
          sock.write(`${next}\n`);
        }
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => agi.listen(0, '127.0.0.1', () => r()));
    const port = (agi.address() as net.AddressInfo).port;
    const sim = await startSimulator({ speed: 20, agi: { host: '127.0.0.1', port } });
    sim.setPersona('+15550400', { dial: { behaviour: 'answer', ringMs: 100 }, amd: 'NOTSURE' });
    const ws = new WebSocket(
      `ws://127.0.0.1:${sim.port}/ari/events?app=agi&api_key=${sim.username}:${encodeURIComponent(sim.password)}`,
    );
    const events: any[] = [];
    ws.on('message', (d) => events.push(JSON.parse(d.toString())));
    await new Promise((r) => ws.once('open', r));
    await request(sim, 'POST', '/ari/channels?endpoint=PJSIP/%2B15550400@trunk&app=agi&channelId=agi-1', {
      body: { variables: { CALL_ID: '4242', CONTACT_PHONE: '+15550400', AMD_ENABLED: '1', AMD_NOTSURE: 'human' } },
    });
    await waitFor(() => events.find((e) => e.type === 'StasisStart'), 5000, 'StasisStart');
    expect(
      (await request(sim, 'POST', '/ari/channels/agi-1/continue?context=ai-dialer-agi&extension=s&priority=1')).status,
    ).toBe(204);
    await waitFor(() => events.find((e) => e.type === 'ChannelDestroyed'), 10_000, 'ChannelDestroyed after AGI');
    expect(answers['GET VARIABLE CALL_ID']).toBe('200 result=1 (4242)');
    expect(answers['GET VARIABLE CONTACT_PHONE']).toBe('200 result=1 (+15550400)');
    expect(answers['GET VARIABLE AMDSTATUS']).toBe('200 result=1 (NOTSURE)');
    expect(answers['GET VARIABLE AMD_PATH']).toBe('200 result=1 (human)');
    expect(env).toMatch(/^agi_network: yes\n/);
    expect(env).toMatch(/agi_channel: PJSIP\/trunk-[0-9a-f]{8}\n/);
    expect(events.find((e) => e.type === 'ChannelDestroyed')).toMatchObject({ cause: 16 });
    ws.close();
    await sim.close();
    await new Promise((r) => agi.close(r));
  });
});
