/**
 * The embedded runtime behind `npm start`: Node-RED with this package and the shipped default flow,
 * the embedded database (PGlite) unless DATABASE_URL is set, the embedded MQTT broker unless MQTT_URL
 * is set, and the built-in Asterisk simulator unless ARI_URL is set.
 */
import fs from 'fs';
import v8 from 'v8';
import { randomBytes } from 'crypto';
import http from 'http';
import type { AddressInfo } from 'net';
import path from 'path';
import { acquireDb, releaseDb, redactUrl, type Db } from '../store/db';
import { disposeParked } from '../util/handoff';
import { dataDir as dataDirFrom, portFrom, storeOptionsFromEnv } from './env';
import { checkPortFree, freePort } from './ports';
import { mqttPortTakenNote } from '../events/broker';
import { ensureDemoCampaign } from './demo';
import { registerHealthProbe } from '../health/probes';
import type { DialerSettings } from '../types/settings';
import { outboxFor } from '../store/outbox';
import { closeAllLive } from '../api/live';
import { parseDurationMs } from '../util/config';
import {
  bindRefusal,
  checkBind,
  dropWildcardCors,
  editorAuthFromEnv,
  editorBannerLines,
  insecureBannerLines,
  type BindCheck,
  type EditorAuth,
} from './security';
import type { Persona } from '../sim/persona';
import { seedCredentials } from './credentials';
import { heapGrowingFlag } from './heap';

/** A start-up problem the user can fix: printed as one line, exit code 1. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

export interface RuntimeOptions {
  env?: NodeJS.ProcessEnv;
  /** Node-RED's own log level (default: info; tests use warn). */
  logLevel?: string;
}

export interface RuntimeInfo {
  port: number;
  host: string;
  editorUrl: string;
  dashboardUrl: string;
  mqtt: { tcp?: string; ws: string; external?: string; note?: string };
  ari: { url: string; simulated: boolean };
  agi: { host: string; port: number };
  database: string;
  flowFile: string;
  dataDir: string;
  /** The editor login (or off); the banner prints a generated password once. */
  editor: EditorAuth;
  /** Non-loopback addresses and what authentication they lack (only with ALLOW_INSECURE=1). */
  bind: BindCheck;
}

export interface Runtime {
  info: RuntimeInfo;
  /**
   * Shutdown drain (before stop): no new calls; live calls get `timeoutMs` to finish, then a goodbye and
   * a hangup, and whatever is left after `graceMs` is hung up and recorded.
   */
  drain(o: { timeoutMs: number; graceMs?: number }): Promise<import('../campaign/control').DrainReport>;
  /** Stop flows (nodes close their sockets and timers), then the HTTP server, simulator and database. */
  stop(): Promise<void>;
}

interface Simulator {
  url: string;
  username: string;
  password: string;
  app: string;
  close(): Promise<void>;
}

const PACKAGE_ROOT = path.resolve(__dirname, '..', '..', '..');
const PACKAGE_NAME = 'node-red-contrib-ai-dialer';
/** Longest wait for the flows to start before the banner is printed anyway. */
const FLOWS_START_WAIT_MS = 30000;

function checkUrl(name: string, value: string | undefined, protocols: string[]): void {
  if (!value) return;
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new StartupError(`${name} is not a valid URL: "${redactUrl(value)}"`);
  }
  if (!protocols.includes(u.protocol)) {
    throw new StartupError(
      `${name} must start with ${protocols.map((p) => p + '//').join(' or ')} (got ${u.protocol}//)`,
    );
  }
}

function startupCheck<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new StartupError((err as Error).message);
  }
}

/**
 * `port`, or when it is 0 a port on `host` free a moment ago (the listen error, e.g. a bad address, as a
 * start-up error). Only for the MQTT and FastAGI ports: the nodes that bind them take the number from their
 * settings (Node-RED config, handed over before they start) and the built-in simulator dials it, so it must
 * be known before they bind; the window is inside this start-up, not across processes. HTTP binds 0 itself.
 */
async function anyFree(port: number, host: string): Promise<number> {
  if (port !== 0) return port;
  return freePort(host).catch((err: Error) => {
    throw new StartupError(`cannot listen on ${host}: ${err.message}`);
  });
}

function portTakenMessage(name: string, port: number, hint: string): string {
  return `${name} port ${port} is already in use. ${hint}`;
}

