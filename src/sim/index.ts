/**
 * The Asterisk simulator's public entry: ARI HTTP + events WebSocket, with continue-in-dialplan
 * wired to the AGI side (src/sim/agi-client.ts) so answered calls reach fastagi-in.
 */
import { randomBytes } from 'crypto';
import { AriSimulator, type AriSimOptions } from './ari-server';
import type { Persona } from './persona';

export { AriSimulator } from './ari-server';
export type { AriSimOptions, SimChannel } from './ari-server';

export interface SimulatorOptions extends Omit<AriSimOptions, 'password'> {
  /** ARI password; default ARI_PASSWORD from the environment, else a random one. */
  password?: string;
  /** Stasis application name reported back (the app the client should use); default ARI_APP or 'ai-dialer'. */
  app?: string;
}

export interface SimulatorHandle {
  url: string;
  username: string;
  password: string;
  app: string;
  port: number;
  sim: AriSimulator;
  close(): Promise<void>;
  setPersona(phone: string, persona: Persona): void;
  /** Restart like Asterisk: connections (and, unless keepChannels, channels) are lost; same port. */
  restart(opts?: { keepChannels?: boolean; downMs?: number }): Promise<void>;
  channels(): ReturnType<AriSimulator['channels']>;
}

/** A password for a simulator started without one: random, never hard-coded. */
export function generatePassword(): string {
  return randomBytes(12).toString('base64url');
}

export async function startSimulator(opts: SimulatorOptions = {}): Promise<SimulatorHandle> {
  const username = opts.username || process.env.ARI_USERNAME || 'ai-dialer';
  const password = opts.password || process.env.ARI_PASSWORD || generatePassword();
  const sim = new AriSimulator({ ...opts, username, password });
  await sim.start();
  return {
    get url() {
      return sim.url;
    },
    username,
    password,
    app: opts.app || process.env.ARI_APP || 'ai-dialer',
    get port() {
      return sim.port;
    },
    sim,
    close: () => sim.close(),
    setPersona: (phone, p) => sim.setPersona(phone, p),
    restart: (o) => sim.restart(o),
    channels: () => sim.channels(),
  };
}
