/**
 * `ai-dialer-sim`: the Asterisk simulator standalone.
 *   ai-dialer-sim [--port 8088] [--host 127.0.0.1] [--speed 1] [--agi-host H] [--agi-port 4573]
 * Credentials: ARI_USERNAME / ARI_PASSWORD from the environment, else a generated password printed once.
 */
import { startSimulator } from './index';

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
