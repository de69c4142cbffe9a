/**
 * The dialer as a user runs it (`node scripts/start.js`), as a child process with its own DATA_DIR and
 * free ports, plus the small HTTP client the end-to-end tests talk to it with.
 */
import { spawn, type ChildProcess } from 'child_process';
import path from 'path';
import { waitFor } from '../helpers/wait';

const ROOT = path.resolve(__dirname, '..', '..');

/** Settings that would change what the runtime does if inherited from the test's environment. */
const INHERITED = [
  'DATABASE_URL', 'MQTT_URL', 'ARI_URL', 'ARI_USERNAME', 'ARI_PASSWORD', 'ARI_APP', 'NODE_OPTIONS', 'API_TOKEN', 'AGI_SECRET',
  'LLM_ENGINE', 'LLM_BASE_URL', 'LLM_MODEL', 'LLM_API_KEY', 'STT_ENGINE', 'TTS_ENGINE', 'TTS_VOICE', 'DIAL_ENDPOINT',
  'SIM_SPEED', 'SIM_PERSONAS', 'SIM_PORT', 'FLOW_FILE', 'MQTT_WRITER_USER', 'MQTT_READER_USER', 'MQTT_TCP_DISABLED', 'GLOBAL_CPS',
];

export interface Dialer {
  child: ChildProcess;
  base: string;
  /** Everything the process printed so far (stdout and stderr). */
  out(): string;
  exited: Promise<number | null>;
  get<T = any>(p: string): Promise<T>;
  post<T = any>(p: string, body: unknown, type?: string): Promise<{ status: number; body: T }>;
}

export class StartFailed extends Error {
  constructor(readonly code: number | null, readonly output: string) {
    super(`the runtime exited with code ${code}: ${output.trim()}`);
  }
}

export async function startDialer(env: Record<string, string>, startMs = 120000): Promise<Dialer> {
  const clean: NodeJS.ProcessEnv = { ...process.env };
  for (const k of INHERITED) delete clean[k];
  const child = spawn(process.execPath, [path.join(ROOT, 'scripts', 'start.js')], {
    cwd: ROOT,
    env: { ...clean, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const base = `http://127.0.0.1:${env.PORT}`;
  // Up when the banner is printed; a start-up failure is the exit code and what it printed.
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  await waitFor(() => out.includes('Press Ctrl-C to stop.') || exitCode !== undefined, startMs, 'the runtime banner', 100);
  if (exitCode !== undefined) throw new StartFailed(exitCode, out);
  const get = async (p: string) => {
    const res = await fetch(base + p, { headers: { Accept: 'application/json' } });
    const text = await res.text();
    if (!res.ok) throw new Error(`GET ${p}: ${res.status} ${text}`);
    return JSON.parse(text);
  };
  const post = async (p: string, body: unknown, type = 'application/json') => {
    const res = await fetch(base + p, {
      method: 'POST',
      headers: { 'Content-Type': type, Accept: 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  return { child, base, out: () => out, exited, get, post };
}

/** SIGTERM, then the exit code (null if it did not exit within `ms`; then it is killed). */
export async function stopDialer(d: Dialer, ms = 20000): Promise<number | null> {
  if (d.child.exitCode !== null) return d.child.exitCode;
  d.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([d.exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)))]);
  clearTimeout(timer);
  if (code === 'timeout') {
    d.child.kill('SIGKILL');
    await d.exited;
    return null;
  }
  return code;
}
