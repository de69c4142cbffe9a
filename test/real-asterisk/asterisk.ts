/**
 * A real Asterisk for the suites in this folder: the packaged Asterisk 22.10.1 started by
 * `run-asterisk` (from `<repo>/../shared/asterisk/`, or ASTERISK_RUN) with the SHIPPED asterisk-config/
 * rendered by deploy/asterisk/entrypoint.sh into a temp CONFDIR on free ports; or the user's own
 * Asterisk (REAL_ASTERISK=external with ARI_URL / ARI_USERNAME / ARI_PASSWORD, see
 * docs/contributing/testing.md).
 *
 * Whether to run: locally a missing run-asterisk skips with a note; under CI=true a present
 * shared/asterisk directory whose Asterisk cannot start fails the suite; no directory under CI skips
 * with a visible note (CI runs the suite "when that directory exists").
 */
import dgram from 'dgram';
import fs from 'fs';
import net from 'net';
import os from 'os';
import path from 'path';
import { spawn, spawnSync } from 'child_process';
import { randomBytes } from 'crypto';
import { isCi, requireTool } from '../helpers/tools';
import { waitFor } from '../helpers/wait';
import { AriConnection } from '../../src/ari/client';
import { CallTracker, type CallOutcome } from '../../src/ari/calls';
import { AgiServer } from '../../src/agi/server';
import type { FastAgiSession } from '../../src/agi/session';
import { encodeWav, toAsteriskWav } from '../../src/audio/wav';

export const ROOT = path.resolve(__dirname, '..', '..');
export const SHARED_DIR = path.resolve(ROOT, '..', 'shared', 'asterisk');
export const RUN_ASTERISK = process.env.ASTERISK_RUN || path.join(SHARED_DIR, 'run-asterisk');
export const EXTERNAL = process.env.REAL_ASTERISK === 'external';

/** 'run' | 'skip' with the reason printed; throws under CI when it must run and cannot. */
export function realAsteriskMode(): { run: boolean; why?: string } {
  if (EXTERNAL) {
    for (const v of ['ARI_URL', 'ARI_USERNAME', 'ARI_PASSWORD'])
      if (!process.env[v]) throw new Error(`REAL_ASTERISK=external needs ${v}`);
    return { run: true };
  }
  const present = fs.existsSync(RUN_ASTERISK);
  if (!present) {
    const why = `real Asterisk: ${RUN_ASTERISK} not found (set ASTERISK_RUN, or REAL_ASTERISK=external with ARI_URL/ARI_USERNAME/ARI_PASSWORD)`;
    // CI runs this suite when ../shared/asterisk exists; without it the skip is visible, not silent.
    process.stderr.write(`SKIPPED (real Asterisk): ${why}${isCi() ? ' [CI: directory absent]' : ''}\n`);
    return { run: false, why };
  }
  const deps = spawnSync(RUN_ASTERISK, ['deps'], { encoding: 'utf8' });
  if (deps.status !== 0) {
    const why = `run-asterisk deps: ${(deps.stdout + deps.stderr).trim()}`;
    if (isCi()) throw new Error(`CI=true and the real Asterisk cannot start: ${why}`);
    process.stderr.write(`SKIPPED (real Asterisk): ${why}\n`);
    return { run: false, why };
  }
  return { run: true };
}

/**
 * `describe` for a suite on the packaged Asterisk (skipped, with the note realAsteriskMode prints, when it
 * cannot run, and for REAL_ASTERISK=external); `espeak`: the suite also needs espeak-ng for its callees.
 */
export function describeReal(needs: { espeak?: boolean } = {}): jest.Describe {
  const ok =
    realAsteriskMode().run &&
    !EXTERNAL &&
    (!needs.espeak || requireTool('espeak-ng', hasEspeak(), 'apt-get install espeak-ng'));
  return ok ? describe : describe.skip;
}

/** A loopback TCP server on port 0: the port stays taken until it is closed. */
function holdPort(): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((c) => c.destroy());
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

/**
 * A port free a moment ago. Only for Asterisk's own HTTP and SIP ports: it binds the ports its
 * configuration names (http.conf `bindport`, pjsip.conf transports) and has no "bind 0 and say which".
 * The dialplan's AGI port is held bound (holdPort) until our FastAGI server takes it. Every server this
 * suite starts in-process binds 0 and reads the port back.
 */
