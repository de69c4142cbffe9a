/**
 * What the `ai-dialer-asterisk` config node holds: the settings (its own, the environment's, or a
 * built-in simulator's) and one shared AriConnection. No Node-RED import.
 */
import { EventEmitter } from 'events';
import { AriConnection, AriError, type AriOptions, type ConnectionState } from './client';
import { errorMessage } from '../util/errors';
import type { SimulatorLike, StartSimulator } from '../types/settings';

export type AsteriskMode = 'env' | 'manual' | 'simulator';

export interface AsteriskSettings {
  mode: AsteriskMode;
  url?: string;
  username?: string;
  password?: string;
  app?: string;
  /** Simulator mode: where answered calls' AGI goes, and the time factor. */
  agiHost?: string;
  agiPort?: number;
  simSpeed?: number;
}

export const DEFAULT_APP = 'ai-dialer';

/** Connection settings for a mode; throws a clear not_configured error when something is missing. */
export function resolveAriOptions(
  s: AsteriskSettings,
  env: NodeJS.ProcessEnv = process.env,
): Omit<AriOptions, 'backoff'> {
  if (s.mode === 'manual') {
    if (!s.url) throw new AriError('not_configured', 'asterisk: the ARI URL is empty');
    if (!s.username) throw new AriError('not_configured', 'asterisk: the ARI username is empty');
    if (!s.password) throw new AriError('not_configured', 'asterisk: the ARI password is empty');
    return { url: s.url, username: s.username, password: s.password, app: s.app || DEFAULT_APP };
  }
  const url = env.ARI_URL?.trim();
  if (!url)
    throw new AriError(
      'not_configured',
      'asterisk: ARI_URL is not set (set ARI_URL, ARI_USERNAME, ARI_PASSWORD, or choose the built-in simulator)',
    );
  const username = env.ARI_USERNAME?.trim();
  if (!username) throw new AriError('not_configured', 'asterisk: ARI_USERNAME is not set');
  const password = env.ARI_PASSWORD;
  if (!password) throw new AriError('not_configured', 'asterisk: ARI_PASSWORD is not set');
  return { url, username, password, app: s.app || env.ARI_APP || DEFAULT_APP };
}

/** The endpoint template: the node's, else DIAL_ENDPOINT, else a PJSIP trunk named `trunk`. */
export function dialEndpoint(nodeValue: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return nodeValue?.trim() || env.DIAL_ENDPOINT?.trim() || 'PJSIP/{phone}@trunk';
}

/**
 * One Asterisk (or simulator) shared by every node that uses the config node.
 * Events: 'state' (ConnectionState, error?), 'warning' (message).
 */
export class AriService extends EventEmitter {
  readonly settings: AsteriskSettings;
  private conn?: AriConnection;
  private sim?: SimulatorLike;
  private ready?: Promise<AriConnection>;
  private closed = false;

  constructor(
    settings: AsteriskSettings,
    private readonly env: NodeJS.ProcessEnv = process.env,
    /** Starts the built-in simulator (simulator mode); injected, so this module never loads src/sim. */
    private readonly startSimulator?: StartSimulator,
  ) {
    super();
    this.setMaxListeners(0);
    this.settings = settings;
  }

  get state(): ConnectionState {
    return this.conn?.state ?? (this.closed ? 'closed' : 'connecting');
  }
  get lastError(): AriError | undefined {
    return this.conn?.lastError;
  }
  get connection(): AriConnection | undefined {
    return this.conn;
  }
  /** The in-process simulator (simulator mode, once started): setPersona, channels, restart. */
  get simulator(): SimulatorLike | undefined {
    return this.sim;
  }
  /** Seconds until the next connection attempt, when waiting. */
  get retryInMs(): number | undefined {
    return this.conn?.retryInMs;
  }

  /**
   * The shared connection, created (and, in simulator mode, the simulator started) on first use.
   * Resolves as soon as the connection object exists, even while it is still (re)connecting;
   * rejects only for settings that can never work (not_configured) or a simulator that cannot start.
   */
  connect(): Promise<AriConnection> {
    if (this.ready) return this.ready;
    this.ready = this.create();
    this.ready.catch((err: unknown) => {
      this.emit('state', 'error', err instanceof AriError ? err : new AriError('internal', errorMessage(err)));
    });
    return this.ready;
  }

  private async create(): Promise<AriConnection> {
    let opts: Omit<AriOptions, 'backoff'>;
    if (this.settings.mode === 'simulator') {
      if (!this.startSimulator)
        throw new AriError('not_configured', 'asterisk: the built-in simulator is not available in this runtime');
      const sim = await this.startSimulator({
        port: 0,
        app: this.settings.app || DEFAULT_APP,
        speed: this.settings.simSpeed,
        agi: {
          host:
            this.settings.agiHost ||
            (this.env.AGI_HOST && this.env.AGI_HOST !== '0.0.0.0' ? this.env.AGI_HOST : '127.0.0.1'),
          port: this.settings.agiPort || Number(this.env.AGI_PORT || 4573),
        },
      });
      if (this.closed) {
        await sim.close();
        throw new AriError('not_configured', 'asterisk: closed while starting');
      }
      this.sim = sim;
      opts = { url: sim.url, username: sim.username, password: sim.password, app: this.settings.app || DEFAULT_APP };
    } else {
      opts = resolveAriOptions(this.settings, this.env);
    }
    const conn = new AriConnection(opts);
    this.conn = conn;
    conn.on('state', (s: ConnectionState, e?: AriError) => this.emit('state', s, e));
    conn.on('warning', (w: string) => this.emit('warning', w));
    void conn.start().catch(() => undefined); // failures are reported through 'state' and retried
    return conn;
  }

  async close(): Promise<void> {
    this.closed = true;
    const ready = this.ready;
    if (ready) await ready.catch(() => undefined);
    if (this.conn) await this.conn.close();
    if (this.sim) await this.sim.close();
    this.emit('state', 'closed');
  }
}
