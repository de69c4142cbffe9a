/**
 * The production deployment: docker-compose.yml, .env.example, the Mosquitto configuration and ACL, the
 * container entrypoints, and the deployment docs (docs/operations/deploy.md, scaling.md, backups.md, the
 * variable table of docs/guide/configuration.md and docs/guide/troubleshooting.md).
 *
 * No Docker engine runs here, so the compose file is validated the way `.ci/run` does it: Debian's
 * `docker-compose config` with a `.env` made from `.env.example` in a temporary directory; the rendered
 * result is parsed and compared with what the documentation names. The Mosquitto configuration runs for
 * real on the Mosquitto installed here, and the entrypoints' shell logic runs in a temporary directory.
 */
import { spawnSync, spawn, type ChildProcess } from 'child_process';
import fs from 'fs';
import net from 'net';
import os from 'os';
import path from 'path';
import mqtt, { type MqttClient } from 'mqtt';
import { parse as parseYaml } from 'yaml';
import { describeWith } from '../helpers/tools';
import { ANY_PORTS, bannerPorts } from '../helpers/start';

const ROOT = path.resolve(__dirname, '..', '..');
const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');
const ENV_EXAMPLE = path.join(ROOT, '.env.example');

// ---------------------------------------------------------------------------------------------------
// helpers

function which(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, bin);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  for (const p of [`/usr/bin/${bin}`, `/usr/sbin/${bin}`, `/usr/local/bin/${bin}`]) if (fs.existsSync(p)) return p;
  return undefined;
}

const COMPOSE_BIN = which('docker-compose');
const MOSQUITTO_BIN = which('mosquitto');
const ENVSUBST_BIN = which('envsubst');
const MOSQUITTO_PASSWD_BIN = which('mosquitto_passwd');

function skipNote(what: string, why: string): void {
  console.warn(`SKIPPED ${what}: ${why}`);
}

/** The deployment documentation: the operations pages, the one variable table and the troubleshooting page. */
function deployDoc(): { file: string; text: string } {
  const files = [
    'docs/operations/deploy.md',
    'docs/operations/scaling.md',
    'docs/operations/backups.md',
    'docs/guide/configuration.md',
    'docs/guide/troubleshooting.md',
  ];
  return {
    file: 'docs/operations/deploy.md',
    text: files.map((f) => fs.readFileSync(path.join(ROOT, f), 'utf8')).join('\n'),
  };
}

/** Markdown tables: header cells and rows of cells. */
function tables(md: string): Array<{ header: string[]; rows: string[][] }> {
  const out: Array<{ header: string[]; rows: string[][] }> = [];
  const lines = md.split('\n');
  const cells = (l: string) =>
    l
      .trim()
      .replace(/^\|/, '')
      .replace(/\|$/, '')
      .split('|')
      .map((c) => c.trim());
  for (let i = 0; i + 1 < lines.length; i++) {
    if (!lines[i].trim().startsWith('|') || !/^\s*\|?\s*:?-{3,}/.test(lines[i + 1])) continue;
    const header = cells(lines[i]);
    const rows: string[][] = [];
    let j = i + 2;
    for (; j < lines.length && lines[j].trim().startsWith('|'); j++) rows.push(cells(lines[j]));
    out.push({ header, rows });
    i = j - 1;
  }
  return out;
}

function tableByFirstHeader(md: string, first: string): { header: string[]; rows: string[][] } {
  const t = tables(md).find((x) => x.header[0].toLowerCase() === first.toLowerCase());
  if (!t) throw new Error(`no table with first column "${first}" in the deployment docs`);
  return t;
}

function backticked(cell: string): string[] {
  return [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
}

/** All variable tables of a markdown text: first column "Variable", names in backticks. */
function documentedVariables(md: string): Map<string, string[]> {
  const vars = new Map<string, string[]>();
  for (const t of tables(md)) {
    if (t.header[0].toLowerCase() !== 'variable') continue;
    for (const r of t.rows) for (const name of backticked(r[0])) if (/^[A-Z][A-Z0-9_]*$/.test(name)) vars.set(name, r);
  }
  return vars;
}

function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** `docker-compose config` with the given .env; returns status, stdout, stderr. */
function composeConfig(envText: string): { status: number | null; stdout: string; stderr: string } {
  const dir = tmpDir('ai-dialer-compose-');
  try {
    const envFile = path.join(dir, '.env');
    fs.writeFileSync(envFile, envText);
    // A clean environment: nothing from the developer's shell may fill a ${VAR}.
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: dir, LANG: 'C.UTF-8' };
    const r = spawnSync(
      COMPOSE_BIN as string,
      ['-f', COMPOSE_FILE, '--env-file', envFile, '--project-name', 'aidialertest', 'config'],
      {
        env,
        cwd: dir,
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface PortSpec {
  published: string; // "1880" or "10000-10100"
  target: string;
  protocol: string; // tcp | udp
  hostIp?: string;
}

/** Ports of a rendered service in either syntax; udp ranges expanded by compose are folded back. */
function servicePorts(svc: any): PortSpec[] {
  const out: PortSpec[] = [];
  for (const p of svc.ports ?? []) {
    if (typeof p === 'string') {
      const m = /^(?:([\d.]+):)?([\d-]+):([\d-]+)(?:\/(tcp|udp))?$/.exec(p);
      if (!m) throw new Error(`unparsed port ${p}`);
      out.push({ hostIp: m[1], published: m[2], target: m[3], protocol: m[4] ?? 'tcp' });
    } else {
      out.push({
        hostIp: p.host_ip,
        published: String(p.published),
        target: String(p.target),
        protocol: p.protocol ?? 'tcp',
      });
    }
  }
  return out;
}

/** Does the service publish this port (or the whole range) with this protocol? */
function publishes(svc: any, port: string, protocol: string): boolean {
  const ports = servicePorts(svc).filter((p) => p.protocol === protocol);
  const [lo, hi] = port.includes('-') ? port.split('-').map(Number) : [Number(port), Number(port)];
  for (let n = lo; n <= hi; n++) {
    const hit = ports.some((p) => {
      const [a, b] = p.published.includes('-')
        ? p.published.split('-').map(Number)
        : [Number(p.published), Number(p.published)];
      return n >= a && n <= b;
    });
    if (!hit) return false;
  }
  return true;
}

interface Mount {
  source: string;
  target: string;
  type: 'volume' | 'bind';
  readOnly: boolean;
}

function serviceMounts(svc: any): Mount[] {
  return (svc.volumes ?? []).map((v: any): Mount => {
    if (typeof v === 'string') {
      const parts = v.split(':');
      const source = parts[0];
      return {
        source,
        target: parts[1],
        type: source.startsWith('/') || source.startsWith('.') ? 'bind' : 'volume',
        readOnly: parts[2] === 'ro',
      };
    }
    return { source: v.source, target: v.target, type: v.type, readOnly: !!v.read_only };
  });
}

function envOf(svc: any): Record<string, string> {
  const e = svc.environment ?? {};
  if (Array.isArray(e)) {
    const out: Record<string, string> = {};
    for (const kv of e) {
      const i = String(kv).indexOf('=');
      out[i < 0 ? kv : kv.slice(0, i)] = i < 0 ? '' : kv.slice(i + 1);
    }
    return out;
  }
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, v === null || v === undefined ? '' : String(v)]));
}

/** `${VAR}`, `${VAR:-x}`, `${VAR:?x}` names used in a text (compose's `$$` escapes skipped). */
function interpolatedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.replace(/\$\$/g, '').matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) names.add(m[1]);
  return names;
}

