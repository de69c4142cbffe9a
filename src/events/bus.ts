/**
 * The event bus of a deployment: a publisher connected to the embedded broker or an external one, plus
 * the control-topic subscription. Shared in the process by configuration (ref counted), so several
 * `ai-dialer-bus` config nodes never start two brokers on one port or dispatch a control twice.
 */
import type * as http from 'http';
import { DialerError, errorMessage } from '../util/errors';
import { Account, EmbeddedBroker, acquireBroker, mqttPortTakenNote, normaliseOrigin, releaseBroker } from './broker';
import { dispatchControl } from './controls';
import { Publisher, redact } from './publisher';
import { DEFAULT_ROOT } from './topics';
import { writePendingEvent } from './builders';
import { onCallWrites } from '../store/outbox';

export type BusMode = 'env' | 'embedded' | 'external';

export interface BusConfig {
  mode?: BusMode;
  /** external broker URL (mqtt://, mqtts://, ws://, wss://) */
  url?: string;
  username?: string;
  password?: string;
  /** embedded broker TCP port (default MQTT_PORT or 1883) and bind address (MQTT_HOST or 127.0.0.1) */
  port?: number;
  host?: string;
  /** serve MQTT over TCP on the port (default true unless MQTT_TCP_DISABLED=1) */
  tcp?: boolean;
  accounts?: Account[];
  /** browser origins allowed to use MQTT over WebSocket besides the runtime's own (default MQTT_WS_ORIGINS) */
  wsOrigins?: string[];
  root?: string;
  /** HTTP server to serve MQTT over WebSocket on (embedded mode) */
  httpServer?: http.Server;
  wsPath?: string;
  /** subscribe to the control topics and emit on controlBus (default true) */
  controls?: boolean;
  bufferSize?: number;
  progressIntervalMs?: number;
  log?: (line: string) => void;
}

export interface ResolvedBus {
  mode: 'embedded' | 'external';
  url?: string;
  username?: string;
  password?: string;
  port: number;
  host: string;
  /** false: no public MQTT over TCP (MQTT_TCP_DISABLED=1, the port is taken); WebSocket only */
  tcp: boolean;
  accounts: Account[];
  wsOrigins: string[];
  root: string;
}

/** Apply the environment fallbacks: MQTT_URL (absent -> embedded), MQTT_PORT, MQTT_HOST, MQTT_USERNAME/PASSWORD, accounts. */
export function resolveBusConfig(cfg: BusConfig, env: NodeJS.ProcessEnv = process.env): ResolvedBus {
  const mode = !cfg.mode || cfg.mode === 'env' ? (env.MQTT_URL ? 'external' : 'embedded') : cfg.mode;
  const portRaw = cfg.port ?? (env.MQTT_PORT ? Number(env.MQTT_PORT) : 1883);
  if (!Number.isInteger(portRaw) || portRaw < 0 || portRaw > 65535)
    throw new DialerError(
      'mqtt_bad_port',
      `MQTT_PORT ${JSON.stringify(env.MQTT_PORT ?? cfg.port)} is not a port number (0-65535)`,
    );
  const accounts: Account[] = [...(cfg.accounts ?? []).filter((a) => a && a.username)];
  if (!accounts.some((a) => a.role === 'writer') && env.MQTT_WRITER_USER) {
    accounts.push({ username: env.MQTT_WRITER_USER, password: env.MQTT_WRITER_PASSWORD ?? '', role: 'writer' });
  }
  if (!accounts.some((a) => a.role === 'reader') && env.MQTT_READER_USER) {
    accounts.push({ username: env.MQTT_READER_USER, password: env.MQTT_READER_PASSWORD ?? '', role: 'reader' });
  }
  const wsOrigins = cfg.wsOrigins ?? (env.MQTT_WS_ORIGINS ?? '').split(/[\s,]+/).filter(Boolean);
  for (const o of wsOrigins)
    if (!normaliseOrigin(o))
      throw new DialerError(
        'mqtt_bad_origin',
        `MQTT_WS_ORIGINS: ${JSON.stringify(o)} is not an origin (scheme://host[:port], e.g. https://dialer.example.com)`,
      );
  let url = cfg.url || undefined;
  if (mode === 'external') {
    url = url || (!cfg.mode || cfg.mode === 'env' ? env.MQTT_URL : undefined);
    if (!url)
      throw new DialerError(
        'mqtt_not_configured',
        'external MQTT broker selected but no URL given (set the URL in the event bus node or MQTT_URL)',
      );
    try {
      const u = new URL(url);
      if (!['mqtt:', 'mqtts:', 'ws:', 'wss:', 'tcp:', 'ssl:'].includes(u.protocol)) throw new Error('scheme');
    } catch {
      throw new DialerError(
        'mqtt_bad_url',
        `MQTT URL ${JSON.stringify(url.replace(/\/\/[^@/]*@/, '//***@'))} is not valid (expected mqtt://host:port)`,
      );
    }
  }
  return {
    mode,
    url,
    username: cfg.username || (mode === 'external' ? env.MQTT_USERNAME : undefined) || undefined,
    password: cfg.password || (mode === 'external' ? env.MQTT_PASSWORD : undefined) || undefined,
    port: portRaw,
    host: cfg.host || env.MQTT_HOST || '127.0.0.1',
    tcp: cfg.tcp ?? !(env.MQTT_TCP_DISABLED === '1' || env.MQTT_TCP_DISABLED === 'true'),
    accounts,
    wsOrigins,
    root: cfg.root || DEFAULT_ROOT,
  };
}

