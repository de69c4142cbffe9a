/**
 * `npm start` as a user runs it: a child process with a fresh DATA_DIR. It prints where everything is,
 * serves the editor with the package's nodes, and stops cleanly on SIGTERM; start-up problems are one
 * clear line and a non-zero exit.
 */
import fs from 'fs';
import net from 'net';
import os from 'os';
import path from 'path';
import { waitFor } from '../helpers/wait';
import { ANY_PORTS, bannerPorts, portEnv, spawnStart } from '../helpers/start';

const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

const start = spawnStart;

async function ports() {
  return { ...ANY_PORTS }; // bound as 0, read back from the banner
}

/** A port held by this process (bound as 0, read back): the runtime must find it taken. */
async function taken(host: string): Promise<{ port: string; close(): void }> {
  const s = net.createServer().listen(0, host);
  await new Promise((r) => s.once('listening', r));
  return { port: String((s.address() as net.AddressInfo).port), close: () => s.close() };
}

describe('npm start (embedded runtime)', () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-start-'));
    dirs.push(d);
    return d;
  };
  afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  test('starts the editor with every node of the package, prints the URLs, and stops cleanly on SIGTERM', async () => {
    const p = await ports();
    const rt = start({ ...p, DATA_DIR: tmp() });
    try {
      await waitFor(
        () =>
          rt.out().includes('Press Ctrl-C to stop.') ||
          (rt.child.exitCode !== null && Promise.reject(new Error(rt.out()))),
        90000,
        'the banner',
      );
      const out = rt.out();
      Object.assign(p, portEnv(bannerPorts(out)));
      expect(Number(p.PORT) * Number(p.MQTT_PORT) * Number(p.AGI_PORT)).toBeGreaterThan(0); // 0: the port bound
      expect(out).toContain(`Editor (Node-RED):  http://127.0.0.1:${p.PORT}/`);
      expect(out).toContain(`Dashboard:          http://127.0.0.1:${p.PORT}/dialer`);
      expect(out).toContain(`MQTT (TCP):         mqtt://127.0.0.1:${p.MQTT_PORT}`);
      expect(out).toContain(`MQTT (WebSocket):   ws://127.0.0.1:${p.PORT}/mqtt`);
      expect(out).toContain(`FastAGI:            agi://127.0.0.1:${p.AGI_PORT}`);
      // the ARI URL as ARI answers on it (with /ari), bound on a port read back
      expect(out).toMatch(/Asterisk ARI: +http:\/\/127\.0\.0\.1:\d+\/ari +\(built-in simulator/);
      // the editor needs its login: the password generated on first start, printed once in the banner
      const password = /Editor login: +admin \/ (\S+)/.exec(out)?.[1] ?? '';
      const tok = await fetch(`http://127.0.0.1:${p.PORT}/auth/token`, {
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
      expect(tok.status).toBe(200);
      const { access_token } = (await tok.json()) as { access_token: string };
      const res = await fetch(`http://127.0.0.1:${p.PORT}/nodes`, {
        headers: { Accept: 'application/json', Authorization: `Bearer ${access_token}` },
      });
      const nodes = (await res.json()) as Array<{ module: string; types: string[]; err?: string }>;
      const ours = nodes.filter((n) => n.module === pkg.name);
      expect(ours.flatMap((n) => n.types).sort()).toEqual(Object.keys(pkg['node-red'].nodes).sort());
      expect(ours.filter((n) => n.err)).toEqual([]);
    } finally {
      rt.child.kill('SIGTERM');
    }
    expect(await rt.exited).toBe(0);
    expect(rt.out()).toContain('stopped');
  }, 120_000); // under load the start alone can take most of a minute

  test('a taken HTTP port is one clear line and exit code 1', async () => {
    const blocker = await taken('127.0.0.1');
    const p = { ...(await ports()), PORT: blocker.port };
    try {
      const rt = start({ ...p, DATA_DIR: tmp() });
      expect(await rt.exited).toBe(1);
      expect(
        rt
          .out()
          .trim()
          .split('\n')
          .filter((l) => l.startsWith('ai-dialer:')),
      ).toEqual([
        `ai-dialer: HTTP port ${p.PORT} is already in use. Is another Node-RED running? Set PORT to a free port, e.g. PORT=1881 npm start.`,
      ]);
    } finally {
      blocker.close();
    }
  });

  test('a taken MQTT port is reported in one line with the way out, and the runtime still comes up', async () => {
    const blocker = await taken('0.0.0.0');
    const p = { ...(await ports()), MQTT_PORT: blocker.port };
    const rt = start({ ...p, DATA_DIR: tmp() });
    try {
      await waitFor(
        () =>
          rt.out().includes('Press Ctrl-C to stop.') ||
          (rt.child.exitCode !== null && Promise.reject(new Error(rt.out()))),
        90000,
        'the banner',
      );
      const note = rt
        .out()
        .split('\n')
        .filter((l) => l.includes(`MQTT port ${p.MQTT_PORT} is already in use`));
      expect(note).toHaveLength(1);
      expect(note[0]).toContain('Set MQTT_PORT');
      expect(note[0]).toContain(`MQTT_URL=mqtt://127.0.0.1:${p.MQTT_PORT}`);
    } finally {
      rt.child.kill('SIGTERM');
      blocker.close();
    }
    expect(await rt.exited).toBe(0);
  }, 120_000);

  test.each([
    [
      'DATABASE_URL',
      'mysql://x@127.0.0.1/db',
      'ai-dialer: DATABASE_URL must start with postgres:// or postgresql:// (got mysql://)',
    ],
    [
      'DATABASE_URL',
      'postgresql://nobody:secretpw@127.0.0.1:1/none',
      'ai-dialer: cannot reach PostgreSQL at postgresql://nobody:***@127.0.0.1:1/none',
    ],
    ['MQTT_URL', 'not a url', 'ai-dialer: MQTT_URL is not a valid URL'],
    ['ARI_URL', 'ftp://asterisk', 'ai-dialer: ARI_URL must start with http:// or https:// (got ftp://)'],
    ['PORT', 'http', 'ai-dialer: PORT must be a port number between 0 and 65535 (got "http")'],
    [
      'HEAP_GROWING_PERCENT',
      'lots',
      'ai-dialer: HEAP_GROWING_PERCENT must be a whole number from 0 to 400 (got "lots")',
    ],
  ])('%s=%s is one clear line and exit code 1', async (name, value, expected) => {
    const p = await ports();
    const rt = start({ ...p, DATA_DIR: tmp(), [name]: value });
    expect(await rt.exited).toBe(1);
    const lines = rt
      .out()
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('ai-dialer:'));
    expect(lines).toHaveLength(1);
    expect(lines[0].startsWith(expected)).toBe(true);
    expect(rt.out()).not.toContain('secretpw');
  });
});