/** NAME=value lines of .env.example, including commented `# NAME=value` examples. */
function envExampleEntries(): { active: Map<string, string>; mentioned: Set<string> } {
  const active = new Map<string, string>();
  const mentioned = new Set<string>();
  for (const line of fs.readFileSync(ENV_EXAMPLE, 'utf8').split('\n')) {
    const a = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (a) {
      active.set(a[1], a[2]);
      mentioned.add(a[1]);
      continue;
    }
    const c = /^#\s*([A-Z][A-Z0-9_]*)=/.exec(line);
    if (c) mentioned.add(c[1]);
  }
  return { active, mentioned };
}

const SECRET_NAME = /(PASSWORD|SECRET|TOKEN|API_KEY)$/;
const PLACEHOLDER = /^(change-me)?$/;

/**
 * A TCP port free a moment ago. Only for Mosquitto, which cannot bind port 0 and say which port it got
 * (2.0 reads `listener 0` as a unix socket): its start retries with new ports when one was taken meanwhile.
 */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function connect(url: string, opts: mqtt.IClientOptions): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    c.once('connect', () => resolve(c));
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

// ---------------------------------------------------------------------------------------------------

const doc = deployDoc();
const documented = documentedVariables(doc.text);
const rawCompose = fs.readFileSync(COMPOSE_FILE, 'utf8');
const envExample = fs.readFileSync(ENV_EXAMPLE, 'utf8');

