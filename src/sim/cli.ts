/**
 * `ai-dialer-sim`: the Asterisk simulator standalone.
 *   ai-dialer-sim [--port 8088] [--host 127.0.0.1] [--speed 1] [--agi-host H] [--agi-port 4573]
 * Credentials: ARI_USERNAME / ARI_PASSWORD from the environment, else a generated password printed once.
 * SIM_PERSONAS: a JSON file of phone number -> persona (src/sim/persona.ts), as for `npm start`.
 * SIM_JOURNAL: a file to append one JSON line per channel created / destroyed and per AGI session
 * (what the callee said and heard, and the FastAGI `host:port` that drove it), for tests that check the dialer against the far end (test/chaos).
 */
import fs from 'fs';
import { startSimulator } from './index';
import type { Persona } from './persona';
import type { AgiCallResult } from './agi-client';

function personasFromEnv(env: NodeJS.ProcessEnv): Record<string, Persona> | undefined {
  if (!env.SIM_PERSONAS) return undefined;
  const parsed = JSON.parse(fs.readFileSync(env.SIM_PERSONAS, 'utf8')) as unknown;
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new Error(`SIM_PERSONAS: ${env.SIM_PERSONAS} must hold a JSON object of phone number -> persona`);
  return parsed as Record<string, Persona>;
}

/** The AGI session as the far end lived it: each RECORD FILE (did the callee get to speak) and STREAM FILE (played). */
function agiSteps(r: AgiCallResult): string[] {
  const steps: string[] = [];
  const t = r.transcript;
  for (let i = 0; i < t.length; i++) {
    const e = t[i];
    if (e.dir !== 'cmd') continue;
    const verb = /^(RECORD FILE|STREAM FILE)/i.exec(e.line)?.[1]?.toUpperCase();
    if (!verb) continue;
    const reply = t.slice(i + 1).find((x) => x.dir === 'reply')?.line ?? '';
    // RECORD FILE: the callee got to speak unless it hung up; STREAM FILE: the callee started hearing it
    // unless Asterisk could not play it (endpos=0); no reply at all: cut by the far end's process dying
    const ok =
      verb === 'RECORD FILE'
        ? /^200 /.test(reply) && !/\(hangup\)/.test(reply) && !/result=-1/.test(reply)
        : !reply || /endpos=[1-9]/.test(reply);
    steps.push(`${verb === 'RECORD FILE' ? 'R' : 'S'}${ok ? '' : '!'}`);
  }
  return steps;
}

export interface CliArgs {
  port: number;
  host: string;
  speed: number;
  agiHost?: string;
  agiPort?: number;
  help: boolean;
}

export function parseArgs(argv: string[]): CliArgs {
  const out: CliArgs = { port: Number(process.env.SIM_PORT || 8088), host: '127.0.0.1', speed: 1, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const next = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const num = (v: string): number => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${flag}: not a number: ${v}`);
      return n;
    };
    switch (flag) {
      case '--port':
      case '-p':
        out.port = num(next());
        break;
      case '--host':
        out.host = next();
        break;
      case '--speed':
        out.speed = num(next()) || 1;
        break;
      case '--agi-host':
        out.agiHost = next();
        break;
      case '--agi-port':
        out.agiPort = num(next());
        break;
      case '--help':
      case '-h':
        out.help = true;
        break;
      default:
        throw new Error(`unknown option ${a}`);
    }
  }
  return out;
}

export async function main(argv = process.argv.slice(2)): Promise<import('./index').SimulatorHandle | undefined> {
  let args: CliArgs;
  try {
    args = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`ai-dialer-sim: ${(err as Error).message}\n`);
    process.exitCode = 2;
    return undefined;
  }
  if (args.help) {
    process.stdout.write(
      'usage: ai-dialer-sim [--port 8088] [--host 127.0.0.1] [--speed 1] [--agi-host 127.0.0.1] [--agi-port 4573]\n',
    );
    return undefined;
  }
  const generated = !process.env.ARI_PASSWORD;
  let sim: Awaited<ReturnType<typeof startSimulator>>;
  try {
    sim = await startSimulator({
      personas: personasFromEnv(process.env),
      port: args.port,
      host: args.host,
      speed: args.speed,
      agi: { host: args.agiHost, port: args.agiPort },
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(
      `ai-dialer-sim: cannot listen on ${args.host}:${args.port}: ${e.code === 'EADDRINUSE' ? 'the port is in use (choose another with --port)' : e.message}\n`,
    );
    process.exitCode = 1;
    return undefined;
  }
  if (process.env.SIM_JOURNAL) {
    const fd = fs.openSync(process.env.SIM_JOURNAL, 'a');
    const line = (o: Record<string, unknown>) => fs.writeSync(fd, JSON.stringify({ at: Date.now(), ...o }) + '\n');
    const phones = new Map<string, string>();
    sim.sim.on('channel-created', (c: { id: string; phone: string; variables: Record<string, string> }) => {
      phones.set(c.id, c.phone);
      line({ ev: 'up', id: c.id, phone: c.phone, callId: c.variables.CALL_ID ?? null });
    });
    sim.sim.on('channel-destroyed', (c: { id: string; answered: boolean }) => {
      line({ ev: 'down', id: c.id, phone: phones.get(c.id) ?? null, answered: c.answered });
      phones.delete(c.id);
    });
    sim.sim.on('agi-line', (id: string, dir: string, l: string) => {
      const verb = dir === 'cmd' ? /^(RECORD FILE|STREAM FILE)/i.exec(l)?.[1]?.toUpperCase() : undefined;
      if (verb) line({ ev: 'cmd', id, verb: verb === 'RECORD FILE' ? 'R' : 'S' });
    });
    sim.sim.on('agi-done', (id: string, r: AgiCallResult, target: string) =>
      line({ ev: 'agi', id, callId: r.variables.CALL_ID ?? null, agi: target, endedBy: r.endedBy, steps: agiSteps(r) }),
    );
  }
  process.stdout.write(
    `Asterisk simulator (ARI) listening on ${sim.url}/ari\n` +
      `  username: ${sim.username}\n` +
      `  password: ${generated ? `${sim.password}   (generated; set ARI_PASSWORD to choose one)` : '(from ARI_PASSWORD)'}\n` +
      `  Stasis app: ${sim.app}   AGI target: ${sim.sim.agi.host}:${sim.sim.agi.port} (contexts: ${sim.sim.agi.contexts.join(', ')})\n`,
  );
  const stop = (): void => {
    void sim.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const close = sim.close;
  return {
    ...sim,
    close: async () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await close();
    },
  };
}

if (require.main === module) void main();
