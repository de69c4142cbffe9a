/**
 * The embedded MQTT broker: aedes over TCP (MQTT_PORT, default 1883) and MQTT over WebSocket at `/mqtt`
 * on an existing HTTP server (the Node-RED runtime's), with accounts:
 *
 *  - writer accounts: publish and subscribe anywhere (except `$SYS/`); the only ones that may publish
 *    under the topic root, so the only ones that can send supervisor controls;
 *  - reader accounts (dashboards): subscribe under `<root>/#` only, never publish;
 *  - an internal writer with a random password, used by this process's own publisher;
 *  - anonymous clients only when no writer/reader account is configured, the broker listens on loopback
 *    only, and the client connects from loopback (not through a proxy that says it forwards someone else);
 *    they may subscribe to anything and publish outside the topic root (so never events nor controls).
 *
 * MQTT over WebSocket checks the browser's `Origin` on the upgrade (a page on another site must not read
 * the event tree through a user's browser): allowed are the runtime's own origin when it is reached by IP
 * address or `localhost` (a DNS name could be rebound to 127.0.0.1), and the `wsOrigins` allow-list
 * (MQTT_WS_ORIGINS). Clients that send no Origin are not browsers and go on to the account check.
 *
 * Several users in one process share one broker per port (`acquireBroker`/`releaseBroker`, ref counted).
 */
import * as net from 'net';
import type * as http from 'http';
import { randomBytes, timingSafeEqual, createHash } from 'crypto';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import { DialerError, errorMessage } from '../util/errors';
import { requireOptional } from '../util/optional';
import { DEFAULT_ROOT, checkRoot } from './topics';
import { LocalClient, type LocalBroker } from './local-client';

