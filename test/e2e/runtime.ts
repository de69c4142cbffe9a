/**
 * The dialer as a user runs it (`node scripts/start.js`), as a child process with its own DATA_DIR and
 * free ports, plus the small HTTP client the end-to-end tests talk to it with.
 */
import type { ChildProcess } from 'child_process';
import { spawnStart, waitForBanner, StartFailed, type BoundPorts } from '../helpers/start';

export { StartFailed };

export interface Dialer {
  child: ChildProcess;
  base: string;
  /** The ports it bound (start it with PORT=0 etc.: read back from its banner). */
  ports: BoundPorts;
  /** Everything the process printed so far (stdout and stderr). */
  out(): string;
  exited: Promise<number | null>;
  get<T = any>(p: string): Promise<T>;
  post<T = any>(p: string, body: unknown, type?: string): Promise<{ status: number; body: T }>;
}

export async function startDialer(env: Record<string, string>, startMs = 120000): Promise<Dialer> {
  const started = spawnStart(env);
  const { child, out, exited } = started;
  let ports: Awaited<ReturnType<typeof waitForBanner>>;
  try {
    ports = await waitForBanner(started, startMs);
  } catch (err) {
    child.kill('SIGKILL'); // not started in time: leave no runtime behind
    throw err;
  }
  const base = `http://127.0.0.1:${ports.http}`;
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
  return { child, base, ports, out, exited, get, post };
}

/** SIGTERM, then the exit code (null if it did not exit within `ms`; then it is killed). */
export async function stopDialer(d: Dialer, ms = 20000): Promise<number | null> {
  if (d.child.exitCode !== null) return d.child.exitCode;
  d.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    d.exited,
    new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms))),
  ]);
  clearTimeout(timer);
  if (code === 'timeout') {
    d.child.kill('SIGKILL');
    await d.exited;
    return null;
  }
  return code;
}
