/**
 * The FastAGI server: accepts Asterisk's connections, vets them (allow-list, session cap,
 * environment deadline, shared secret), and hands each accepted session out as a `session` event.
 * Refused connections are logged with the reason and closed.
 */
import net from 'net';
import { EventEmitter } from 'events';
import { timingSafeEqual, createHash } from 'crypto';
import { DialerError } from '../util/errors';
import { AllowList } from './cidr';
import { envArgs, parseNetworkScript } from './protocol';
import { callIdOfEnv } from './refusals';
import { registerSession, unregisterSession } from './registry';
import { FastAgiSession, resolveSessionOptions, type SessionHooks, type SessionOptions } from './session';

export interface AgiLogger {
  info(msg: string): void;
  warn(msg: string): void;
}

export interface AgiServerOptions extends SessionOptions {
  /** Bind address (default AGI_HOST or 127.0.0.1; 0.0.0.0 inside Docker). */
  host?: string;
  /** Port (default AGI_PORT or 4573; 0 picks a free one). */
  port?: number;
  /** Time allowed to send the whole environment block, ms (default 5000). */
  envTimeoutMs?: number;
  /** Most concurrent connections, sessions and handshakes together (default 5000). */
  maxSessions?: number;
  /** Source addresses allowed, CIDR blocks (empty: any). */
  allow?: string | string[];
  /** Shared secret: `?secret=` in the AGI URL (agi_network_script) or an argument `secret=...`. */
  secret?: string;
  /** Put accepted sessions in the process-wide registry (default true). */
  register?: boolean;
  log?: AgiLogger;
}

export type RefusalReason =
  | 'not_allowed'
  | 'too_many_sessions'
  | 'env_timeout'
  | 'bad_env'
  | 'protocol'
  | 'closed'
  | 'bad_secret'
  | 'shutting_down'
  // the session may not drive the call it names (src/agi/call-token.ts)
  | 'bad_token'
  | 'unknown_call'
  | 'call_closed'
  | 'already_driven'
  | 'store_unavailable';

export interface Refusal {
  remoteAddress: string;
  reason: RefusalReason;
  message: string;
  /** The call the refused session belonged to, when its environment block told (CALL_ID, or our channel id). */
  callId?: number;
}

/** Connections over the session cap whose environment block is still read (to know which call was refused). */
const OVER_CAP_HANDSHAKES = 64;

const silentLog: AgiLogger = { info: () => undefined, warn: () => undefined };