/** Make this package visible to Node-RED as an installed module in userDir/node_modules. */
function linkPackage(userDir: string): void {
  const modDir = path.join(userDir, 'node_modules');
  fs.mkdirSync(modDir, { recursive: true });
  const link = path.join(modDir, PACKAGE_NAME);
  try {
    const cur = fs.readlinkSync(link);
    if (path.resolve(modDir, cur) === PACKAGE_ROOT) return;
    fs.unlinkSync(link);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') return; // a real install is there: use it
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  fs.symlinkSync(PACKAGE_ROOT, link, 'dir');
  const pkg = path.join(userDir, 'package.json');
  if (!fs.existsSync(pkg)) {
    fs.writeFileSync(
      pkg,
      JSON.stringify(
        { name: 'ai-dialer-runtime', private: true, dependencies: { [PACKAGE_NAME]: 'file:' + PACKAGE_ROOT } },
        null,
        2,
      ) + '\n',
    );
  }
}

/** The flow file: DATA_DIR/flows.json, seeded from the shipped flow on first start. */
function prepareFlowFile(env: NodeJS.ProcessEnv, dir: string): { file: string; seeded: boolean } {
  if (env.FLOW_FILE) return { file: path.resolve(env.FLOW_FILE), seeded: false };
  const file = path.join(dir, 'flows.json');
  if (fs.existsSync(file)) return { file, seeded: false };
  const shipped = path.join(PACKAGE_ROOT, 'flows', 'ai-dialer.json');
  fs.copyFileSync(shipped, file);
  return { file, seeded: true };
}

export async function startRuntime(opts: RuntimeOptions = {}): Promise<Runtime> {
  const env = opts.env ?? process.env;

  // Validate settings before touching anything.
  const host = env.HOST || '127.0.0.1';
  const agiHost = env.AGI_HOST || '127.0.0.1';
  const ports = {
    http: startupCheck(() => portFrom(env, 'PORT', 1880)),
    mqtt: startupCheck(() => portFrom(env, 'MQTT_PORT', 1883)),
    agi: startupCheck(() => portFrom(env, 'AGI_PORT', 4573)),
  };
  const heapFlag = startupCheck(() => heapGrowingFlag(env));
  checkUrl('DATABASE_URL', env.DATABASE_URL, ['postgres:', 'postgresql:']);
  checkUrl('MQTT_URL', env.MQTT_URL, ['mqtt:', 'mqtts:', 'ws:', 'wss:', 'tcp:']);
  checkUrl('ARI_URL', env.ARI_URL, ['http:', 'https:']);
  const simSettings = env.ARI_URL ? {} : simulatorSettingsFromEnv(env);
  // A non-loopback address without authentication: one line naming what is missing (docs/operations/security.md).
  const bind = checkBind(env);
  if (bind.missing.length && !bind.insecure) throw new StartupError(bindRefusal(bind));
  // Port 0 means "any free one". HTTP is bound as 0 and read back (below, before Node-RED starts). The MQTT and
  // FastAGI ports are chosen here, because the nodes that bind them are handed the number in their settings
  // (settings.aiDialer) and the simulator dials it: a short window inside this process (see anyFree).
  const mqttPort = await anyFree(ports.mqtt, '0.0.0.0');
  const agiPort = await anyFree(ports.agi, agiHost);

  // the heap's growth between full collections (src/runtime/heap.ts): set before the load comes
  if (heapFlag) v8.setFlagsFromString(heapFlag);
  const dir = dataDirFrom(env);
  fs.mkdirSync(dir, { recursive: true });
  // What the nodes' "from environment" modes use: handed to Node-RED as settings.aiDialer (the
  // nodes read RED.settings.aiDialer, with the environment as the fallback); env is never written.
  const aiDialer: DialerSettings = {
    dataDir: dir,
    startSimulator: async (o) => (await import('../sim/index')).startSimulator(o),
    // The HTTP API and dashboard follow API_TOKEN / API_READ_TOKEN here, not the editor login
    // (docs/operations/security.md#http-api-and-dashboard); a stock Node-RED's adminAuth is followed.
    followAdminAuth: false,
    mqttPort,
    agiPort,
    // the shipped flow streams (AudioSocket) wherever Asterisk can, else records, call by call
    mediaMode: env.MEDIA_MODE || 'auto',
  };

  await checkPortFree(ports.http, host).catch((err: NodeJS.ErrnoException) => {
    throw new StartupError(
      err.code === 'EADDRINUSE'
        ? portTakenMessage(
            'HTTP',
            ports.http,
            'Is another Node-RED running? Set PORT to a free port, e.g. PORT=1881 npm start.',
          )
        : `cannot listen on ${host}:${ports.http}: ${err.message}`,
    );
  });
  await checkPortFree(agiPort, agiHost).catch((err: NodeJS.ErrnoException) => {
    throw new StartupError(
      err.code === 'EADDRINUSE'
        ? portTakenMessage('FastAGI', agiPort, 'Set AGI_PORT to a free port.')
        : `cannot listen for FastAGI on ${agiHost}:${agiPort}: ${err.message}`,
    );
  });

  const editor = startupCheck(() => editorAuthFromEnv(env, dir));
  // A password generated now is shown only by the banner: a start that fails forgets it (next start makes a new one).
  const forgetGenerated = () => {
    if (editor.generatedPassword && editor.file) fs.rmSync(editor.file, { force: true });
  };

  const mqtt: RuntimeInfo['mqtt'] = { ws: '' }; // the URL once HTTP is bound
  if (env.MQTT_URL) {
    mqtt.external = redactUrl(env.MQTT_URL);
  } else {
    const free = await checkPortFree(mqttPort, '0.0.0.0').then(
      () => true,
      () => false,
    );
    if (free) {
      mqtt.tcp = `mqtt://${displayHost(host)}:${mqttPort}`;
    } else {
      mqtt.note = mqttPortTakenNote(mqttPort);
      aiDialer.mqttTcp = false;
    }
  }

  // Database: open (and migrate) now, so an unreachable server is one clear line at start-up.
  const storeOpts = storeOptionsFromEnv(env);
  let db: Db;
  try {
    db = await acquireDb({ ...storeOpts, pglite: 'worker' }); // no SQL statement holds the event loop (issue 11)
  } catch (err) {
    forgetGenerated();
    throw new StartupError((err as Error).message);
  }
  outboxFor(db); // writes a previous run could not store (database down when it ended) are replayed now

  let sim: Simulator | undefined;
  let unprobe: (() => void) | undefined;
  let server: http.Server | undefined;
  let RED: typeof import('node-red') | undefined;
  const cleanup = async () => {
    if (RED) await RED.stop().catch(() => undefined);
    // the live monitor's WebSockets (1001 to each): an open one would keep server.close() waiting
    await closeAllLive();
    // what the nodes kept for a redeploy (database, bus, ARI, FastAGI) is released now
    await disposeParked();
    if (server) await new Promise<void>((r) => server!.close(() => r()));
    if (sim) await sim.close().catch(() => undefined);
    unprobe?.();
    await releaseDb(storeOpts).catch(() => undefined);
  };

  let port = ports.http;
  try {
    // HTTP bound first, as 0 when PORT=0, and the port read back: the banner and Node-RED's uiPort use it.
    // Requests before Node-RED's routes are mounted get express's 404.
    const { default: express } = await import('express');
    const app = express();
    server = http.createServer(app);
    await new Promise<void>((resolve, reject) => {
      server!.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new StartupError(
            err.code === 'EADDRINUSE' ? portTakenMessage('HTTP', port, 'Set PORT to a free port.') : err.message,
          ),
        ),
      );
      server!.listen(port, host, () => resolve());
    });
    port = (server.address() as AddressInfo).port;
    mqtt.ws = `ws://${displayHost(host)}:${port}/mqtt`;

    // Telephony: the built-in Asterisk simulator unless ARI_URL points at a real Asterisk.
    if (!env.ARI_URL) {
      const { startSimulator } = await import('../sim/index');
      // bound as 0 and read back (started.url): no window for another process to take it
      const simPort = env.SIM_PORT ? portFrom(env, 'SIM_PORT', 0) : 0;
      const started = await startSimulator({
        ...simSettings,
        port: simPort,
        host: '127.0.0.1',
        agiHost: agiHost === '0.0.0.0' ? '127.0.0.1' : agiHost,
        agiPort,
        app: env.ARI_APP || 'ai-dialer',
        agiSecret: env.AGI_SECRET,
        recordingsRoot: path.join(dir, 'recordings'),
      });
      sim = started;
      unprobe = registerHealthProbe('simulatedChannels', () => started.channels().length);
      aiDialer.ari = { url: started.url, username: started.username, password: started.password, app: started.app };
      aiDialer.simulated = true;
      await ensureDemoCampaign(db);
    }

    const userDir = path.join(dir, 'node-red');
    fs.mkdirSync(userDir, { recursive: true });
    linkPackage(userDir);
    const flow = prepareFlowFile(env, dir);

    const credentialSecret = env.NODE_RED_CREDENTIAL_SECRET || credentialSecretFile(dir);
    seedCredentials(userDir, flow.file, credentialSecret); // no false "Encrypted credentials not found"
    RED = (await import('node-red')).default;
    const settings = {
      userDir,
      flowFile: flow.file,
      flowFilePretty: true,
      uiPort: port,
      uiHost: host,
      // The editor is never open: a login always (adminAuth), or no editor and no admin API at all.
      httpAdminRoot: editor.enabled ? '/' : (false as const),
      ...(editor.adminAuth ? { adminAuth: editor.adminAuth } : {}),
      httpNodeRoot: '/',
      credentialSecret,
      logging: { console: { level: opts.logLevel ?? env.LOG_LEVEL ?? 'info', metrics: false, audit: false } },
      editorTheme: { projects: { enabled: false }, tours: false, header: { title: 'AI dialer' } },
      externalModules: { autoInstall: false, palette: { allowInstall: false } },
      // no update-check prompt and nothing sent anywhere: the runtime must work offline
      telemetry: { enabled: false },
      aiDialer,
    };
    RED.init(server, settings as never);
    // Node-RED's admin API answers every route with Access-Control-Allow-Origin: * (hard-coded): drop it.
    app.use(dropWildcardCors);
    if (settings.httpAdminRoot !== false) app.use(settings.httpAdminRoot, RED.httpAdmin);
    app.use(settings.httpNodeRoot, RED.httpNode);
    // RED.start() resolves before the flows run (Node-RED loads and starts them afterwards): wait for
    // them, so the HTTP API and FastAGI are up when the banner says so. Flows that cannot start
    // (e.g. missing node types) never report started: go on after a while, Node-RED logs why.
    const flowsStarted = new Promise<void>((resolve) => {
      const t = setTimeout(resolve, FLOWS_START_WAIT_MS);
      t.unref();
      RED!.events.once('flows:started', () => {
        clearTimeout(t);
        resolve();
      });
    });
    await RED.start();
    await flowsStarted;

    const base = `http://${displayHost(host)}:${port}`;
    const info: RuntimeInfo = {
      port,
      host,
      editorUrl: `${base}/`,
      dashboardUrl: `${base}/dialer`,
      mqtt,
      ari: { url: sim ? sim.url : redactUrl(env.ARI_URL as string), simulated: !!sim },
      agi: { host: agiHost, port: agiPort },
      database: db.description,
      flowFile: flow.file + (flow.seeded ? ' (copied from flows/ai-dialer.json)' : ''),
      dataDir: dir,
      editor,
      bind,
    };
    return {
      info,
      drain: (o) => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const { drainAll } = require('../campaign/control') as typeof import('../campaign/control');
        return drainAll(o);
      },
      stop: async () => {
        await cleanup();
      },
    };
  } catch (err) {
    await cleanup();
    forgetGenerated();
    throw err instanceof StartupError ? err : new StartupError((err as Error).message);
  }
}