// aedes 1.x is an ES module. Node >= 20.19 can require() it; Node's own require (createRequire) is used so
// that test runners with their own module registry (Jest) load it the same way the runtime does. An optional
// dependency (src/util/optional.ts): loaded when a broker starts, a clear error when it is not installed.
function loadAedes(): typeof import('aedes').Aedes {
  return requireOptional<typeof import('aedes')>('aedes', nodeRequire()).Aedes;
}
function nodeRequire(): NodeRequire {
  const getBuiltin = (process as unknown as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  if (getBuiltin) return (getBuiltin('module') as typeof import('module')).createRequire(__filename);
  return require;
}
type AedesBroker = import('aedes').Aedes;
type AedesClient = import('aedes').Client;

export type Role = 'writer' | 'reader';
export interface Account {
  username: string;
  password: string;
  role: Role;
}

export interface BrokerOptions {
  /** TCP port; 0 picks a free one. Default 1883. */
  port?: number;
  /** Bind address. Default 127.0.0.1. */
  host?: string;
  accounts?: Account[];
  /** Topic root the ACL protects. Default ai-dialer/v1. */
  root?: string;
  /** Logger for one-line notices (client refused, ...). */
  log?: (line: string) => void;
  /** Share key for acquireBroker (default: the port; port 0 is never shared unless a key is given). */
  shareKey?: string;
  /** Browser origins allowed to open MQTT over WebSocket besides the runtime's own (MQTT_WS_ORIGINS). */
  wsOrigins?: string[];
}

type ClientRole = Role | 'internal' | 'anonymous';

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export function portInUseMessage(port: number): string {
  return `MQTT port ${port} is already in use (is Mosquitto running?). Set MQTT_PORT to another port, or MQTT_URL=mqtt://127.0.0.1:${port} to use the running broker.`;
}

export class EmbeddedBroker {
  readonly aedes: AedesBroker;
  readonly root: string;
  readonly host: string;
  /** In-process writer credentials (random per broker). */
  readonly internal: { username: string; password: string };
  private readonly accounts = new Map<string, { hash: Buffer; role: Role }>();
  private readonly roles = new WeakMap<AedesClient, ClientRole>();
  /** Where each connection comes from (TCP socket or WebSocket stream): loopback and not proxied. */
  private readonly local = new WeakMap<object, boolean>();
  private readonly wsOrigins = new Set<string>();
  /** Serves MQTT over WebSocket on an HTTP server listening beyond loopback. */
  private exposedWs = false;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly wsAttachments = new Map<http.Server, { detach: () => void; refs: number }>();
  private readonly wss: WebSocketServer;
  private readonly log: (line: string) => void;
  private _port = 0;
  private closed = false;

  private constructor(aedes: AedesBroker, opts: BrokerOptions) {
    this.aedes = aedes;
    this.root = checkRoot(opts.root ?? DEFAULT_ROOT);
    this.host = opts.host ?? '127.0.0.1';
    this.log = opts.log ?? (() => undefined);
    this.internal = {
      username: `ai-dialer-internal-${randomBytes(6).toString('hex')}`,
      password: randomBytes(24).toString('base64url'),
    };
    this.addAccounts(opts.accounts ?? []);
    this.addWsOrigins(opts.wsOrigins ?? []);
    this.server = net.createServer((socket) => {
      // Nagle off: an event to a subscriber must not wait for the TCP ACK of the one before (aedes writes a
      // packet as one corked write, so nothing is split)
      socket.setNoDelay(true);
      coalesceWrites(socket);
      this.sockets.add(socket);
      this.local.set(socket, isLoopbackAddress(socket.remoteAddress));
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      aedes.handle(socket);
    });
    this.wss = new WebSocketServer({
      noServer: true,
      handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
    });
    aedes.authenticate = (client, username, password, done) => this.authenticate(client, username, password, done);
    aedes.authorizePublish = (client, packet, done) =>
      done(this.canPublish(client, packet.topic) ? null : new Error(`not allowed to publish to ${packet.topic}`));
    aedes.authorizeSubscribe = (client, sub, done) => {
      if (this.canSubscribe(client, sub.topic)) return done(null, sub);
      this.log(`MQTT: ${this.roleOf(client)} client ${client?.id} may not subscribe to ${sub.topic}`);
      done(null, null); // SUBACK 0x80 (failure) for this filter
    };
    aedes.on('clientError', () => undefined);
    aedes.on('connectionError', () => undefined);
  }

  /**
   * A connection for this process's own publisher (src/events/local-client.ts): events go into the broker by
   * a function call, not through a loopback socket to itself.
   */
  localClient(): LocalClient {
    return new LocalClient(this.aedes as unknown as LocalBroker);
  }

  /** Start a broker listening on TCP. Port taken -> DialerError 'mqtt_port_in_use' with one clear line. */
  static async start(opts: BrokerOptions = {}): Promise<EmbeddedBroker> {
    const aedes = await loadAedes().createBroker({ heartbeatInterval: 60000 });
    const b = new EmbeddedBroker(aedes, opts);
    const port = opts.port ?? 1883;
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: NodeJS.ErrnoException) => reject(err);
        b.server.once('error', onError);
        b.server.listen(port, b.host, () => {
          b.server.off('error', onError);
          resolve();
        });
      });
    } catch (err) {
      await new Promise<void>((r) => aedes.close(() => r()));
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EADDRINUSE') throw new DialerError('mqtt_port_in_use', portInUseMessage(port), { cause: err });
      if (e.code === 'EACCES')
        throw new DialerError(
          'mqtt_port_denied',
          `MQTT port ${port} needs privileges. Set MQTT_PORT to a port above 1023.`,
          { cause: err },
        );
      throw new DialerError(
        'mqtt_listen_failed',
        `MQTT broker cannot listen on ${b.host}:${port}: ${errorMessage(err)}`,
        { cause: err },
      );
    }
    b.server.on('error', (err) => b.log(`MQTT broker socket error: ${errorMessage(err)}`));
    b._port = (b.server.address() as net.AddressInfo).port;
    return b;
  }

  get port(): number {
    return this._port;
  }
  /** mqtt:// URL for in-process clients. */
  get url(): string {
    return `mqtt://${this.host === '0.0.0.0' || this.host === '::' ? '127.0.0.1' : this.host}:${this._port}`;
  }
  /** True when at least one writer or reader account is configured (anonymous is then refused). */
  get hasAccounts(): boolean {
    return this.accounts.size > 0;
  }

  /** Allow browser pages of these origins (scheme://host[:port]) to use MQTT over WebSocket. */
  addWsOrigins(origins: string[]): void {
    for (const o of origins) {
      const n = normaliseOrigin(o);
      if (!n)
        throw new DialerError(
          'mqtt_bad_origin',
          `MQTT WebSocket origin ${JSON.stringify(o)} is not scheme://host[:port]`,
        );
      this.wsOrigins.add(n);
    }
  }

  /** Anonymous clients are served only by a loopback-only broker without accounts, to loopback clients. */
  anonymousAllowed(client: AedesClient): boolean {
    if (this.hasAccounts || this.exposedWs || !isLoopbackAddress(this.host)) return false;
    return this.local.get(client.conn as object) === true;
  }

  /**
   * May a browser page of `origin` open MQTT over WebSocket on a server reached as `host` (the Host header)?
   * No Origin: not a browser. Same origin only by IP address or localhost (a DNS name could be rebound).
   */
  originAllowed(origin: string | undefined, host: string | undefined): boolean {
    if (origin === undefined) return true;
    const o = normaliseOrigin(origin);
    if (!o) return false;
    if (this.wsOrigins.has(o)) return true;
    if (!host) return false;
    let u: URL;
    try {
      u = new URL(o);
    } catch {
      return false;
    }
    if (u.host !== host.toLowerCase()) return false;
    const name = u.hostname.replace(/^\[|\]$/g, '');
    return name === 'localhost' || net.isIP(name) !== 0;
  }

  addAccounts(accounts: Account[]): void {
    for (const a of accounts) {
      if (!a || !a.username) continue;
      if (!a.password) throw new DialerError('mqtt_bad_account', `MQTT account ${a.username} has no password`);
      if (a.role !== 'writer' && a.role !== 'reader')
        throw new DialerError('mqtt_bad_account', `MQTT account ${a.username}: role must be writer or reader`);
      this.accounts.set(a.username, { hash: digest(a.password), role: a.role });
    }
  }

  private roleOf(client: AedesClient | null): ClientRole | undefined {
    return client ? this.roles.get(client) : undefined;
  }

  private authenticate(
    client: AedesClient,
    username: string | undefined,
    password: Buffer | undefined,
    done: (err: import('aedes').AuthenticateError | null, ok: boolean | null) => void,
  ): void {
    const pw = password ? password.toString('utf8') : '';
    if (username === this.internal.username) {
      if (timingSafeEqual(digest(pw), digest(this.internal.password))) {
        this.roles.set(client, 'internal');
        return done(null, true);
      }
    } else if (username) {
      const acc = this.accounts.get(username);
      if (acc && timingSafeEqual(digest(pw), acc.hash)) {
        this.roles.set(client, acc.role);
        return done(null, true);
      }
    } else if (this.anonymousAllowed(client)) {
      this.roles.set(client, 'anonymous');
      return done(null, true);
    }
    const why = username
      ? 'bad username or password'
      : this.hasAccounts
        ? 'anonymous access is off: accounts are configured'
        : 'anonymous access is only for loopback clients of a loopback-only broker';
    const err = Object.assign(new Error(why), {
      returnCode: username ? 4 : 5,
    });
    this.log(`MQTT: refused ${username ? `user ${username}` : 'anonymous client'} (${err.message})`);
    done(err, null);
  }

  private underRoot(topic: string): boolean {
    return topic === this.root || topic.startsWith(this.root + '/');
  }

  canPublish(client: AedesClient | null, topic: string): boolean {
    if (topic.startsWith('$SYS')) return false;
    if (!client) return true; // broker-internal (will messages of gone clients)
    const role = this.roleOf(client);
    if (role === 'internal' || role === 'writer') return true;
    if (role === 'anonymous') return !this.underRoot(topic);
    return false; // reader, or unknown
  }

  canSubscribe(client: AedesClient | null, filter: string): boolean {
    const role = this.roleOf(client);
    if (role === 'internal' || role === 'writer' || role === 'anonymous') return true;
    if (role === 'reader') return filter.startsWith(this.root + '/');
    return false;
  }

  /**
   * Serve MQTT over WebSocket at `path` on an HTTP server (its 'upgrade' event). Other upgrade paths are
   * left to the server's other listeners (Node-RED's own /comms). Returns a function that detaches.
   */
  attachWebSocket(server: http.Server, path = '/mqtt'): () => void {
    const addr = server.address();
    if (addr && typeof addr === 'object' && !isLoopbackAddress(addr.address)) this.exposedWs = true;
    const existing = this.wsAttachments.get(server);
    if (existing) {
      existing.refs++;
      return () => this.detach(server);
    }
    const onUpgrade = (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      let pathname: string;
      try {
        pathname = new URL(req.url ?? '/', 'http://x').pathname;
      } catch {
        return;
      }
      if (pathname !== path || this.closed) return; // not ours: another listener handles it
      const origin = req.headers.origin;
      if (!this.originAllowed(origin, req.headers.host)) {
        this.log(
          `MQTT: refused a WebSocket from origin ${JSON.stringify(String(origin).slice(0, 200))} (not this runtime's origin nor in MQTT_WS_ORIGINS)`,
        );
        socket.on('error', () => undefined);
        socket.end(
          'HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 23\r\n\r\norigin not allowed here',
        );
        return;
      }
      const proxied = !!(req.headers['x-forwarded-for'] || req.headers.forwarded || req.headers['x-real-ip']);
      this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        const stream = createWebSocketStream(ws);
        this.local.set(stream, !proxied && isLoopbackAddress(req.socket.remoteAddress));
        stream.on('error', () => stream.destroy());
        ws.on('error', () => undefined);
        this.aedes.handle(stream as unknown as Parameters<AedesBroker['handle']>[0], req);
      });
    };
    server.on('upgrade', onUpgrade);
    this.wsAttachments.set(server, { refs: 1, detach: () => server.off('upgrade', onUpgrade) });
    return () => this.detach(server);
  }

  private detach(server: http.Server): void {
    const a = this.wsAttachments.get(server);
    if (!a) return;
    if (--a.refs > 0) return;
    a.detach();
    this.wsAttachments.delete(server);
  }

  /** Close: disconnect every client (TCP and WebSocket), stop listening, remove upgrade listeners. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const a of this.wsAttachments.values()) a.detach();
    this.wsAttachments.clear();
    const serverClosed = new Promise<void>((r) => this.server.close(() => r()));
    await new Promise<void>((r) => this.aedes.close(() => r()));
    for (const ws of this.wss.clients) ws.terminate();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.wss.close(() => r()));
    await serverClosed;
  }
}

/**
 * What is written to a client during one turn of the event loop leaves in one socket write, at the end of the
 * turn. aedes writes every delivery from a callback of its own (setImmediate) and mqtt-packet corks the socket
 * only until the next tick, so N deliveries waiting for one subscriber cost N `writev` calls and, with Nagle off,
 * N TCP segments (the kernel's transmit and the loopback receive run inside each call: most of a busy broker's
 * CPU). Held for the turn, they leave as one. A broker that keeps up has one delivery per subscriber per turn:
 * nothing changes but a delay of the rest of the turn; one that has fallen behind (a burst, its first second
 * while its code is still being compiled) catches up with one write per subscriber per turn.
 */