/** Server options from a node/config object, falling back to the environment variables. */
export function resolveServerOptions(
  cfg: { host?: string; port?: number | string; allow?: string; secret?: string; maxSessions?: number | string } = {},
  env: NodeJS.ProcessEnv = process.env,
): { host: string; port: number; allow: string; secret?: string; maxSessions: number } {
  const host = (cfg.host || env.AGI_HOST || '127.0.0.1').trim();
  const portRaw = cfg.port !== undefined && cfg.port !== '' ? cfg.port : env.AGI_PORT || 4573;
  const port = Number(portRaw);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new DialerError('agi_bad_config', `FastAGI port must be 0-65535, got ${JSON.stringify(portRaw)}`);
  const maxRaw =
    cfg.maxSessions !== undefined && cfg.maxSessions !== '' ? cfg.maxSessions : env.AGI_MAX_SESSIONS || 5000;
  const maxSessions = Number(maxRaw);
  if (!Number.isInteger(maxSessions) || maxSessions < 1)
    throw new DialerError(
      'agi_bad_config',
      `FastAGI session cap must be a positive integer, got ${JSON.stringify(maxRaw)}`,
    );
  const secret = cfg.secret || env.AGI_SECRET || undefined;
  return { host, port, allow: cfg.allow || env.AGI_ALLOW || '', secret, maxSessions };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time comparison of two secrets. */
function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

export class AgiServer extends EventEmitter {
  private readonly server: net.Server;
  private readonly allow: AllowList;
  private readonly sessions = new Set<FastAgiSession>();
  /** Connections still sending their environment block, with their deadline. */
  private readonly handshakes = new Map<FastAgiSession, number>();
  private readonly refused = new WeakSet<FastAgiSession>();
  /** Over the cap: read the environment block, then refuse (so the call is recorded as failed, not as a conversation). */
  private readonly overCap = new Set<FastAgiSession>();
  private handshakeSweep?: NodeJS.Timeout;
  private readonly log: AgiLogger;
  private closing = false;
  private readonly o: AgiServerOptions & { envTimeoutMs: number; maxSessions: number };
  private readonly sessionOpts: SessionOptions;
  private readonly hooks: SessionHooks;

  constructor(opts: AgiServerOptions = {}) {
    super();
    this.o = { envTimeoutMs: 5000, maxSessions: 5000, ...opts };
    this.allow = new AllowList(opts.allow ?? []);
    this.log = opts.log ?? silentLog;
    // Resolved once; TCP_NODELAY is set at accept time by the server.
    this.sessionOpts = resolveSessionOptions({ ...opts, setNoDelay: false });
    this.server = net.createServer({ noDelay: true }, (socket) => this.onConnection(socket));
    this.server.maxConnections = this.o.maxSessions + 64; // hard stop; the soft cap below logs a reason
    this.hooks = {
      onEnv: (s) => this.onEnv(s),
      onEnvError: (s, err, reason) => {
        this.handshakes.delete(s);
        if (this.refused.has(s)) return; // already refused for another reason
        this.refuse(
          s.remoteAddress,
          reason as RefusalReason,
          reason === 'closed' ? 'connection closed before the environment block ended' : err.message,
          s,
        );
      },
      onClose: (s) => {
        this.handshakes.delete(s);
        this.overCap.delete(s);
        this.sessions.delete(s);
        if (this.o.register !== false) unregisterSession(s.id);
      },
    };
  }

  /** Start listening. Rejects with one clear line when the port is taken or not allowed. */
  listen(): Promise<{ host: string; port: number }> {
    const host = this.o.host ?? '127.0.0.1';
    const port = this.o.port ?? 4573;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        this.server.off('listening', onListening);
        reject(listenError(err, host, port));
      };
      const onListening = () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.emit('error', err));
        // One sweep for every handshake deadline instead of a timer per connection.
        const every = Math.max(10, Math.min(250, Math.floor(this.o.envTimeoutMs / 4)));
        this.handshakeSweep = setInterval(() => this.sweepHandshakes(), every);
        this.handshakeSweep.unref();
        resolve(this.address());
      };
      this.server.once('error', onError);
      this.server.once('listening', onListening);
      this.server.listen({ host, port, backlog: 4096 });
    });
  }

  address(): { host: string; port: number } {
    const a = this.server.address();
    if (a && typeof a === 'object') return { host: a.address, port: a.port };
    return { host: this.o.host ?? '127.0.0.1', port: this.o.port ?? 4573 };
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** The sessions open now. */
  liveSessions(): FastAgiSession[] {
    return [...this.sessions];
  }

  /** Stop accepting connections now (the port is free at once); the sessions open go on. */
  stopAccepting(): Promise<void> {
    this.closing = true;
    if (!this.listenerClosed)
      this.listenerClosed = new Promise<void>((resolve) =>
        this.server.listening ? this.server.close(() => resolve()) : resolve(),
      );
    return this.listenerClosed;
  }
  private listenerClosed?: Promise<void>;

  /** Stop accepting, close every session, resolve when the listener is closed. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.handshakeSweep) clearInterval(this.handshakeSweep);
    const closed = this.stopAccepting();
    for (const s of [...this.sessions]) s.destroy();
    await closed;
  }

  /** Refuse an accepted session (e.g. it names a call it was not given): logged, 'refused' emitted, closed. */
  refuseSession(s: FastAgiSession, reason: RefusalReason, message: string): void {
    this.refuse(s.remoteAddress, reason, message, s);
  }

  private sweepHandshakes(): void {
    if (this.handshakes.size === 0) return;
    const now = Date.now();
    for (const [s, deadline] of this.handshakes) {
      if (deadline <= now) {
        this.handshakes.delete(s);
        this.refuse(
          s.remoteAddress,
          'env_timeout',
          `environment block not finished within ${this.o.envTimeoutMs} ms`,
          s,
        );
      }
    }
  }

  private refuse(
    remoteAddress: string | undefined,
    reason: RefusalReason,
    message: string,
    target: FastAgiSession | net.Socket,
  ): void {
    const r: Refusal = { remoteAddress: remoteAddress || '?', reason, message };
    // name the call only for a session that comes from our Asterisk (it knows the shared secret, when one
    // is set): a stranger must not get someone's call recorded as failed
    if (target instanceof FastAgiSession && target.env && reason !== 'bad_secret' && reason !== 'not_allowed') {
      const id = this.o.secret && !this.secretMatches(target) ? undefined : callIdOfEnv(target.env);
      if (id !== undefined) r.callId = id;
    }
    this.log.warn(`FastAGI refused ${r.remoteAddress}: ${reason} (${message})`);
    this.emit('refused', r);
    if (target instanceof FastAgiSession) this.refused.add(target);
    target.destroy();
  }

  private onConnection(socket: net.Socket): void {
    if (this.closing) return this.refuse(socket.remoteAddress, 'shutting_down', 'server is closing', socket);
    if (!this.allow.empty && !this.allow.allows(socket.remoteAddress)) {
      return this.refuse(socket.remoteAddress, 'not_allowed', `address not in allow-list (${this.allow})`, socket);
    }
    if (this.sessions.size >= this.o.maxSessions) {
      if (this.overCap.size >= OVER_CAP_HANDSHAKES)
        return this.refuse(
          socket.remoteAddress,
          'too_many_sessions',
          `${this.o.maxSessions} sessions already open`,
          socket,
        );
      // read its environment block first (bounded), to tell which call is refused
      const s = new FastAgiSession(socket, this.sessionOpts, this.hooks);
      this.overCap.add(s);
      this.handshakes.set(s, Date.now() + this.o.envTimeoutMs);
      return;
    }
    const s = new FastAgiSession(socket, this.sessionOpts, this.hooks);
    this.sessions.add(s);
    this.handshakes.set(s, Date.now() + this.o.envTimeoutMs);
  }

  private onEnv(s: FastAgiSession): void {
    this.handshakes.delete(s);
    if (this.overCap.delete(s))
      return this.refuse(s.remoteAddress, 'too_many_sessions', `${this.o.maxSessions} sessions already open`, s);
    if (this.o.secret) {
      if (!this.secretMatches(s))
        return this.refuse(s.remoteAddress, 'bad_secret', 'missing or wrong shared secret', s);
      redactSecret(s, this.o.secret);
    }
    if (this.o.register !== false) registerSession(s);
    this.emit('session', s);
  }

  private secretMatches(s: FastAgiSession): boolean {
    const want = this.o.secret as string;
    const fromUrl = parseNetworkScript(s.env.network_script).params.get('secret');
    if (fromUrl !== null && sameSecret(fromUrl, want)) return true;
    for (const a of envArgs(s.env)) {
      if (a.startsWith('secret=') && sameSecret(a.slice(7), want)) return true;
    }
    return false;
  }
}

