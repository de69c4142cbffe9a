/**
 * The package is real: `npm pack`, install the tarball into the userDir of a stock Node-RED 4.1,
 * start it, and the admin API lists every node of the module with no load error; icons are served.
 */
import { execFileSync, spawn, type ChildProcess } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { freePort } from '../../src/runtime/ports';
import { startSimulator } from '../../src/sim/index';
import { waitFor } from '../helpers/wait';

const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

describe('packed tarball in a stock Node-RED', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-pack-'));
  const userDir = path.join(work, 'userdir');
  let red: ChildProcess | undefined;
  let output = '';
  let port = 0;
  let sim: Awaited<ReturnType<typeof startSimulator>> | undefined;

  afterAll(async () => {
    if (red && red.exitCode === null) {
      const exited = new Promise((r) => red!.once('exit', r));
      red.kill('SIGTERM');
      await exited;
    }
    await sim?.close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  test('npm pack contains the build output, examples, flows and asterisk-config, and no sources or secrets', () => {
    const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, npm_config_loglevel: 'error' },
    });
    const info = JSON.parse(out.slice(out.indexOf('[')))[0] as { filename: string; files: Array<{ path: string }> };
    const files = info.files.map((f) => f.path);
    for (const type of Object.keys(pkg['node-red'].nodes)) {
      const js = pkg['node-red'].nodes[type] as string;
      expect(files).toContain(js);
      expect(files).toContain(js.replace(/\.js$/, '.html'));
    }
    expect(files).toContain('flows/ai-dialer.json');
    // the schema migrations are read from .sql files beside the built store module
    const sqlFiles = fs.readdirSync(path.join(root, 'src', 'store', 'migrations')).filter((f) => f.endsWith('.sql'));
    expect(sqlFiles.length).toBeGreaterThan(0);
    for (const f of sqlFiles) expect(files).toContain(`dist/src/store/migrations/${f}`);
    expect(files.some((f) => f.startsWith('asterisk-config/'))).toBe(true);
    expect(files.some((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toBe(false);
    expect(files.some((f) => f.startsWith('test/') || f === '.env')).toBe(false);
    fs.renameSync(path.join(work, info.filename), path.join(work, 'package.tgz'));
  });

  test('installs into a userDir, loads every node without error, and serves the icons', async () => {
    fs.mkdirSync(userDir, { recursive: true });
    fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'userdir', private: true }));
    execFileSync(
      'npm',
      ['install', '--no-audit', '--no-fund', '--omit=dev', '--prefer-offline', path.join(work, 'package.tgz')],
      {
        cwd: userDir,
        stdio: 'pipe',
        env: { ...process.env, npm_config_loglevel: 'error' },
      },
    );
    port = await freePort();
    const redMain = require.resolve('node-red/red.js');
    const agiPort = await freePort();
    // Asterisk: the simulator, reached through the same environment variables a real one would be
    sim = await startSimulator({ port: 0, host: '127.0.0.1', agiHost: '127.0.0.1', agiPort } as Parameters<
      typeof startSimulator
    >[0]);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NODE_OPTIONS: '',
      DATA_DIR: path.join(work, 'data'),
      MQTT_PORT: String(await freePort()),
      AGI_PORT: String(agiPort),
    };
    for (const k of ['DATABASE_URL', 'MQTT_URL']) delete env[k];
    Object.assign(env, {
      ARI_URL: sim.url,
      ARI_USERNAME: sim.username,
      ARI_PASSWORD: sim.password,
      ARI_APP: sim.app,
      STT_ENGINE: 'sim',
    });
    red = spawn(process.execPath, [redMain, '-u', userDir, '-p', String(port), '--safe'], {
      cwd: userDir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    red.stdout!.on('data', (d) => (output += d));
    red.stderr!.on('data', (d) => (output += d));
    const nodes = await waitFor(
      async () => {
        const r = await fetch(`http://127.0.0.1:${port}/nodes`, { headers: { Accept: 'application/json' } });
        return r.ok
          ? ((await r.json()) as Array<{ id: string; module: string; types: string[]; err?: string }>)
          : undefined;
      },
      60000,
      'Node-RED admin API',
    ).catch((err) => {
      throw new Error(`${err.message}\n${output}`);
    });
    const ours = nodes.filter((n) => n.module === pkg.name);
    const types = ours.flatMap((n) => n.types).sort();
    expect(types).toEqual(Object.keys(pkg['node-red'].nodes).sort());
    expect(ours.filter((n) => n.err)).toEqual([]);

    const icon = await fetch(`http://127.0.0.1:${port}/icons/${pkg.name}/ai-dialer.svg`);
    expect(icon.status).toBe(200);
    expect(await icon.text()).toContain('<svg');
    // The examples are offered in the editor's Import > Examples menu.
    const ex = await fetch(`http://127.0.0.1:${port}/nodes/messages?lng=en-US`, {
      headers: { Accept: 'application/json' },
    });
    expect(ex.status).toBe(200);
  });

  test('the shipped default flow imports and deploys cleanly, and serves the API and the dashboard', async () => {
    const flow = JSON.parse(fs.readFileSync(path.join(root, 'flows', 'ai-dialer.json'), 'utf8'));
    const before = output.length;
    const res = await fetch(`http://127.0.0.1:${port}/flows`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(flow),
    });
    expect(res.status).toBe(204);
    const deployed = (await (await fetch(`http://127.0.0.1:${port}/flows`)).json()) as Array<{ id: string }>;
    expect(deployed.map((n) => n.id).sort()).toEqual(flow.map((n: { id: string }) => n.id).sort());
    // the campaign queue serves the HTTP API and the dashboard once its database is open
    const campaigns = await waitFor(
      async () => {
        const r = await fetch(`http://127.0.0.1:${port}/api/v1/campaigns`);
        return r.status === 200 ? ((await r.json()) as { campaigns: unknown[] }) : undefined;
      },
      60000,
      'the HTTP API',
    );
    expect(Array.isArray(campaigns.campaigns)).toBe(true);
    const page = await fetch(`http://127.0.0.1:${port}/dialer/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const log = output.slice(before);
    expect(log.split('\n').filter((l) => /\[error\]/.test(l))).toEqual([]);
    expect(log).not.toMatch(/unknown type|missing type/i);
  });
});