/**
 * The simulator's optional settings: SIM_SPEED (time factor, e.g. 10 makes rings and speech ten times
 * shorter) and SIM_PERSONAS (a JSON file mapping phone numbers to personas, see src/sim/persona.ts;
 * numbers without one follow the demo personas).
 */
export function simulatorSettingsFromEnv(env: NodeJS.ProcessEnv): {
  speed?: number;
  personas?: Record<string, Persona>;
} {
  const out: { speed?: number; personas?: Record<string, Persona> } = {};
  if (env.SIM_SPEED !== undefined && env.SIM_SPEED !== '') {
    const v = Number(env.SIM_SPEED);
    if (!Number.isFinite(v) || v <= 0 || v > 1000)
      throw new StartupError(`SIM_SPEED must be a number above 0 and at most 1000 (got "${env.SIM_SPEED}")`);
    out.speed = v;
  }
  if (env.SIM_PERSONAS) {
    let text: string;
    try {
      text = fs.readFileSync(path.resolve(env.SIM_PERSONAS), 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new StartupError(
        `SIM_PERSONAS: cannot read ${env.SIM_PERSONAS} (${e.code === 'ENOENT' ? 'no such file' : (e.code ?? e.message)})`,
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new StartupError(`SIM_PERSONAS: ${env.SIM_PERSONAS} is not valid JSON: ${(err as Error).message}`);
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new StartupError(`SIM_PERSONAS: ${env.SIM_PERSONAS} must hold a JSON object of phone number -> persona`);
    }
    out.personas = parsed as Record<string, Persona>;
  }
  return out;
}

/** A per-installation key for Node-RED's credential encryption, kept in DATA_DIR (mode 600). */
function credentialSecretFile(dir: string): string {
  const file = path.join(dir, '.credential-secret');
  if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
  const secret = randomBytes(24).toString('hex');
  fs.writeFileSync(file, secret + '\n', { mode: 0o600 });
  return secret;
}

function displayHost(host: string): string {
  return host === '0.0.0.0' || host === '::' ? 'localhost' : host;
}

export function banner(info: RuntimeInfo): string[] {
  const lines = [
    '',
    'AI dialer is running',
    ...(info.editor.enabled ? [`  Editor (Node-RED):  ${info.editorUrl}`] : []),
    ...editorBannerLines(info.editor, info.dataDir),
    `  Dashboard:          ${info.dashboardUrl}`,
  ];
  if (info.mqtt.external) lines.push(`  MQTT (external):    ${info.mqtt.external}`);
  else {
    if (info.mqtt.tcp) lines.push(`  MQTT (TCP):         ${info.mqtt.tcp}`);
    lines.push(`  MQTT (WebSocket):   ${info.mqtt.ws}`);
  }
  lines.push(`  FastAGI:            agi://${info.agi.host}:${info.agi.port}`);
  lines.push(
    // with /ari: the URL ARI answers on (ARI_URL accepts it with or without)
    `  Asterisk ARI:       ${info.ari.url.replace(/\/+$/, '').replace(/(?<!\/ari)$/, '/ari')}${info.ari.simulated ? '  (built-in simulator: simulated callees, set ARI_URL for a real Asterisk)' : ''}`,
  );
  lines.push(`  Database:           ${info.database}`);
  lines.push(`  Flow file:          ${info.flowFile}`);
  if (info.mqtt.note) lines.push('', `Note: ${info.mqtt.note}`);
  lines.push(...insecureBannerLines(info.bind));
  lines.push('', 'Press Ctrl-C to stop.');
  return lines;
}

/** CLI entry: start, print where everything is, stop cleanly on SIGINT/SIGTERM. */
export async function main(): Promise<void> {
  let rt: Runtime;
  try {
    rt = await startRuntime();
  } catch (err) {
    const e = err as Error;
    console.error(`ai-dialer: ${e instanceof StartupError || !process.env.DEBUG ? e.message : e.stack}`);
    process.exit(1);
  }
  for (const l of banner(rt.info)) console.log(l);
  let stopping = false;
  const drainMs = parseDurationMs(process.env.DRAIN_TIMEOUT, 30_000);
  const graceMs = 25_000; // DRAIN_GRACE_MS: the command in flight (a RECORD up to 20 s), then the goodbye
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(
      `\n${signal}: stopping: no new calls; live calls get up to ${Math.round(drainMs / 1000)} s to finish (DRAIN_TIMEOUT)...`,
    );
    const limit = drainMs + graceMs + 15_000; // under compose's stop_grace_period (75 s) with the defaults
    const force = setTimeout(() => {
      console.error(`ai-dialer: shutdown took longer than ${Math.round(limit / 1000)} s; exiting`);
      process.exit(1);
    }, limit);
    force.unref();
    rt.drain({ timeoutMs: drainMs, graceMs })
      .then(
        (r) => {
          if (r.live)
            console.log(
              `drained ${r.live} live call(s): ${r.finished} finished, ${r.ended} ended with a goodbye, ${r.forced} hung up and recorded`,
            );
        },
        (err: Error) => console.error(`ai-dialer: drain: ${err.message}`),
      )
      .then(() => rt.stop())
      .then(
        () => {
          console.log('stopped');
          process.exit(0);
        },
        (err: Error) => {
          console.error(`ai-dialer: error while stopping: ${err.message}`);
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // Started through a shell that was killed (e.g. `npm start` without exec): the parent is gone, so a
  // supervisor's SIGTERM never reached us. Stop the same way instead of holding the ports as an orphan.
  const parent = process.ppid;
  if (parent > 1) {
    const watch = setInterval(() => {
      if (process.ppid !== parent) {
        clearInterval(watch);
        stop('parent process exited');
      }
    }, 1000);
    watch.unref();
  }
}