/** Keep the secret out of msgs and logs: replace it wherever the environment carries it. */
function redactSecret(s: FastAgiSession, secret: string): void {
  for (const k of Object.keys(s.env)) {
    const v = s.env[k];
    if (v.includes(secret)) s.env[k] = v.split(secret).join('***');
    if (v.includes(encodeURIComponent(secret))) s.env[k] = s.env[k].split(encodeURIComponent(secret)).join('***');
  }
}

function listenError(err: NodeJS.ErrnoException, host: string, port: number): DialerError {
  if (err.code === 'EADDRINUSE') {
    return new DialerError(
      'agi_port_in_use',
      `FastAGI cannot listen on ${host}:${port}: the port is already in use (stop the other server or set AGI_PORT)`,
      { cause: err },
    );
  }
  if (err.code === 'EACCES')
    return new DialerError('agi_port_denied', `FastAGI cannot listen on ${host}:${port}: permission denied`, {
      cause: err,
    });
  if (err.code === 'EADDRNOTAVAIL')
    return new DialerError(
      'agi_bad_host',
      `FastAGI cannot listen on ${host}:${port}: no such local address (check AGI_HOST)`,
      { cause: err },
    );
  return new DialerError('agi_listen_failed', `FastAGI cannot listen on ${host}:${port}: ${err.message}`, {
    cause: err,
  });
}
