/**
 * The shared connections the config nodes hold: the event bus, the store. Each opens on first use,
 * is shared by every node that uses the config node, and is released when the config node closes.
 */
import type * as http from 'http';
import { acquireBus, type BusHandle, type BusMode } from '../events/bus';
import type { Account } from '../events/broker';
import type { Publisher } from '../events/publisher';
import { registerHealthProbe } from '../health/probes';
import { acquireDb, releaseDb, type Db, type StoreOptions } from '../store/db';
import { resolveStoreOptions, type StoreMode } from '../store/options';
import { errorMessage } from '../util/errors';
import type { Translate } from '../util/i18n';
import type { NodeView } from './view';

export interface BusSettings {
  mode?: BusMode;
  url?: string;
  port?: string;
  root?: string;
  ws?: boolean;
  writerUser?: string;
  readerUser?: string;
  username?: string;
  password?: string;
  writerPassword?: string;
  readerPassword?: string;
}

/** The ai-dialer-bus config node's event bus. */
export class BusController {
  private bus?: Promise<BusHandle>;
  private unprobe?: () => void;
  private closing = false;

  constructor(
    private readonly cfg: BusSettings,
    /** A health-probe name unique to this config node. */
    private readonly probeName: string,
    private readonly view: NodeView,
    private readonly t: Translate,
    /** Node-RED's HTTP server, for MQTT over WebSocket at /mqtt. */
    private readonly httpServer?: http.Server,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  private accounts(): Account[] {
    const c = this.cfg;
    const out: Account[] = [];
    if (c.writerUser) out.push({ username: c.writerUser, password: c.writerPassword ?? '', role: 'writer' });
    if (c.readerUser) out.push({ username: c.readerUser, password: c.readerPassword ?? '', role: 'reader' });
    return out;
  }

  getBus(): Promise<BusHandle> {
    if (this.closing) return Promise.reject(new Error('event bus is closing'));
    if (!this.bus) {
      const c = this.cfg;
      const bus = acquireBus(
        {
          mode: c.mode || 'env',
          url: c.url || undefined,
          username: c.username,
          password: c.password,
          port: c.port !== undefined && String(c.port).trim() !== '' ? Number(c.port) : undefined,
          root: c.root || undefined,
          accounts: this.accounts(),
          httpServer: c.ws === false ? undefined : this.httpServer,
          wsPath: '/mqtt',
          log: (line) => this.view.log(line),
        },
        this.env,
      );
      this.bus = bus;
      bus.then(
        (b) => {
          this.view.log(this.t('log.started', { describe: b.describe }));
          const st = () => b.publisher.stats();
          this.unprobe = registerHealthProbe(this.probeName, () => ({
            buffered: st().buffered,
            dropped: st().dropped,
            inflight: st().inflight,
          }));
        },
        (err) => {
          this.view.error(errorMessage(err));
          if (this.bus === bus) this.bus = undefined; // a later use retries (e.g. the port was freed)
        },
      );
    }
    return this.bus;
  }

  getPublisher(): Promise<Publisher> {
    return this.getBus().then((b) => b.publisher);
  }

  async close(): Promise<void> {
    this.closing = true;
    this.unprobe?.();
    const b = this.bus;
    this.bus = undefined;
    if (!b) return;
    const h = await b.catch(() => undefined);
    try {
      await h?.release();
    } catch (err) {
      this.view.warn(this.t('warn.closeFailed', { error: errorMessage(err) }));
    }
  }
}

/** The ai-dialer-store config node's database. */
export class StoreController {
  readonly description: string;
  private opts?: StoreOptions;
  private optsError?: Error;
  private opened?: Promise<Db>;

  constructor(
    cfg: { mode: StoreMode; dataDir?: string; url?: string },
    private readonly view: NodeView,
    private readonly t: Translate,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    try {
      this.opts = resolveStoreOptions(cfg.mode, cfg.dataDir, cfg.url, env);
      this.description = this.opts.url ? 'postgresql' : `embedded (${this.opts.dataDir})`;
    } catch (err) {
      this.optsError = err as Error;
      this.description = 'not configured';
      view.error(this.optsError.message);
    }
  }

  /** The shared database (migrated); rejects with a clear error when it cannot be opened. */
  getDb(): Promise<Db> {
    if (this.optsError || !this.opts) return Promise.reject(this.optsError);
    if (!this.opened) {
      const opened = acquireDb(this.opts);
      this.opened = opened;
      opened.catch((err: Error) => {
        this.view.error(err.message);
        if (this.opened === opened) this.opened = undefined;
      });
    }
    return this.opened;
  }

  async close(): Promise<void> {
    const o = this.opts;
    const wasOpened = this.opened;
    this.opened = undefined;
    if (!o || !wasOpened) return;
    const ok = await wasOpened.then(
      () => true,
      () => false,
    );
    if (!ok) return;
    try {
      await releaseDb(o);
    } catch (err) {
      this.view.warn(this.t('warn.closeFailed', { error: errorMessage(err) }));
    }
  }
}
