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

/**
 * A setting the connection cannot do without: `setting` names it for a short status ("ARI_URL not
 * set"), the message says how to set it (for the log).
 */
export class AriSettingMissing extends AriError {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super('not_configured', message);
  }
}

/** How to give the "from environment" mode what it needs, appended to each missing-setting message. */
const ENV_HOW =
  "in Node-RED's environment (e.g. ARI_URL=http://127.0.0.1:8088/ari ARI_USERNAME=ai-dialer ARI_PASSWORD=...), " +
  'or open the ai-dialer-asterisk config node and choose "manual" or the built-in simulator';

/** Connection settings for a mode; throws a clear not_configured error when something is missing. */
export function resolveAriOptions(
  s: AsteriskSettings,
  env: NodeJS.ProcessEnv = process.env,
): Omit<AriOptions, 'backoff'> {
  if (s.mode === 'manual') {
    const manual = (what: string) =>
      new AriSettingMissing(
        `ARI ${what}`,
        `asterisk: the ARI ${what} is empty: open the ai-dialer-asterisk config node and fill it in (or choose "from environment" or the built-in simulator)`,
      );
    if (!s.url) throw manual('URL');
    if (!s.username) throw manual('username');
    if (!s.password) throw manual('password');
    return { url: s.url, username: s.username, password: s.password, app: s.app || DEFAULT_APP };
  }
  const missing = (name: string) => new AriSettingMissing(name, `asterisk: ${name} is not set: set it ${ENV_HOW}`);
  const url = env.ARI_URL?.trim();
  if (!url) throw missing('ARI_URL');
  const username = env.ARI_USERNAME?.trim();
  if (!username) throw missing('ARI_USERNAME');
  const password = env.ARI_PASSWORD;
  if (!password) throw missing('ARI_PASSWORD');
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
  private failure?: AriError;

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

  /** `error` when the connection can never be made (settings missing, no simulator), until closed. */
  get state(): ConnectionState {
    return this.conn?.state ?? (this.closed ? 'closed' : this.failure ? 'error' : 'connecting');
  }
  get lastError(): AriError | undefined {
    return this.conn?.lastError ?? this.failure;
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
      this.failure = err instanceof AriError ? err : new AriError('internal', errorMessage(err));
      this.emit('state', 'error', this.failure);
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