export function freePort(udp = false): Promise<number> {
  if (udp) {
    // A UDP port that is free now; PJSIP binds UDP and TCP on the same number, so check both.
    return freePort().then(
      (p) =>
        new Promise<number>((resolve, reject) => {
          const s = dgram.createSocket('udp4');
          s.once('error', () => freePort(true).then(resolve, reject));
          s.bind(p, '127.0.0.1', () => s.close(() => resolve(p)));
        }),
    );
  }
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export interface Instance {
  confDir: string;
  stateDir: string;
  ariUrl: string;
  ariUser: string;
  ariPassword: string;
  sipPort: number;
  agiPort: number;
  agiSecret: string;
  /** Let go of the AGI port (held since the start) just before our FastAGI server binds it. */
  releaseAgiPort(): Promise<void>;
  /** Extra files (callee dialplan, audio) live here. */
  workDir: string;
  cli(cmd: string): string;
  /** Console output (STATE/asterisk.out). */
  output(): string;
  stop(): void;
}

export interface StartOptions {
  /** Dialplan appended through `#include extensions-test.conf` (a test-only file, never shipped). */
  testDialplan?: string;
  /** Extra `load = x.so` lines for test-only applications. */
  testModules?: string[];
  /** Extra env for the entrypoint (trunk settings). */
  env?: Record<string, string>;
  /** Extra env for Asterisk itself (what the container gives it at run time, e.g. RECORDINGS_DIR). */
  asteriskEnv?: Record<string, string>;
}

/**
 * Render the shipped asterisk-config/ with deploy/asterisk/entrypoint.sh into a temp CONFDIR (only its
 * RENDER_VARS are substituted), move HTTP to a free loopback port, add the test dialplan, start.
 */
export async function startShipped(o: StartOptions = {}): Promise<Instance> {
  // Short base: the control socket path must stay under 100 characters.
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ra-'));
  const confDir = path.join(workDir, 'etc');
  const stateDir = path.join(workDir, 'st');
  const spool = path.join(workDir, 'spool');
  fs.mkdirSync(confDir);
  // the AGI port is held (bound) from now until our FastAGI server takes it (startDialerSide): nothing
  // else on the machine can take it while Asterisk starts
  const agiHold = await holdPort();
  const [httpPort, sipPort, agiPort, rtpBase] = [
    await freePort(),
    o.env?.SIP_PORT ? Number(o.env.SIP_PORT) : await freePort(true),
    (agiHold.address() as net.AddressInfo).port,
    20000 + Math.floor(Math.random() * 400) * 100,
  ];
  const ariUser = 'dialer';
  const ariPassword = randomBytes(9).toString('hex');
  const agiSecret = randomBytes(12).toString('hex');
  const entry = spawnSync('bash', [path.join(ROOT, 'deploy', 'asterisk', 'entrypoint.sh'), 'true'], {
    env: {
      PATH: process.env.PATH as string,
      ASTERISK_CONFIG_SRC: path.join(ROOT, 'asterisk-config'),
      ASTERISK_CONFIG_DIR: confDir,
      ASTERISK_SPOOL_DIR: spool,
      ARI_USERNAME: ariUser,
      ARI_PASSWORD: ariPassword,
      TRUNK_HOST: '127.0.0.1',
      TRUNK_PORT: String(await freePort(true)),
      TRUNK_USERNAME: 'dialer-trunk',
      TRUNK_PASSWORD: randomBytes(6).toString('hex'),
      TRUNK_CALLER_ID: '+13125559001',
      EXTERNAL_IP: '127.0.0.1',
      LOCAL_NET: '127.0.0.0/8',
      SIP_PORT: String(sipPort),
      RTP_START: String(rtpBase),
      RTP_END: String(rtpBase + 98),
      ...o.env,
    },
    encoding: 'utf8',
  });
  if (entry.status !== 0) throw new Error(`entrypoint.sh failed: ${entry.stderr}`);
  // The only edits to the rendered files: HTTP on a free loopback port, and the test-only additions.
  const http = path.join(confDir, 'http.conf');
  fs.writeFileSync(
    http,
    fs
      .readFileSync(http, 'utf8')
      .replace(/^bindaddr\s*=.*$/m, 'bindaddr = 127.0.0.1')
      .replace(/^bindport\s*=.*$/m, `bindport = ${httpPort}`),
  );
  for (const f of ['pjsip.conf']) {
    // bind SIP to loopback only (the shipped 0.0.0.0 is for the container)
    const p = path.join(confDir, f);
    fs.writeFileSync(p, fs.readFileSync(p, 'utf8').replace(/^bind = 0\.0\.0\.0:/gm, 'bind = 127.0.0.1:'));
  }
  if (o.testDialplan) {
    fs.writeFileSync(path.join(confDir, 'extensions-test.conf'), o.testDialplan);
    fs.appendFileSync(path.join(confDir, 'extensions.conf'), '\n#include extensions-test.conf\n');
  }
  if (o.testModules?.length)
    fs.appendFileSync(path.join(confDir, 'modules.conf'), o.testModules.map((m) => `load = ${m}\n`).join(''));
  // What the container gives Asterisk at run time (docker-compose environment): the dialplan reads these.
  const env = {
    ...process.env,
    ASTERISK_STATE_DIR: stateDir,
    AGI_TARGET_HOST: '127.0.0.1',
    AGI_PORT: String(agiPort),
    AGI_SECRET: agiSecret,
    ...o.asteriskEnv,
  };
  const run = (args: string[]) => spawnSync(RUN_ASTERISK, args, { env, encoding: 'utf8', timeout: 120_000 });
  const output = (): string => {
    try {
      return fs.readFileSync(path.join(stateDir, 'asterisk.out'), 'utf8');
    } catch {
      return '';
    }
  };
  // started asynchronously, so two instances (dialer and provider) boot in parallel
  const started = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
    const p = spawn(RUN_ASTERISK, ['start', confDir], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.on('close', (status) => resolve({ status, stderr }));
  });
  let stopped = false;
  const inst: Instance = {
    confDir,
    stateDir,
    workDir,
    ariUrl: `http://127.0.0.1:${httpPort}`,
    ariUser,
    ariPassword,
    sipPort,
    agiPort,
    releaseAgiPort: () => (agiHold.listening ? new Promise<void>((r) => agiHold.close(() => r())) : Promise.resolve()),
    agiSecret,
    cli: (cmd) => {
      const r = run(['cli', confDir, cmd]);
      return r.stdout + r.stderr;
    },
    output,
    stop: () => {
      if (stopped) return;
      stopped = true;
      if (agiHold.listening) agiHold.close();
      run(['stop', confDir]);
      if (!process.env.KEEP_ASTERISK_STATE) fs.rmSync(workDir, { recursive: true, force: true });
    },
  };
  if (started.status !== 0) {
    const msg = `run-asterisk start failed (${started.status}): ${started.stderr.slice(-3000)}`;
    inst.stop();
    throw new Error(msg);
  }
  return inst;
}