export function coalesceWrites(socket: net.Socket): void {
  const cork = socket.cork;
  let held = false;
  const release = (): void => {
    held = false;
    socket.uncork();
  };
  socket.cork = function (this: net.Socket): void {
    if (!held) {
      held = true;
      cork.call(this);
      setImmediate(release);
    }
    cork.call(this);
  };
}

function isLoopbackAddress(a: string | undefined): boolean {
  if (!a) return false;
  const h = a.toLowerCase();
  if (h === '::1' || h === 'localhost') return true;
  return /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** `scheme://host[:port]` in lower case without a default port, or undefined. */
export function normaliseOrigin(o: string): string | undefined {
  const t = o.trim();
  if (!t || t === 'null') return undefined;
  try {
    const u = new URL(t);
    if (!/^https?:$/.test(u.protocol) || u.pathname.length > 1 || u.search || u.hash || u.username) return undefined;
    return u.origin.toLowerCase();
  } catch {
    return undefined;
  }
}

/** Brokers shared in this process, by share key (the port unless given). */
const shared = new Map<string, { broker: Promise<EmbeddedBroker>; refs: number }>();
let unsharedSeq = 0;

/**
 * Get the process's broker for `opts.port` (starting it on first use) and count a reference. Accounts of
 * later callers are added to the running broker. Port 0 starts a new, unshared broker unless a shareKey
 * is given.
 */
export async function acquireBroker(opts: BrokerOptions = {}): Promise<EmbeddedBroker> {
  const port = opts.port ?? 1883;
  const key = opts.shareKey ?? (port === 0 ? `unshared-${++unsharedSeq}` : String(port));
  const entry = shared.get(key);
  if (entry) {
    entry.refs++;
    try {
      const b = await entry.broker;
      b.addAccounts(opts.accounts ?? []);
      b.addWsOrigins(opts.wsOrigins ?? []);
      return b;
    } catch (err) {
      entry.refs--;
      throw err;
    }
  }
  const created = { broker: EmbeddedBroker.start(opts), refs: 1 };
  shared.set(key, created);
  try {
    return await created.broker;
  } catch (err) {
    if (shared.get(key) === created) shared.delete(key);
    throw err;
  }
}

/** Drop a reference; the last one closes the broker. */
export async function releaseBroker(b: EmbeddedBroker): Promise<void> {
  for (const [key, entry] of shared) {
    const eb = await entry.broker.catch(() => undefined);
    if (eb !== b) continue;
    if (--entry.refs > 0) return;
    shared.delete(key);
    await b.close();
    return;
  }
  await b.close();
}

/** The one line said when the MQTT port is taken and the embedded broker falls back to WebSocket only. */
export function mqttPortTakenNote(port: number): string {
  return (
    `MQTT port ${port} is already in use (another broker, e.g. Mosquitto?): the embedded broker serves MQTT over WebSocket only. ` +
    `Set MQTT_PORT to a free port for MQTT over TCP, or MQTT_URL=mqtt://127.0.0.1:${port} to use the running broker.`
  );
}
