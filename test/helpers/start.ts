/**
 * `node scripts/start.js` as a child process, the way a user starts the dialer: settings that would
 * change what it does are not inherited from the test's environment, only `env` is given.
 */
import { spawn, type ChildProcess } from 'child_process';
import path from 'path';
import { waitFor } from './wait';

const ROOT = path.resolve(__dirname, '..', '..');

/** Settings that would change what the runtime does if inherited from the test's environment. */
const INHERITED = [
  'DATABASE_URL',
  'MQTT_URL',
  'MQTT_WS_URL',
  'ARI_URL',
  'ARI_USERNAME',
  'ARI_PASSWORD',
  'ARI_APP',
  'NODE_OPTIONS',
  'API_TOKEN',
  'API_READ_TOKEN',
  'API_ALLOWED_ORIGINS',
  'API_MAX_UPLOAD_MB',
  'AGI_SECRET',
  'LLM_ENGINE',
  'LLM_BASE_URL',
  'LLM_MODEL',
  'LLM_API_KEY',
  'STT_ENGINE',
  'TTS_ENGINE',
  'TTS_VOICE',
  'DIAL_ENDPOINT',
  'SIM_SPEED',
  'SIM_PERSONAS',
  'SIM_PORT',
  'FLOW_FILE',
  'MQTT_WRITER_USER',
  'MQTT_READER_USER',
  'MQTT_TCP_DISABLED',
  'GLOBAL_CPS',
  'DRAIN_TIMEOUT',
  'LEASE_TTL',
  'HOST',
  'AGI_HOST',
  'AGI_ADVERTISE',
  'WORKER_NAME',
  'MQTT_HOST',
  'MQTT_WRITER_PASSWORD',
  'MQTT_READER_PASSWORD',
  'MQTT_WS_ORIGINS',
  'EDITOR',
  'EDITOR_USER',
  'EDITOR_PASSWORD',
  'EDITOR_PASSWORD_HASH',
  'ALLOW_INSECURE',
];

export interface Started {
  child: ChildProcess;
  /** Everything the process printed so far (stdout and stderr). */
  out(): string;
  exited: Promise<number | null>;
}

export function spawnStart(env: Record<string, string>, o: { npm?: boolean } = {}): Started {
  const clean: NodeJS.ProcessEnv = { ...process.env };
  for (const k of INHERITED) delete clean[k];
  for (const k of Object.keys(clean)) if (k.startsWith('npm_')) delete clean[k]; // a clean `npm start`
  // `npm start` itself (a supervisor's SIGTERM goes to the npm pid), or the script directly
  const [cmd, args] = o.npm
    ? ['npm', ['start', '--silent']]
    : [process.execPath, [path.join(ROOT, 'scripts', 'start.js')]];
  const child = spawn(cmd, args, {
    cwd: ROOT,
    // MEDIA_MODE: record unless a test asks for stream (`npm start` defaults to auto: the simulator then
    // streams in real time, which suites written for record mode at SIM_SPEED do not expect)
    env: { ...clean, LOG_LEVEL: 'warn', MEDIA_MODE: 'record', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, out: () => out, exited };
}

/** The ports the runtime bound, as its banner prints them (start it with PORT=0 etc. and read them here). */
export interface BoundPorts {
  /** HTTP: editor, API, dashboard. */
  http: number;
  /** The embedded broker's MQTT over TCP (none with an external broker or MQTT_TCP_DISABLED). */
  mqtt?: number;
  agi: number;
}

/** Every port of the runtime as 0 (any free one): read the ports bound back with waitForBanner. */
export const ANY_PORTS = { PORT: '0', MQTT_PORT: '0', AGI_PORT: '0' };

/** The bound ports under their environment names (for tests that keep them that way). */
export function portEnv(b: BoundPorts): { PORT: string; MQTT_PORT: string; AGI_PORT: string } {
  return { PORT: String(b.http), MQTT_PORT: String(b.mqtt ?? 0), AGI_PORT: String(b.agi) };
}

/** The bound ports in a banner's text. */
export function bannerPorts(out: string): BoundPorts {
  const port = (re: RegExp, what: string): number => {
    const m = re.exec(out);
    if (!m) throw new Error(`no ${what} in the banner:\n${out}`);
    return Number(m[1]);
  };
  return {
    http: port(/^ {2}Dashboard: +https?:\/\/[^:/\s]+:(\d+)\//m, 'dashboard URL'),
    mqtt: /^ {2}MQTT \(TCP\):/m.test(out)
      ? port(/^ {2}MQTT \(TCP\): +mqtt:\/\/[^:/\s]+:(\d+)/m, 'MQTT port')
      : undefined,
    agi: port(/^ {2}FastAGI: +agi:\/\/[^:/\s]+:(\d+)/m, 'FastAGI port'),
  };
}

/**
 * Resolve once the banner is printed, with the ports it names; reject with what it printed if it exits
 * first.
 */
export async function waitForBanner(s: Started, ms: number): Promise<BoundPorts> {
  let exitCode: number | null | undefined;
  void s.exited.then((code) => (exitCode = code));
  await waitFor(
    () => s.out().includes('Press Ctrl-C to stop.') || exitCode !== undefined,
    ms,
    'the runtime banner',
    100,
  );
  if (exitCode !== undefined) throw new StartFailed(exitCode, s.out());
  return bannerPorts(s.out());
}

export class StartFailed extends Error {
  constructor(
    readonly code: number | null,
    readonly output: string,
  ) {
    super(`the runtime exited with code ${code}: ${output.trim()}`);
  }
}