/** A plain instance from the given files (the test SIP provider), under its own temp dir. */
export async function startPlain(files: Record<string, string>): Promise<Omit<Instance, 'ariUrl'>> {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rp-'));
  const confDir = path.join(workDir, 'etc');
  const stateDir = path.join(workDir, 'st');
  fs.mkdirSync(confDir);
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(confDir, f), text);
  const env = { ...process.env, ASTERISK_STATE_DIR: stateDir };
  const run = (args: string[]) => spawnSync(RUN_ASTERISK, args, { env, encoding: 'utf8', timeout: 120_000 });
  const started = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
    const p = spawn(RUN_ASTERISK, ['start', confDir], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.on('close', (status) => resolve({ status, stderr }));
  });
  let stopped = false;
  const inst = {
    confDir,
    stateDir,
    workDir,
    ariUser: '',
    ariPassword: '',
    sipPort: 0,
    agiPort: 0,
    agiSecret: '',
    releaseAgiPort: () => Promise.resolve(),
    cli: (cmd: string) => {
      const r = run(['cli', confDir, cmd]);
      return r.stdout + r.stderr;
    },
    output: () => {
      try {
        return fs.readFileSync(path.join(stateDir, 'asterisk.out'), 'utf8');
      } catch {
        return '';
      }
    },
    stop: () => {
      if (stopped) return;
      stopped = true;
      run(['stop', confDir]);
      if (!process.env.KEEP_ASTERISK_STATE) fs.rmSync(workDir, { recursive: true, force: true });
    },
  };
  if (started.status !== 0) {
    inst.stop();
    throw new Error(`run-asterisk start (provider) failed: ${started.stderr.slice(-3000)}`);
  }
  return inst;
}

