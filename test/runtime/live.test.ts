/**
 * The live monitor WebSocket in the whole product (`node scripts/start.js`: Node-RED with the shipped
 * flow, the embedded broker, the simulator, the demo campaign), every port bound as 0 and read back
 * from the banner: a run's events arrive over /api/v1/live byte-identical and in the same order as on
 * MQTT; a Deploy neither drops the socket nor adds a listener; SIGTERM closes it with 1001 and the
 * process exits.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import WebSocket from 'ws';
import mqtt from 'mqtt';
import { spawnStart, waitForBanner, type Started } from '../helpers/start';
import { waitFor } from '../helpers/wait';

const TOKEN = 'live-rt-full-token';
const READ = 'live-rt-read-token';

let dataDir: string;
let rt: Started;
let base: string;
let mqttUrl: string;

const api = async <T = any>(p: string, init: RequestInit = {}): Promise<T> => {
  const r = await fetch(base + '/api/v1' + p, {
    ...init,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json', ...(init.headers ?? {}) },
  });
  if (!r.ok) throw new Error(`${p}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
};

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-live-rt-'));
  rt = spawnStart({
    PORT: '0',
    MQTT_PORT: '0',
    AGI_PORT: '0',
    DATA_DIR: dataDir,
    API_TOKEN: TOKEN,
    API_READ_TOKEN: READ,
    SIM_SPEED: '20',
  });
  await waitForBanner(rt, 150000);
  const out = rt.out();
  base = /Dashboard: +(http:\/\/127\.0\.0\.1:\d+)\/dialer/.exec(out)![1];
  mqttUrl = /MQTT \(TCP\): +(mqtt:\/\/127\.0\.0\.1:\d+)/.exec(out)![1];
}, 200000);

afterAll(async () => {
  if (rt && rt.child.exitCode === null) {
    rt.child.kill('SIGKILL');
    await rt.exited;
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('a campaign run: the same JSON in the same order as MQTT; Deploy keeps the socket; SIGTERM closes it with 1001', async () => {
  const sub = await mqtt.connectAsync(mqttUrl, { reconnectPeriod: 0 });
  const fromMqtt: string[] = [];
  sub.on('message', (_t, p) => fromMqtt.push(String(p)));
  await sub.subscribeAsync(['ai-dialer/v1/calls/+/events', 'ai-dialer/v1/campaigns/+/status'], { qos: 1 });

  const ws = new WebSocket(base.replace('http', 'ws') + '/api/v1/live', [
    'ai-dialer.v1',
    'bearer.' + Buffer.from(READ).toString('base64url'),
  ]);
  const fromWs: string[] = [];
  ws.on('message', (d) => fromWs.push(String(d)));
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  const closedWith = new Promise<number>((r) => ws.once('close', (code) => r(code)));

  const { campaigns } = await api<{ campaigns: Array<{ id: number; name: string }> }>('/campaigns');
  const demo = campaigns[0];
  await api('/calls/automated/start', { method: 'POST', body: JSON.stringify({ campaignId: demo.id }) });
  const calls = (xs: string[]) => xs.filter((x) => JSON.parse(x).type !== 'campaign_progress');
  await waitFor(
    () => calls(fromWs).filter((x) => JSON.parse(x).type === 'call_ended').length >= 2,
    120000,
    'two calls ended on the live socket',
    200,
  );
  await api('/calls/automated/stop', { method: 'POST', body: JSON.stringify({ campaignId: demo.id }) });
  // quiet: the two feeds hold the same call events and the same last progress, unchanged for a second
  const progress = (xs: string[]) => xs.filter((x) => JSON.parse(x).type === 'campaign_progress');
  let last = '';
  await waitFor(
    () => {
      const now = `${fromWs.length}/${fromMqtt.length}`;
      const same =
        calls(fromWs).length === calls(fromMqtt).length &&
        progress(fromWs).at(-1) === progress(fromMqtt).at(-1) &&
        now === last;
      last = now;
      return same;
    },
    60000,
    'both feeds quiet and equal',
    1000,
  );
  expect(calls(fromWs)).toEqual(calls(fromMqtt));
  const types = new Set(calls(fromWs).map((x) => JSON.parse(x).type));
  for (const t of ['call_started', 'conversation_turn', 'call_ended']) expect(types).toContain(t);
  // progress: the last one is the same on both (MQTT keeps it retained; the socket had it first on connect)
  expect(progress(fromWs).at(-1)).toEqual(progress(fromMqtt).at(-1));

  // a full Deploy of the same flows: the socket stays, no listener is added
  const health = () => api<{ live: { clients: number; feedListeners: number } }>('/health');
  const before = (await health()).live;
  expect(before.clients).toBe(1);
  const password = /Editor login: +admin \/ (\S+)/.exec(rt.out())?.[1] ?? '';
  const tok = await fetch(`${base}/auth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      client_id: 'node-red-admin',
      grant_type: 'password',
      scope: '*',
      username: 'admin',
      password,
    }),
  });
  const { access_token } = (await tok.json()) as { access_token: string };
  const admin = { Authorization: `Bearer ${access_token}`, 'Content-Type': 'application/json' };
  const flows = await (await fetch(`${base}/flows`, { headers: admin })).json();
  const dep = await fetch(`${base}/flows`, {
    method: 'POST',
    headers: { ...admin, 'Node-RED-Deployment-Type': 'full' },
    body: JSON.stringify(flows),
  });
  expect([200, 204]).toContain(dep.status);
  await waitFor(async () => (await health()).live.clients === 1 || undefined, 20000, 'health after deploy');
  expect((await health()).live).toEqual(before);
  expect(ws.readyState).toBe(WebSocket.OPEN);

  await sub.endAsync();
  rt.child.kill('SIGTERM');
  expect(await closedWith).toBe(1001);
  expect(await rt.exited).toBe(0);
}, 300000);
