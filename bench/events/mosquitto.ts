/**
 * A Mosquitto of the bench's own (not the system broker on 1883): the `mosquitto` binary with a
 * config of its own in a temporary directory, on a loopback port it binds itself. Mosquitto cannot
 * listen on port 0 (that means a Unix socket to it), so a random high port is tried and, when Mosquitto
 * reports it taken, another one: the port is never probed first and bound later.
 */
import { spawn, type ChildProcess } from 'child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import * as os from 'os';
import * as path from 'path';

export interface RunningMosquitto {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export function mosquittoBinary(): string {
  return process.env.MOSQUITTO_BIN || 'mosquitto';
}

function once(bin: string, dir: string, port: number): Promise<RunningMosquitto | 'taken'> {
  const conf = path.join(dir, `mosquitto-${port}.conf`);
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      // Mosquitto's default queue limit (1,000 per client) would drop QoS 1 events of a subscriber that
      // falls behind for a second on a loaded machine: the bench counts every event, so no limit
      'max_queued_messages 0',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      'log_dest stderr',
      '',
    ].join('\n'),
  );
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    let settled = false;
    const settle = (v: RunningMosquitto | 'taken' | Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (v instanceof Error) reject(v);
      else resolve(v);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      settle(new Error(`mosquitto did not start within 10 s: ${log.trim()}`));
    }, 10000);
    child.on('error', (err) => settle(new Error(`mosquitto: ${err.message}`)));
    child.on('exit', (code) =>
      settle(/in use/i.test(log) ? 'taken' : new Error(`mosquitto exited (${code}): ${log.trim()}`)),
    );
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      log += d;
      if (/Opening ipv4 listen socket on port/.test(log) && /running/.test(log)) {
        settle({
          url: `mqtt://127.0.0.1:${port}`,
          pid: child.pid!,
          stop: () =>
            new Promise<void>((r) => {
              if (child.exitCode !== null) return r();
              child.once('exit', () => r());
              child.kill('SIGTERM');
            }),
        });
      }
    });
  });
}

/** Start a Mosquitto on a port of its own; rejects when the binary is missing. */
export async function startMosquitto(): Promise<RunningMosquitto> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-mosquitto-'));
  try {
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = 20000 + Math.floor(Math.random() * 30000);
      const r = await once(mosquittoBinary(), dir, port);
      if (r !== 'taken') return r;
    }
    throw new Error('mosquitto: 20 random ports were taken');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