/** ERROR / WARNING lines of a console output. */
export function problems(out: string): string[] {
  return out.split('\n').filter((l) => /\b(ERROR|WARNING)\[/.test(l));
}

/**
 * The dialer's side of a suite: our FastAGI server on the instance's AGI port and secret, the ARI
 * connection and a call tracker dialling `endpointTemplate`; every outcome but `answered` is collected.
 * Each FastAGI session runs `side.onSession` (a test sets it before it originates).
 */
export interface DialerSide {
  agi: AgiServer;
  conn: AriConnection;
  tracker: CallTracker;
  outcomes: CallOutcome[];
  onSession: (s: FastAgiSession) => void | Promise<void>;
  /** The final outcome of call `id` (waits for it). */
  outcome(id: string, ms?: number): Promise<CallOutcome>;
  close(): Promise<void>;
}

export async function startDialerSide(
  ast: Pick<Instance, 'agiPort' | 'agiSecret' | 'ariUrl' | 'ariUser' | 'ariPassword' | 'releaseAgiPort'>,
  endpointTemplate: string,
): Promise<DialerSide> {
  const agi = new AgiServer({ host: '127.0.0.1', port: ast.agiPort, secret: ast.agiSecret, register: false });
  await ast.releaseAgiPort();
  await agi.listen();
  const conn = new AriConnection({
    url: ast.ariUrl,
    username: ast.ariUser,
    password: ast.ariPassword,
    app: 'ai-dialer',
  });
  const tracker = new CallTracker(conn, { endpointTemplate, sweepMs: 0 });
  const side: DialerSide = {
    agi,
    conn,
    tracker,
    outcomes: [],
    onSession: (s) => void s.hangup().finally(() => s.close()),
    outcome: (id, ms = 40_000) => waitFor(() => side.outcomes.find((x) => x.callId === id), ms, `outcome of ${id}`),
    close: async () => {
      await tracker.close();
      await conn.close();
      await agi.close();
    },
  };
  agi.on('session', (s: FastAgiSession) => void side.onSession(s));
  tracker.on('outcome', (o: CallOutcome) => {
    if (o.outcome !== 'answered') side.outcomes.push(o);
  });
  await conn.start();
  return side;
}

/**
 * A suite's afterAll: the dialer side, then the Asterisks, then the suite's own temp folders (kept with
 * KEEP_ASTERISK_STATE=1, like the instances' state).
 */
export async function stopAll(o: {
  side?: DialerSide;
  asterisks?: Array<{ stop(): void } | undefined>;
  dirs?: Array<string | undefined>;
}): Promise<void> {
  await o.side?.close();
  for (const a of o.asterisks ?? []) a?.stop();
  if (process.env.KEEP_ASTERISK_STATE) return;
  for (const d of o.dirs ?? []) if (d) fs.rmSync(d, { recursive: true, force: true });
}

// ---------------------------------------------------------------- audio for test callees

/** espeak-ng is installed (the suites with spoken audio need it). */
export const hasEspeak = (): boolean => spawnSync('espeak-ng', ['--version']).status === 0;

/** `text` spoken by espeak-ng, as an 8 kHz mono WAV Asterisk plays by full path. */
export function speech(text: string): Buffer {
  const r = spawnSync('espeak-ng', ['-v', 'en-us', '-s', '165', '--stdout', text]);
  if (r.status !== 0) throw new Error(`espeak-ng: ${r.stderr}`);
  return toAsteriskWav(r.stdout);
}

/** 8 kHz mono 16-bit sine tone, `ms` long. */
export function tone(ms: number, hz = 440, amp = 8000): Buffer {
  const n = Math.round((8000 * ms) / 1000);
  const samples = new Int16Array(n);
  for (let i = 0; i < n; i++) samples[i] = Math.round(amp * Math.sin((2 * Math.PI * hz * i) / 8000));
  return encodeWav({ sampleRate: 8000, channels: 1, samples });
}

/** Level of each 20 ms frame: RMS, or the mean absolute sample. */
export function frameLevels(samples: Int16Array, measure: 'rms' | 'meanAbs' = 'rms', rate = 8000): number[] {
  const n = Math.round(rate / 50);
  const out: number[] = [];
  for (let i = 0; i + n <= samples.length; i += n) {
    let s = 0;
    for (let j = i; j < i + n; j++) s += measure === 'rms' ? samples[j] * samples[j] : Math.abs(samples[j]);
    out.push(measure === 'rms' ? Math.sqrt(s / n) : s / n);
  }
  return out;
}

/** Runs of 20 ms frames whose level is at least `threshold`, as [startMs, endMs]; gaps up to `joinMs` joined. */
export function loudRuns(levels: number[], threshold = 300, joinMs = 200): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  for (let i = 0; i < levels.length; i++) {
    if (levels[i] < threshold) continue;
    const last = runs[runs.length - 1];
    if (last && i * 20 - last[1] <= joinMs) last[1] = i * 20 + 20;
    else runs.push([i * 20, i * 20 + 20]);
  }
  return runs;
}