describe('deployment documentation', () => {
  test(`${doc.file} has the services, ports and variable tables`, () => {
    expect(tableByFirstHeader(doc.text, 'Service').rows.length).toBeGreaterThanOrEqual(6);
    expect(tableByFirstHeader(doc.text, 'Port').rows.length).toBeGreaterThanOrEqual(7);
    expect(documented.size).toBeGreaterThan(40);
    for (const topic of [
      'AGI_HOST=0.0.0.0',
      'node-red:4573',
      'without',
      'AMD',
      'pg_dump',
      'reverse proxy',
      'ACL',
      'DIAL_ENDPOINT',
    ]) {
      expect(doc.text).toContain(topic);
    }
  });

  test('every variable the docs name is in .env.example, and every .env.example variable is documented', () => {
    const { mentioned } = envExampleEntries();
    const missingInExample = [...documented.entries()]
      .filter(([v, row]) => !mentioned.has(v) && !row.some((c) => /not in `?\.env\.example`?/.test(c)))
      .map(([v]) => v);
    const undocumented = [...mentioned].filter((v) => !documented.has(v));
    expect({ missingInExample, undocumented }).toEqual({ missingInExample: [], undocumented: [] });
  });

  test('every variable any README table names is in the deployment table (so compose carries it or says why not)', () => {
    const readme = path.join(ROOT, 'README.md');
    const all = fs.existsSync(readme)
      ? documentedVariables(fs.readFileSync(readme, 'utf8'))
      : new Map<string, string[]>();
    expect([...all.keys()].filter((v) => !documented.has(v))).toEqual([]);
  });

  test('every ${VAR} docker-compose.yml reads is documented and in .env.example', () => {
    const { mentioned } = envExampleEntries();
    const used = [...interpolatedNames(rawCompose)];
    expect(used.filter((v) => !documented.has(v))).toEqual([]);
    expect(used.filter((v) => !mentioned.has(v))).toEqual([]);
  });

  test('every variable the project code reads is documented (process.env / env.NAME in src, nodes, scripts)', () => {
    const names = new Set<string>();
    const walk = (dir: string) => {
      if (!fs.existsSync(dir)) return;
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(ts|js)$/.test(e.name)) {
          const text = fs.readFileSync(p, 'utf8');
          for (const m of text.matchAll(/\b(?:process\.)?env\.([A-Z][A-Z0-9_]{2,})\b/g)) names.add(m[1]);
          for (const m of text.matchAll(/\benv\[['"]([A-Z][A-Z0-9_]{2,})['"]\]/g)) names.add(m[1]);
        }
      }
    };
    for (const d of ['src', 'nodes', 'scripts']) walk(path.join(ROOT, d));
    // Internal or process-level names that are not deployment settings.
    const internal = new Set([
      'NODE_OPTIONS',
      'NODE_ENV',
      'DEBUG',
      'PATH',
      'HOME',
      'MQTT_TCP_DISABLED',
      'AI_DIALER_SIMULATED',
      'JEST_WORKER_ID',
      'FLOW_LIBRARY_ONLINE', // the Flow Library check's switch (scripts/), in docs/contributing/testing.md
    ]);
    const missing = [...names].filter((n) => !internal.has(n) && !documented.has(n)).sort();
    expect(missing).toEqual([]);
  });

  test('the deployment docs show no secret: every password / secret / token value is a placeholder or a variable', () => {
    const leaks: string[] = [];
    for (const m of doc.text.matchAll(
      /\b([A-Za-z_]*(?:PASSWORD|SECRET|TOKEN|API_KEY|password|secret))\s*[=:]\s*([^\s`'"|,)]+)/g,
    )) {
      const value = m[2];
      if (!/^(change-me|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|<[^>]+>|\.\.\.)$/.test(value)) leaks.push(m[0]);
    }
    for (const m of doc.text.matchAll(/:\/\/[^:/\s]+:([^@\s]+)@/g))
      if (!/^(change-me|\$\{?[A-Z_]+\}?)$/.test(m[1])) leaks.push(m[0]);
    expect(leaks).toEqual([]);
  });

  test('.env.example holds placeholders only for secrets', () => {
    const { active } = envExampleEntries();
    const leaked = [...active].filter(([k, v]) => SECRET_NAME.test(k) && !PLACEHOLDER.test(v));
    expect(leaked).toEqual([]);
    // commented examples too: a URL with a password may only carry the placeholder
    for (const line of envExample.split('\n').filter((l) => /^#?\s*[A-Z][A-Z0-9_]*=/.test(l))) {
      for (const m of line.matchAll(/:\/\/[^:/\s]+:([^@\s]+)@/g)) expect([line, m[1]]).toEqual([line, 'change-me']);
    }
    expect(active.get('TRUNK_PASSWORD')).toBe('change-me');
  });
});

const withCompose = describeWith('docker-compose', !!COMPOSE_BIN, 'apt-get install docker-compose');

withCompose('docker-compose.yml rendered by `docker-compose config` with .env from .env.example', () => {
  let cfg: any;
  let services: Record<string, any>;

  beforeAll(() => {
    const r = composeConfig(envExample);
    if (r.status !== 0) throw new Error(`docker-compose config failed (${r.status}): ${r.stderr}`);
    cfg = parseYaml(r.stdout);
    services = cfg.services;
  });

  test('the services run, restart on failure and have health checks', () => {
    const documentedServices = tableByFirstHeader(doc.text, 'Service').rows.flatMap((r) =>
      backticked(r[0]).slice(0, 1),
    );
    expect(documentedServices.sort()).toEqual([
      'asterisk',
      'mosquitto',
      'node-red',
      'ollama',
      'piper',
      'postgres',
      'vosk',
      'whisper',
    ]);
    expect(Object.keys(services).sort()).toEqual(documentedServices.sort());
    for (const [name, svc] of Object.entries(services)) {
      expect([name, svc.restart]).toEqual([name, 'unless-stopped']);
      expect([name, Array.isArray(svc.healthcheck?.test)]).toEqual([name, true]);
    }
    expect(services.postgres.image).toMatch(/^postgres:16/);
    expect(services.mosquitto.image).toMatch(/^eclipse-mosquitto:2/);
    expect(services.asterisk.build.context).toBe(path.join(ROOT, 'deploy', 'asterisk'));
    expect(services['node-red'].build.context).toBe(ROOT);
    expect(fs.existsSync(path.join(ROOT, 'Dockerfile'))).toBe(true);
    expect(fs.existsSync(path.join(ROOT, 'deploy', 'asterisk', 'Dockerfile'))).toBe(true);
    expect(services['node-red'].depends_on.postgres.condition).toBe('service_healthy');
    expect(services['node-red'].depends_on.mosquitto.condition).toBe('service_healthy');
  });

  test('speech: node-red speaks through the piper service (Wyoming) by default; whisper is the profiled alternative to vosk', () => {
    const nr = envOf(services['node-red']);
    expect(nr.TTS_ENGINE).toBe('wyoming');
    expect([nr.WYOMING_TTS_HOST, nr.WYOMING_TTS_PORT]).toEqual(['piper', '10200']);
    // one variable chooses the voice: the service downloads it, node-red asks for it (and caches by it)
    const piperCmd: string[] = services.piper.command;
    expect(piperCmd[piperCmd.indexOf('--voice') + 1]).toBe(nr.WYOMING_TTS_VOICE);
    expect(nr.WYOMING_TTS_VOICE).toBe('en_US-lessac-medium');
    expect(rawCompose).toMatch(/--voice", "\$\{PIPER_VOICE:-[^}]+\}"/);
    expect(rawCompose).toMatch(/WYOMING_TTS_VOICE: \$\{PIPER_VOICE:-[^}]+\}/);
    expect(services.piper.image).toMatch(/^rhasspy\/wyoming-piper/);
    expect(serviceMounts(services.piper)).toContainEqual(
      expect.objectContaining({ source: 'piper-voices', target: '/data', type: 'volume' }),
    );
    expect(cfg.volumes).toHaveProperty('piper-voices');
    // the same voices, read-only, for TTS_ENGINE=piper (the local program) in node-red
    expect(serviceMounts(services['node-red'])).toContainEqual(
      expect.objectContaining({ source: 'piper-voices', target: '/piper-voices', readOnly: true }),
    );
    expect(services['node-red'].depends_on).toHaveProperty('piper');
    // faster-whisper only with its profile, wired for STT_ENGINE=wyoming; vosk stays the default
    expect(services.whisper.profiles).toEqual(['whisper']);
    expect(services.whisper.image).toMatch(/^rhasspy\/wyoming-whisper/);
    const wCmd: string[] = services.whisper.command;
    expect(wCmd[wCmd.indexOf('--model') + 1]).toBe(nr.WYOMING_STT_MODEL);
    expect([nr.WYOMING_STT_HOST, nr.WYOMING_STT_PORT, nr.STT_ENGINE]).toEqual(['whisper', '10300', 'vosk']);
    expect(services['node-red'].depends_on).not.toHaveProperty('whisper'); // would pull it in without the profile
    // the deployment docs say what TTS_ENGINE=piper means here, and where its model comes from
    expect(doc.text).toMatch(/`TTS_ENGINE=piper` in compose means the \*local Piper program\*/);
    expect(doc.text).toContain('/piper-voices/en_US-lessac-medium.onnx');
    expect(fs.existsSync(path.join(ROOT, 'docs', 'engines', 'piper.md'))).toBe(true);
    expect(fs.existsSync(path.join(ROOT, 'docs', 'engines', 'wyoming.md'))).toBe(true);
    for (const name of ['piper', 'whisper']) {
      expect([name, services[name].ports ?? []]).toEqual([name, []]);
      expect(services[name].networks).toHaveProperty('dialer');
    }
  });

  test('every engine variable compose sets for node-red is one the runtime reads', () => {
    const reads = new Set<string>();
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(ts|js)$/.test(e.name)) {
          const text = fs.readFileSync(p, 'utf8');
          for (const m of text.matchAll(/\b(?:process\.)?env\.([A-Z][A-Z0-9_]{2,})\b/g)) reads.add(m[1]);
          for (const m of text.matchAll(/\benv\[['"]([A-Z][A-Z0-9_]{2,})['"]\]/g)) reads.add(m[1]);
        }
      }
    };
    for (const d of ['src', 'nodes']) walk(path.join(ROOT, d));
    const engineVar = /^(TTS_|STT_|LLM_|ESPEAK_|PIPER_|VOSK_|WYOMING_)/;
    const set = Object.keys(envOf(services['node-red'])).filter((k) => engineVar.test(k));
    expect(set.length).toBeGreaterThan(20);
    expect(set.filter((k) => !reads.has(k))).toEqual([]);
    // and the engine names compose can set are ones the runtime accepts
    const tts = fs.readFileSync(path.join(ROOT, 'src', 'speech', 'tts.ts'), 'utf8');
    const stt = fs.readFileSync(path.join(ROOT, 'src', 'speech', 'stt.ts'), 'utf8');
    expect(tts).toContain(`n === '${envOf(services['node-red']).TTS_ENGINE}'`);
    expect(stt).toContain(`n === '${envOf(services['node-red']).STT_ENGINE}'`);
    expect(stt).toContain(`n === 'wyoming'`);
  });

  test('every port the docs list is published by the service they name', () => {
    const t = tableByFirstHeader(doc.text, 'Port');
    expect(t.rows.length).toBeGreaterThanOrEqual(7);
    for (const r of t.rows) {
      const [port, protocol = 'tcp'] = r[0].split('/');
      const service = backticked(r[1])[0];
      expect([r[0], service, publishes(services[service], port, protocol)]).toEqual([r[0], service, true]);
    }
    // the ones the original system exposed, whatever the docs say
    expect(publishes(services['node-red'], '1880', 'tcp')).toBe(true);
    expect(publishes(services['node-red'], '4573', 'tcp')).toBe(true);
    expect(publishes(services.asterisk, '5060', 'udp')).toBe(true);
    expect(publishes(services.asterisk, '8088', 'tcp')).toBe(true);
    expect(publishes(services.asterisk, '10000-10100', 'udp')).toBe(true);
    expect(publishes(services.mosquitto, '1883', 'tcp')).toBe(true);
    expect(publishes(services.mosquitto, '9001', 'tcp')).toBe(true);
    // administrative ports stay on localhost unless ADMIN_BIND says otherwise
    const admin = [
      ...servicePorts(services['node-red']),
      ...servicePorts(services.mosquitto),
      ...servicePorts(services.asterisk).filter((p) => p.protocol === 'tcp'),
    ];
    for (const p of admin) expect([p.published, p.hostIp]).toEqual([p.published, '127.0.0.1']);
    expect(services.postgres.ports ?? []).toEqual([]);
  });

  test('every documented variable reaches the compose file (environment or ${VAR}), unless marked "not used"', () => {
    const keys = new Set<string>();
    for (const svc of Object.values(services)) for (const k of Object.keys(envOf(svc))) keys.add(k);
    const used = interpolatedNames(rawCompose);
    const missing: string[] = [];
    for (const [name, row] of documented) {
      const composeCol = (row[2] ?? '').toLowerCase();
      if (composeCol.startsWith('not used')) {
        expect([name, keys.has(name) || used.has(name)]).toEqual([name, false]);
        continue;
      }
      if (!keys.has(name) && !used.has(name)) missing.push(name);
    }
    expect(missing).toEqual([]);
  });

  test('the values the docs call fixed are the ones compose sets', () => {
    const env = envOf(services['node-red']);
    for (const [name, row] of documented) {
      const m = /^fixed `([^`]+)`/.exec(row[2] ?? '');
      if (!m) continue;
      const svcEnv = name in env ? env : envOf(services.asterisk);
      expect([name, svcEnv[name]]).toEqual([name, m[1]]);
    }
  });

  test('Node-RED listens for FastAGI on 0.0.0.0 and Asterisk reaches it by service name; ARI by service name', () => {
    const nr = envOf(services['node-red']);
    expect(nr.AGI_HOST).toBe('0.0.0.0');
    expect(nr.HOST).toBe('0.0.0.0');
    expect(nr.AGI_PORT).toBe('4573');
    expect(nr.ARI_URL).toBe('http://asterisk:8088');
    expect(nr.MQTT_URL).toBe('mqtt://mosquitto:1883');
    expect(nr.DATABASE_URL).toMatch(/^postgres:\/\/[^:]+:[^@]+@postgres:5432\/\w+$/);
    expect(nr.VOSK_URL).toBe('ws://vosk:2700');
    expect(nr.LLM_BASE_URL).toBe('http://ollama:11434/v1');
    const ast = envOf(services.asterisk);
    expect(ast.AGI_TARGET_HOST).toBe('node-red');
    expect(ast.AGI_PORT).toBe(nr.AGI_PORT);
    expect(ast.AGI_SECRET).toBe(nr.AGI_SECRET);
    expect(ast.ARI_PASSWORD).toBe(nr.ARI_PASSWORD);
    expect(ast.ARI_USERNAME).toBe(nr.ARI_USERNAME);
    // the FastAGI allow-list admits the compose network Asterisk connects from
    const subnet = cfg.networks.dialer.ipam.config[0].subnet;
    expect(nr.AGI_ALLOW.split(',').map((s: string) => s.trim())).toContain(subnet);
    expect(ast.LOCAL_NET).toBe(subnet);
    for (const s of ['asterisk', 'node-red']) expect(services[s].networks).toHaveProperty('dialer');
  });

  test('audio and recordings are shared by Asterisk and Node-RED at the same paths', () => {
    const nr = envOf(services['node-red']);
    const nrMounts = serviceMounts(services['node-red']);
    const astMounts = serviceMounts(services.asterisk);
    for (const dirVar of ['AUDIO_DIR', 'RECORDINGS_DIR']) {
      const dir = nr[dirVar];
      expect(dir).toMatch(/^\//);
      // the innermost mount holding the directory in the Node-RED container ...
      const holder = nrMounts
        .filter((m) => dir === m.target || dir.startsWith(m.target + '/'))
        .sort((a, b) => b.target.length - a.target.length)[0];
      expect([dirVar, holder?.type]).toEqual([dirVar, 'volume']);
      // ... is the same named volume at the same path in Asterisk, writable in both
      const twin = astMounts.find((m) => m.source === holder.source && m.target === holder.target);
      expect([dirVar, twin?.target]).toEqual([dirVar, holder.target]);
      expect(holder.readOnly || twin!.readOnly).toBe(false);
      expect(envOf(services.asterisk)[dirVar]).toBe(dir);
    }
    // and the Asterisk configuration of the repository is mounted read-only for the entrypoint
    expect(astMounts).toContainEqual(
      expect.objectContaining({
        source: path.join(ROOT, 'asterisk-config'),
        target: '/etc/asterisk-ai-dialer',
        readOnly: true,
      }),
    );
    expect(serviceMounts(services.mosquitto)).toContainEqual(
      expect.objectContaining({
        source: path.join(ROOT, 'deploy', 'mosquitto'),
        target: '/mosquitto/config',
        readOnly: true,
      }),
    );
    for (const name of ['postgres', 'node-red'])
      expect(serviceMounts(services[name]).some((m) => m.type === 'volume')).toBe(true);
  });

  test('no literal secret in docker-compose.yml: secret values come from ${VAR} only', () => {
    const doc = parseYaml(rawCompose);
    const offenders: string[] = [];
    for (const [name, svc] of Object.entries<any>(doc.services)) {
      for (const [k, v] of Object.entries(envOf(svc))) {
        // a secret is `${VAR}`, `${VAR:?message}` or `${VAR:-}`: never a literal, never a literal default
        if (SECRET_NAME.test(k) && !/^\$\{[A-Z0-9_]+(:\?[^}]*|:-)?\}$/.test(v)) offenders.push(`${name}.${k}=${v}`);
        // credentials inside URLs must be interpolated too
        const cred = /:\/\/([^@\s]*)@/.exec(v);
        if (cred && !/^\$\{[^}]+\}:\$\{[A-Z0-9_]+(:\?[^}]*)?\}$/.test(cred[1])) offenders.push(`${name}.${k}=${v}`);
      }
    }
    expect(offenders).toEqual([]);
    // nothing resembling a password assignment with a literal value anywhere in the file
    expect(rawCompose).not.toMatch(/\b\w*(password|secret|token)\w*\s*(=|:\s)\s*(?!\$\{)[^\s"']/i);
  });

  test('the rendered secrets are exactly the placeholders of .env.example (nothing else sneaks in)', () => {
    for (const [name, svc] of Object.entries<any>(services)) {
      for (const [k, v] of Object.entries(envOf(svc))) {
        if (SECRET_NAME.test(k)) expect([`${name}.${k}`, PLACEHOLDER.test(v)]).toEqual([`${name}.${k}`, true]);
      }
    }
  });

  test('without the secrets compose refuses to render and names what is missing', () => {
    const stripped = envExample
      .split('\n')
      .filter((l) => !/^(ARI_PASSWORD|TRUNK_PASSWORD|POSTGRES_PASSWORD|AGI_SECRET)=/.test(l))
      .join('\n');
    const r = composeConfig(stripped);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/ARI_PASSWORD|TRUNK_PASSWORD|POSTGRES_PASSWORD|AGI_SECRET/);
  });
});

// ---------------------------------------------------------------------------------------------------

const withMosquitto = describeWith(
  'mosquitto and mosquitto_passwd',
  !!MOSQUITTO_BIN && !!MOSQUITTO_PASSWD_BIN,
  'apt-get install mosquitto',
);

withMosquitto('deploy/mosquitto: the real broker with the generated password file and ACL', () => {
  const W = { username: 'ai-dialer-writer', password: 'writer-pw-9f3a1c' };
  const R = { username: 'dashboard', password: 'reader-pw-41b7e2' };
  let dir: string;
  let proc: ChildProcess;
  let tcpPort: number;
  let wsPort: number;
  const clients: MqttClient[] = [];
  let log = '';

  beforeAll(async () => {
    dir = tmpDir('ai-dialer-mosquitto-');
    fs.chmodSync(dir, 0o755); // mosquitto drops to its own user when started as root
    const auth = path.join(dir, 'data', 'auth');
    const r = spawnSync('sh', [path.join(ROOT, 'deploy', 'mosquitto', 'entrypoint.sh'), 'true'], {
      env: {
        PATH: process.env.PATH,
        MOSQUITTO_CONFIG_DIR: path.join(ROOT, 'deploy', 'mosquitto'),
        MOSQUITTO_AUTH_DIR: auth,
        MQTT_WRITER_USER: W.username,
        MQTT_WRITER_PASSWORD: W.password,
        MQTT_READER_USER: R.username,
        MQTT_READER_PASSWORD: R.password,
      },
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`entrypoint failed: ${r.stderr}`);
    // Mosquitto cannot bind port 0 and report it (see freePort): a port taken between the pick and its
    // bind makes it exit with "Address already in use", and it is started again on new ports
    for (let attempt = 1; ; attempt++) {
      tcpPort = await freePort();
      wsPort = await freePort();
      // The shipped mosquitto.conf, with only its paths and ports moved into the temporary directory.
      const conf = fs
        .readFileSync(path.join(ROOT, 'deploy', 'mosquitto', 'mosquitto.conf'), 'utf8')
        .replace(/\/mosquitto\/data\/auth\//g, auth + '/')
        .replace(/\/mosquitto\/data\//g, path.join(dir, 'data') + '/')
        .replace(/^listener 1883$/m, `listener ${tcpPort} 127.0.0.1`)
        .replace(/^listener 9001$/m, `listener ${wsPort} 127.0.0.1`);
      expect(conf).toContain(`listener ${tcpPort} 127.0.0.1`);
      expect(conf).toContain(`listener ${wsPort} 127.0.0.1`);
      fs.writeFileSync(path.join(dir, 'mosquitto.conf'), conf);
      log = '';
      const p = spawn(MOSQUITTO_BIN as string, ['-c', path.join(dir, 'mosquitto.conf')], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      proc = p;
      p.stdout!.on('data', (d) => (log += d));
      p.stderr!.on('data', (d) => (log += d));
      const c = await until<MqttClient | 'exited'>('mosquitto to accept the writer', () =>
        p.exitCode !== null ? 'exited' : connect(`mqtt://127.0.0.1:${tcpPort}`, W),
      );
      if (c !== 'exited') {
        c.end(true);
        break;
      }
      if (attempt >= 5 || !/Address already in use/i.test(log)) throw new Error(`mosquitto exited: ${log}`);
    }
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => new Promise<void>((r) => c.end(true, {}, () => r()))));
    if (proc && proc.exitCode === null) {
      const exited = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGTERM');
      await exited;
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function client(url: string, opts: mqtt.IClientOptions): Promise<MqttClient> {
    const c = await connect(url, opts);
    clients.push(c);
    return c;
  }

  function collect(c: MqttClient): Array<{ topic: string; payload: string }> {
    const got: Array<{ topic: string; payload: string }> = [];
    c.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }));
    return got;
  }

  test('anonymous clients and wrong passwords are refused', async () => {
    await expect(connect(`mqtt://127.0.0.1:${tcpPort}`, {})).rejects.toThrow(/Not authorized|Bad user/i);
    await expect(
      connect(`mqtt://127.0.0.1:${tcpPort}`, { username: R.username, password: 'wrong-password' }),
    ).rejects.toThrow(/Not authorized|Bad user/i);
  });

  test('the writer publishes under ai-dialer/v1/#; the reader receives over TCP and over WebSocket', async () => {
    const readerTcp = await client(`mqtt://127.0.0.1:${tcpPort}`, R);
    const readerWs = await client(`ws://127.0.0.1:${wsPort}`, R);
    const gotTcp = collect(readerTcp);
    const gotWs = collect(readerWs);
    await readerTcp.subscribeAsync('ai-dialer/v1/#', { qos: 1 });
    await readerWs.subscribeAsync('ai-dialer/v1/calls/+/events', { qos: 1 });
    const writer = await client(`mqtt://127.0.0.1:${tcpPort}`, W);
    const payload = JSON.stringify({ type: 'call_started', callId: 7 });
    await writer.publishAsync('ai-dialer/v1/calls/7/events', payload, { qos: 1 });
    await until('the reader over TCP to get the event', () => (gotTcp.length ? true : undefined));
    await until('the reader over WebSocket to get the event', () => (gotWs.length ? true : undefined));
    expect(gotTcp).toEqual([{ topic: 'ai-dialer/v1/calls/7/events', payload }]);
    expect(gotWs).toEqual([{ topic: 'ai-dialer/v1/calls/7/events', payload }]);
  });

  test('the reader cannot publish (no fake events, no control commands); the writer cannot publish outside the tree', async () => {
    const watcher = await client(`mqtt://127.0.0.1:${tcpPort}`, W);
    const got = collect(watcher);
    await watcher.subscribeAsync('#', { qos: 1 });
    const reader = await client(`mqtt://127.0.0.1:${tcpPort}`, R);
    const writer = await client(`mqtt://127.0.0.1:${tcpPort}`, W);
    // Each denied publish is acknowledged (MQTT 3.1.1) and dropped; the marker sent after them arrives
    // on the same subscription, so anything not dropped would have arrived before it.
    await reader.publishAsync('ai-dialer/v1/calls/7/events', '{"type":"call_ended","fake":true}', { qos: 1 });
    await reader.publishAsync('ai-dialer/v1/calls/7/control', '{"action":"hangup"}', { qos: 1 });
    await reader.publishAsync('ai-dialer/v1/campaigns/1/control', '{"action":"stop"}', { qos: 1 });
    await writer.publishAsync('elsewhere/topic', 'outside the tree', { qos: 1 });
    await writer.publishAsync('ai-dialer/v1/campaigns/1/status', 'marker', { qos: 1 });
    await until('the marker', () => (got.some((m) => m.payload === 'marker') ? true : undefined));
    expect(got.map((m) => m.topic)).toEqual(['ai-dialer/v1/campaigns/1/status']);
  });

  test('the ACL rendered from the template names the two accounts and nothing else', () => {
    const acl = fs.readFileSync(path.join(dir, 'data', 'auth', 'acl'), 'utf8');
    const rules = acl.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
    expect(rules).toEqual([
      `user ${W.username}`,
      'topic readwrite ai-dialer/v1/#',
      `user ${R.username}`,
      'topic read ai-dialer/v1/#',
    ]);
    const passwd = fs.readFileSync(path.join(dir, 'data', 'auth', 'passwd'), 'utf8');
    expect(passwd).not.toContain(W.password);
    expect(passwd).not.toContain(R.password);
    expect(
      passwd
        .trim()
        .split('\n')
        .map((l) => l.split(':')[0]),
    ).toEqual([W.username, R.username]);
    expect(fs.statSync(path.join(dir, 'data', 'auth', 'passwd')).mode & 0o077).toBe(0);
    expect(log).not.toMatch(/Error/);
  });
});

describe('container entrypoints refuse placeholders and bad settings', () => {
  function run(script: string, env: Record<string, string>, args: string[] = ['true']) {
    const shell = script.endsWith('mosquitto/entrypoint.sh') ? 'sh' : 'bash';
    return spawnSync(shell, [path.join(ROOT, script), ...args], {
      env: { PATH: process.env.PATH as string, ...env },
      encoding: 'utf8',
    });
  }

  test('mosquitto: placeholder password, missing account, odd user name, same account twice', () => {
    const dir = tmpDir('ai-dialer-mq-');
    try {
      const base = {
        MOSQUITTO_CONFIG_DIR: path.join(ROOT, 'deploy', 'mosquitto'),
        MOSQUITTO_AUTH_DIR: path.join(dir, 'auth'),
      };
      const ok = {
        ...base,
        MQTT_WRITER_USER: 'w',
        MQTT_WRITER_PASSWORD: 'writer-secret-1',
        MQTT_READER_USER: 'r',
        MQTT_READER_PASSWORD: 'reader-secret-1',
      };
      let r = run('deploy/mosquitto/entrypoint.sh', { ...ok, MQTT_WRITER_PASSWORD: 'change-me' });
      expect([r.status, r.stderr]).toEqual([
        1,
        expect.stringContaining('MQTT_WRITER_PASSWORD is still the placeholder'),
      ]);
      r = run('deploy/mosquitto/entrypoint.sh', { ...ok, MQTT_READER_PASSWORD: '' });
      expect([r.status, r.stderr]).toEqual([1, expect.stringContaining('MQTT_READER_PASSWORD is empty')]);
      r = run('deploy/mosquitto/entrypoint.sh', { ...ok, MQTT_READER_USER: 'dash board\nuser evil' });
      expect([r.status, r.stderr]).toEqual([1, expect.stringContaining('MQTT_READER_USER may contain only')]);
      r = run('deploy/mosquitto/entrypoint.sh', { ...ok, MQTT_READER_USER: 'w' });
      expect([r.status, r.stderr]).toEqual([1, expect.stringContaining('must be different')]);
      expect(fs.existsSync(path.join(dir, 'auth', 'acl'))).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('node-red: placeholder secrets and a placeholder database password stop the start', () => {
    const home = { AI_DIALER_HOME: ROOT };
    let r = run('deploy/node-red/entrypoint.sh', { ...home, ARI_PASSWORD: 'change-me' });
    expect([r.status, r.stderr]).toEqual([1, expect.stringContaining('ARI_PASSWORD is still the placeholder')]);
    r = run('deploy/node-red/entrypoint.sh', {
      ...home,
      DATABASE_URL: 'postgres://ai_dialer:change-me@postgres:5432/ai_dialer',
    });
    expect([r.status, r.stderr]).toEqual([1, expect.stringContaining('POSTGRES_PASSWORD')]);
    r = run('deploy/node-red/entrypoint.sh', { ...home, ARI_URL: 'http://asterisk:8088' });
    expect([r.status, r.stderr]).toEqual([1, expect.stringContaining('ARI_PASSWORD is empty')]);
    r = run('deploy/node-red/entrypoint.sh', { AI_DIALER_HOME: '/nonexistent' });
    expect([r.status, r.stderr]).toEqual([1, expect.stringContaining('not installed')]);
    r = run('deploy/node-red/entrypoint.sh', {
      ...home,
      ARI_URL: 'http://asterisk:8088',
      ARI_PASSWORD: 'a-real-secret-123',
      API_TOKEN: 'tok-123456789',
    });
    expect([r.status, r.stderr]).toEqual([0, '']);
  });

  test('node-red: without a command the entrypoint starts a runtime module that exists in the package', () => {
    const script = fs.readFileSync(path.join(ROOT, 'deploy', 'node-red', 'entrypoint.sh'), 'utf8');
    expect(script).toContain('scripts/start.js');
    expect(script).toContain('dist/src/runtime/main.js');
    // the packed package carries the built runtime it runs (dist/src/, not the dev scripts or benches)
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.files).toEqual(expect.arrayContaining(['dist/src/', 'dist/nodes/', 'flows/', 'asterisk-config/']));
    expect(fs.existsSync(path.join(ROOT, 'src', 'runtime', 'main.ts'))).toBe(true);
    expect(fs.readFileSync(path.join(ROOT, 'src', 'runtime', 'main.ts'), 'utf8')).toMatch(
      /export async function main\(/,
    );
    expect(fs.existsSync(path.join(ROOT, 'flows', 'ai-dialer.json'))).toBe(true);
  });
});

const BUILT_RUNTIME = path.join(ROOT, 'dist', 'src', 'runtime', 'main.js');
const withBuild = describeWith('the build output (dist/)', fs.existsSync(BUILT_RUNTIME), 'npm run build');

withBuild(
  'deploy/node-red: the entrypoint starts the runtime the way the container does; the healthcheck sees it',
  () => {
    let proc: ChildProcess | undefined;
    let dataDir: string;
    let out = '';

    afterAll(async () => {
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise<void>((r) => proc!.once('exit', () => r()));
        proc.kill('SIGKILL');
        await exited;
      }
      if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    });

    function healthcheck(port: number) {
      return spawnSync(process.execPath, [path.join(ROOT, 'deploy', 'node-red', 'healthcheck.js')], {
        env: { PATH: process.env.PATH as string, PORT: String(port) },
        encoding: 'utf8',
        timeout: 15_000,
      });
    }

    test('starts with AGI_HOST=0.0.0.0, answers the healthcheck, stops cleanly on SIGTERM', async () => {
      dataDir = tmpDir('ai-dialer-image-data-');
      // every port 0: the runtime binds them and its banner says which (read back below)
      proc = spawn('bash', [path.join(ROOT, 'deploy', 'node-red', 'entrypoint.sh')], {
        env: {
          PATH: process.env.PATH as string,
          HOME: dataDir,
          AI_DIALER_HOME: ROOT,
          ...ANY_PORTS,
          HOST: '127.0.0.1',
          DATA_DIR: dataDir,
          AGI_HOST: '0.0.0.0',
          AUDIO_DIR: path.join(dataDir, 'audio'),
          RECORDINGS_DIR: path.join(dataDir, 'recordings'),
          API_TOKEN: 'token-for-the-test-1',
          AGI_SECRET: 'agi-secret-for-the-test-1', // FastAGI on 0.0.0.0 needs it (docs/operations/security.md)
          LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const exited = new Promise<number | null>((r) => proc!.once('exit', (code) => r(code)));
      proc.stdout!.on('data', (d) => (out += d));
      proc.stderr!.on('data', (d) => (out += d));
      await until(
        'the runtime to print where it runs',
        () =>
          out.includes('Press Ctrl-C to stop.')
            ? true
            : proc!.exitCode !== null
              ? Promise.reject(new Error(out))
              : undefined,
        90_000,
      );
      const { http: port, agi: agiPort } = bannerPorts(out);
      const hc = healthcheck(port);
      expect([hc.status, hc.stderr]).toEqual([0, '']);
      // FastAGI listens on every interface (what Asterisk in another container needs)
      expect(out).toContain(`agi://0.0.0.0:${agiPort}`);
      // (the FastAGI server belongs to the default flow's fastagi-in node: checked once the flow has one)
      const flow = JSON.parse(fs.readFileSync(path.join(ROOT, 'flows', 'ai-dialer.json'), 'utf8')) as Array<{
        type: string;
      }>;
      if (flow.some((n) => n.type === 'fastagi-in')) {
        await until(
          'FastAGI to accept a connection',
          () =>
            new Promise<true>((resolve, reject) => {
              const s = net.connect({ host: '127.0.0.1', port: agiPort }, () => {
                s.destroy();
                resolve(true);
              });
              s.once('error', reject);
            }),
        );
      } else {
        skipNote('FastAGI connect check', 'flows/ai-dialer.json has no fastagi-in node yet');
      }
      // the shared audio directories were made
      expect(fs.statSync(path.join(dataDir, 'audio')).isDirectory()).toBe(true);
      expect(fs.statSync(path.join(dataDir, 'recordings')).isDirectory()).toBe(true);
      proc.kill('SIGTERM'); // tini forwards docker stop's SIGTERM; the exec'd runtime gets it directly
      expect(await exited).toBe(0);
      expect(healthcheck(port).status).toBe(1);
    }, 150_000); // the runtime may take over a minute to start on a loaded machine (its own wait is 90 s)
  },
);

const withEnvsubst = describeWith('envsubst', !!ENVSUBST_BIN, 'apt-get install gettext-base');

withEnvsubst('deploy/asterisk/entrypoint.sh installs asterisk-config with the settings from .env', () => {
  const trunk = {
    ARI_USERNAME: 'ari-user',
    ARI_PASSWORD: 'ari-secret-7c1d',
    AGI_SECRET: 'agi-secret-55e0',
    AGI_TARGET_HOST: 'node-red',
    TRUNK_HOST: 'sip.provider.test',
    TRUNK_USERNAME: 'acct42',
    TRUNK_PASSWORD: 'trunk-secret-b2f9',
    TRUNK_CALLER_ID: '+15555550100',
    EXTERNAL_IP: '203.0.113.10',
    LOCAL_NET: '172.28.0.0/24',
    RTP_START: '12000',
    RTP_END: '12100',
  };

  function render(src: string, env: Record<string, string>) {
    const dest = tmpDir('ai-dialer-ast-etc-');
    const spool = tmpDir('ai-dialer-ast-spool-');
    const r = spawnSync('bash', [path.join(ROOT, 'deploy', 'asterisk', 'entrypoint.sh'), 'true'], {
      env: {
        PATH: process.env.PATH as string,
        ASTERISK_CONFIG_SRC: src,
        ASTERISK_CONFIG_DIR: dest,
        ASTERISK_SPOOL_DIR: spool,
        ...env,
      },
      encoding: 'utf8',
    });
    return {
      ...r,
      dest,
      spool,
      cleanup: () => [dest, spool].forEach((d) => fs.rmSync(d, { recursive: true, force: true })),
    };
  }

  test('only the listed settings are replaced; dialplan variables stay; rtp.conf and spool/recording are made', () => {
    const src = tmpDir('ai-dialer-ast-src-');
    fs.writeFileSync(
      path.join(src, 'pjsip.conf'),
      '[trunk-auth]\ntype=auth\nusername=${TRUNK_USERNAME}\npassword=${TRUNK_PASSWORD}\n[transport-udp]\nexternal_media_address=${EXTERNAL_IP}\nlocal_net=${LOCAL_NET}\n',
    );
    fs.writeFileSync(
      path.join(src, 'extensions-agi.conf'),
      '[ai-dialer-agi]\nexten => s,1,AGI(agi://${AGI_TARGET_HOST}:${AGI_PORT}/call?secret=${AGI_SECRET},${CALL_ID})\n same => n,Set(X=${ENV(HOME)}${CONTACT_PHONE}$[1+1])\n',
    );
    const r = render(src, trunk);
    try {
      expect([r.status, r.stderr]).toEqual([0, '']);
      const pjsip = fs.readFileSync(path.join(r.dest, 'pjsip.conf'), 'utf8');
      expect(pjsip).toContain('password=trunk-secret-b2f9');
      expect(pjsip).toContain('username=acct42');
      expect(pjsip).toContain('external_media_address=203.0.113.10');
      expect(pjsip).toContain('local_net=172.28.0.0/24');
      const ext = fs.readFileSync(path.join(r.dest, 'extensions-agi.conf'), 'utf8');
      // the AGI target and secret are NOT rendered: Asterisk reads them at run time (${ENV(...)})
      expect(ext).toContain('AGI(agi://${AGI_TARGET_HOST}:${AGI_PORT}/call?secret=${AGI_SECRET},${CALL_ID})');
      expect(ext).not.toContain('agi-secret-55e0');
      expect(ext).toContain('Set(X=${ENV(HOME)}${CONTACT_PHONE}$[1+1])');
      expect(fs.readFileSync(path.join(r.dest, 'rtp.conf'), 'utf8')).toMatch(/rtpstart=12000\s+rtpend=12100/);
      expect(fs.statSync(path.join(r.spool, 'recording')).isDirectory()).toBe(true);
      expect(fs.statSync(path.join(r.dest, 'pjsip.conf')).mode & 0o007).toBe(0);
    } finally {
      r.cleanup();
      fs.rmSync(src, { recursive: true, force: true });
    }
  });

  test('placeholders, a missing ARI password and a bad RTP range stop the start', () => {
    const src = tmpDir('ai-dialer-ast-src-');
    try {
      const cases: Array<[Record<string, string>, string]> = [
        [{ ...trunk, TRUNK_PASSWORD: 'change-me' }, 'TRUNK_PASSWORD is still the placeholder'],
        [{ ...trunk, ARI_PASSWORD: '' }, 'ARI_PASSWORD is empty'],
        [{ ...trunk, AGI_SECRET: 'change-me' }, 'AGI_SECRET is still the placeholder'],
        [{ ...trunk, RTP_START: '20000', RTP_END: '10000' }, 'RTP_START (20000) must be below RTP_END'],
        [{ ...trunk, RTP_END: '10100; evil' }, 'RTP_END must be a port number'],
      ];
      for (const [env, message] of cases) {
        const r = render(src, env);
        r.cleanup();
        expect([r.status, r.stderr]).toEqual([1, expect.stringContaining(message)]);
      }
    } finally {
      fs.rmSync(src, { recursive: true, force: true });
    }
  });

  const shipped = path.join(ROOT, 'asterisk-config');
  const hasShipped = fs.existsSync(shipped) && fs.readdirSync(shipped).some((f) => f.endsWith('.conf'));
  // the shipped config is part of the repository: its absence is a failure, never a skip
  test('the shipped asterisk-config renders: trunk and ARI settings filled, no secret in the repository', () => {
    expect(hasShipped).toBe(true);
    const r = render(shipped, trunk);
    try {
      expect([r.status, r.stderr]).toEqual([0, '']);
      const rendered = fs.readdirSync(r.dest).filter((f) => f.endsWith('.conf'));
      for (const f of rendered) {
        const text = fs.readFileSync(path.join(r.dest, f), 'utf8');
        for (const v of [
          'TRUNK_HOST',
          'TRUNK_USERNAME',
          'TRUNK_PASSWORD',
          'ARI_PASSWORD',
          'EXTERNAL_IP',
          'AGI_SECRET',
        ]) {
          expect([f, text.includes('${' + v + '}')]).toEqual([f, false]);
        }
      }
      // ARI: the account Node-RED uses
      const ari = fs.readFileSync(path.join(r.dest, 'ari.conf'), 'utf8');
      expect(ari).toContain(`[${trunk.ARI_USERNAME}]`);
      expect(ari).toMatch(new RegExp(`password\\s*=\\s*${trunk.ARI_PASSWORD}`));
      // the dialplan sends AGI to where Asterisk's environment says (AGI_TARGET_HOST=node-red in
      // docker-compose), read at run time: the secret is never in a rendered file
      for (const f of rendered)
        expect([f, fs.readFileSync(path.join(r.dest, f), 'utf8').includes(trunk.AGI_SECRET)]).toEqual([f, false]);
      const dialplan = rendered
        .filter((f) => f.startsWith('extensions'))
        .map((f) => fs.readFileSync(path.join(r.dest, f), 'utf8'))
        .join('\n');
      const globals = new Map<string, string>();
      const g = /^\[globals\]\s*$([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(dialplan);
      for (const m of (g ? g[1] : '').matchAll(/^\s*([A-Z0-9_]+)\s*=>?\s*(.*?)\s*$/gm)) globals.set(m[1], m[2]);
      const resolve = (v: string) => v.replace(/\$\{([A-Z0-9_]+)\}/g, (_x, n) => globals.get(n) ?? `\${${n}}`);
      const agiCalls = [...dialplan.matchAll(/AGI\(agi:\/\/(\$\{ENV\(\w+\)\}:\$\{ENV\(\w+\)\})/g)].map((m) =>
        resolve(m[1]),
      );
      expect(agiCalls.length).toBeGreaterThan(0);
      for (const hostPort of agiCalls) expect(hostPort).toBe('${ENV(AGI_TARGET_HOST)}:${ENV(AGI_PORT)}');
      // modules.conf may not require a module Asterisk 22 does not have (it would refuse to start)
      const goneIn22 = [
        'chan_local.so',
        'chan_sip.so',
        'app_macro.so',
        'res_monitor.so',
        'chan_mgcp.so',
        'chan_skinny.so',
        'chan_alsa.so',
        'app_osplookup.so',
      ];
      const modules = fs.readFileSync(path.join(r.dest, 'modules.conf'), 'utf8').replace(/;.*$/gm, '');
      const required = [...modules.matchAll(/^\s*(?:require|load|preload)\s*=>?\s*(\S+)/gm)].map((m) => m[1]);
      expect(required.filter((m) => goneIn22.includes(m))).toEqual([]);
      // repository files: every password / secret is a ${VAR} to fill in or a placeholder
      for (const f of fs.readdirSync(shipped).filter((x) => x.endsWith('.conf'))) {
        for (const line of fs.readFileSync(path.join(shipped, f), 'utf8').split('\n')) {
          const m = /^\s*(password|secret)\s*=\s*(\S*)/i.exec(line.replace(/;.*$/, ''));
          if (m) expect([f, line.trim(), /^(\$\{[A-Z0-9_]+\}|change-me)$/.test(m[2])]).toEqual([f, line.trim(), true]);
        }
      }
    } finally {
      r.cleanup();
    }
  });
});