export interface BusHandle {
  readonly mode: 'embedded' | 'external';
  readonly publisher: Publisher;
  readonly broker?: EmbeddedBroker;
  /** one-line description for logs: where events go */
  readonly describe: string;
  /** resolves once the control topics are subscribed (after the first connection) */
  readonly controlsReady: Promise<void>;
  release(): Promise<void>;
}

type Opened = {
  publisher: Publisher;
  broker?: EmbeddedBroker;
  describe: string;
  controlsReady: Promise<void>;
  unwatch: () => void;
};
interface Shared {
  refs: number;
  ready: Promise<Opened>;
}
const buses = new Map<string, Shared>();

function keyOf(r: ResolvedBus): string {
  return r.mode === 'embedded'
    ? `embedded|${r.tcp ? `${r.host}|${r.port}` : 'ws-only'}|${r.root}`
    : `external|${r.url}|${r.username ?? ''}|${r.root}`;
}

async function open(r: ResolvedBus, cfg: BusConfig): Promise<Opened> {
  const log = cfg.log ?? (() => undefined);
  let broker: EmbeddedBroker | undefined;
  let publisher: Publisher;
  let describe: string;
  if (r.mode === 'embedded') {
    // WebSocket only: the broker still listens on a private loopback port (this process's publisher connects
    // in-process, src/events/local-client.ts).
    const wsOnly = () =>
      acquireBroker({
        port: 0,
        host: '127.0.0.1',
        shareKey: 'ws-only',
        accounts: r.accounts,
        wsOrigins: r.wsOrigins,
        root: r.root,
        log,
      });
    if (r.tcp) {
      try {
        broker = await acquireBroker({
          port: r.port,
          host: r.host,
          accounts: r.accounts,
          wsOrigins: r.wsOrigins,
          root: r.root,
          log,
        });
      } catch (err) {
        // the port is taken (a Mosquitto on 1883?): as `npm start` does, WebSocket only and one line
        if (!(err instanceof DialerError) || err.code !== 'mqtt_port_in_use') throw err;
        log(mqttPortTakenNote(r.port));
        r = { ...r, tcp: false };
        broker = await wsOnly();
      }
    } else broker = await wsOnly();
    publisher = new Publisher({
      url: broker.url,
      client: broker.localClient(),
      root: r.root,
      bufferSize: cfg.bufferSize,
      progressIntervalMs: cfg.progressIntervalMs,
      log,
    });
    describe = `embedded MQTT broker ${r.tcp ? `on ${r.host}:${broker.port}` : '(TCP off: WebSocket only)'}${broker.hasAccounts ? '' : ' (no accounts: anonymous read access from this machine only, and only while HTTP and MQTT listen on loopback)'}`;
  } else {
    publisher = new Publisher({
      url: r.url!,
      username: r.username,
      password: r.password,
      root: r.root,
      bufferSize: cfg.bufferSize,
      progressIntervalMs: cfg.progressIntervalMs,
      log,
    });
    describe = `MQTT broker ${redact(r.url!)}`;
  }
  let controlsReady = Promise.resolve();
  if (cfg.controls !== false) {
    const onControl = (topic: string, payload: Buffer) => {
      const err = dispatchControl(publisher.topics, topic, payload);
      if (err) log(`MQTT control refused on ${topic}: ${errorMessage(err)}`);
    };
    controlsReady = Promise.all([
      publisher.subscribe(publisher.topics.allCampaignControls, onControl),
      publisher.subscribe(publisher.topics.allCallControls, onControl),
    ]).then(() => undefined);
  }
  // a call whose writes wait for the database says so (status event with writePending)
  const unwatch = onCallWrites((w) => {
    try {
      publisher.publish(writePendingEvent(w));
    } catch (err) {
      log(`write-pending event not published: ${errorMessage(err)}`);
    }
  });
  return { publisher, broker, describe, controlsReady, unwatch };
}

/** Get (or start) the bus for a configuration. Release it with handle.release(). */
export async function acquireBus(cfg: BusConfig, env: NodeJS.ProcessEnv = process.env): Promise<BusHandle> {
  const r = resolveBusConfig(cfg, env);
  const key = keyOf(r);
  let entry = buses.get(key);
  if (!entry) {
    entry = { refs: 0, ready: open(r, cfg) };
    buses.set(key, entry);
    const e = entry;
    entry.ready.catch(() => {
      if (buses.get(key) === e) buses.delete(key);
    });
  } else if (r.mode === 'embedded') {
    const b = (await entry.ready).broker;
    b?.addAccounts(r.accounts);
    b?.addWsOrigins(r.wsOrigins);
  }
  entry.refs++;
  const e = entry;
  let got;
  try {
    got = await e.ready;
  } catch (err) {
    e.refs--;
    throw err;
  }
  let detachWs: (() => void) | undefined;
  if (got.broker && cfg.httpServer) detachWs = got.broker.attachWebSocket(cfg.httpServer, cfg.wsPath ?? '/mqtt');
  let released = false;
  return {
    mode: r.mode,
    publisher: got.publisher,
    broker: got.broker,
    controlsReady: got.controlsReady,
    describe: got.describe + (detachWs ? ` and WebSocket ${cfg.wsPath ?? '/mqtt'}` : ''),
    async release() {
      if (released) return;
      released = true;
      detachWs?.();
      if (--e.refs > 0) return;
      if (buses.get(key) === e) buses.delete(key);
      got.unwatch();
      const left = await got.publisher.close();
      const lost = left.buffered + left.inflight;
      if (lost > 0)
        (cfg.log ?? (() => undefined))(`MQTT: ${lost} event(s) not delivered at shutdown (broker unreachable)`);
      if (got.broker) await releaseBroker(got.broker);
    },
  };
}
