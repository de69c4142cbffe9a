/**
 * Our small typed interface to Asterisk ARI.
 *
 * The operations come from ARI's own swagger documents: on connect we GET /ari/api-docs/resources.json
 * and the resource documents we use (asterisk, channels, applications, events) and build one operation
 * per `nickname` (path, HTTP method, parameters and where each goes) from them, so a resource or
 * operation this Asterisk does not offer is one clear error. Requests, credentials and the events
 * WebSocket are ours: per-connection basic auth, a keep-alive agent, a timeout on every request,
 * every failure typed (status codes kept), and reconnects with capped exponential backoff and
 * ping/pong liveness for as long as the node lives.
 *
 * (Earlier versions let `ari-client` / swagger-client 2.0 build the operations; it drops socket errors
 * silently, keeps credentials in one process-wide slot, throws document-load failures from a socket
 * callback and logs through console.log, so it needed a global console patch and a connect queue.)
 */
import { EventEmitter } from 'events';
import http from 'http';
import https from 'https';
import WebSocket from 'ws';
import { StageError, errorMessage, type FailureKind } from '../util/errors';

export type ConnectionState =
  'idle' | 'connecting' | 'connected' | 'reconnecting' | 'unauthorized' | 'unreachable' | 'error' | 'closed';

export interface AriOptions {
  /** Base URL of Asterisk's HTTP server, e.g. http://127.0.0.1:8088 (a trailing /ari is accepted). */
  url: string;
  username: string;
  password: string;
  /** Stasis application to register (the events WebSocket subscribes to it). */
  app: string;
  /** Backoff for reconnects: first delay and cap, ms. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Delay after a 401 before trying again (a wrong password is reported once, then retried slowly). */
  unauthorizedRetryMs?: number;
  /** WebSocket ping interval, ms (0 disables). */
  pingMs?: number;
  /** REST request timeout, ms. */
  requestTimeoutMs?: number;
}

export interface AriCallerId {
  name: string;
  number: string;
}

export interface AriChannel {
  id: string;
  name: string;
  state: string;
  caller?: AriCallerId;
  connected?: AriCallerId;
  dialplan?: { context: string; exten: string; priority: number; app_name?: string; app_data?: string };
  creationtime?: string;
}

export interface AriEvent {
  type: string;
  application?: string;
  timestamp?: string;
  channel?: AriChannel;
  peer?: AriChannel;
  caller?: AriChannel;
  dialstatus?: string;
  dialstring?: string;
  cause?: number;
  cause_txt?: string;
  variable?: string;
  value?: string;
  args?: string[];
  [k: string]: unknown;
}

export interface OriginateParams {
  endpoint: string;
  app: string;
  appArgs?: string;
  callerId?: string;
  /** Seconds before giving up dialling (-1: none). */
  timeout?: number;
  channelId?: string;
  variables?: Record<string, string>;
  formats?: string;
}

/** An ARI failure: stage `ari`, a kind, and the HTTP status when there was one. */
export class AriError extends StageError {
  readonly status?: number;
  constructor(kind: FailureKind, message: string, opts: { status?: number; cause?: unknown } = {}) {
    super('ari', kind, message, { cause: opts.cause });
    this.name = 'AriError';
    this.status = opts.status;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), status: this.status };
  }
}

/** Map an HTTP status to our failure kinds. */
export function errorForStatus(status: number, what: string, body?: string): AriError {
  let text = body ?? '';
  try {
    const j = JSON.parse(text) as { message?: string; error?: string };
    text = j.message ?? j.error ?? text;
  } catch {
    /* not JSON */
  }
  const msg = `${what}: HTTP ${status}${text ? ` ${text}` : ''}`;
  if (status === 401 || status === 403)
    return new AriError('unauthorized', `${msg} (check the ARI username and password)`, { status });
  if (status === 404) return new AriError('not_found', msg, { status });
  if (status === 400 || status === 422) return new AriError('invalid_input', msg, { status });
  if (status === 409 || status === 412) return new AriError('refused', msg, { status });
  if (status >= 500) return new AriError('bad_response', msg, { status });
  return new AriError('bad_response', msg, { status });
}

/** Map a socket-level error (ECONNREFUSED, ENOTFOUND, timeouts) to an AriError. */
export function errorForNetwork(err: unknown, what: string): AriError {
  if (err instanceof AriError) return err;
  const code = (err as { code?: string })?.code;
  if (
    code === 'ETIMEDOUT' ||
    code === 'ESOCKETTIMEDOUT' ||
    code === 'ECONNRESET' ||
    code === 'UND_ERR_CONNECT_TIMEOUT'
  ) {
    return new AriError('timeout', `${what}: ${code}`, { cause: err });
  }
  return new AriError('network', `${what}: ${code ?? errorMessage(err)} (is Asterisk's HTTP server reachable?)`, {
    cause: err,
  });
}

/** One operation of an ARI resource document (swagger 1.1, as Asterisk serves them). */
export interface AriOperation {
  /** Path below /ari, e.g. `/channels/{channelId}/variable`. */
  path: string;
  method: string;
  parameters: Array<{ name: string; paramType: 'path' | 'query' | 'body' | 'header' | 'form'; required?: boolean }>;
}

/** Resource name -> operation nickname -> operation. */
export type AriApi = Record<string, Record<string, AriOperation>>;

/** The resources this client uses; each must be listed by resources.json. */
export const ARI_RESOURCES = ['asterisk', 'channels', 'applications', 'events'] as const;

interface SwaggerDoc {
  apis?: Array<{
    path?: string;
    operations?: Array<{ httpMethod?: string; nickname?: string; parameters?: AriOperation['parameters'] }>;
  }>;
}

/** Build the operations of one resource document (`{apis: [{path, operations: [{httpMethod, nickname, parameters}]}]}`). */
export function operationsOf(doc: unknown, resource: string): Record<string, AriOperation> {
  const apis = (doc as SwaggerDoc | null)?.apis;
  if (!Array.isArray(apis)) throw new AriError('bad_response', `ARI ${resource} document has no apis`);
  const ops: Record<string, AriOperation> = {};
  for (const api of apis) {
    if (typeof api?.path !== 'string' || !Array.isArray(api.operations)) continue;
    for (const op of api.operations) {
      if (typeof op?.nickname !== 'string' || typeof op.httpMethod !== 'string') continue;
      ops[op.nickname] = {
        path: api.path,
        method: op.httpMethod.toUpperCase(),
        parameters: Array.isArray(op.parameters) ? op.parameters.filter((x) => typeof x?.name === 'string') : [],
      };
    }
  }
  return ops;
}

/** Normalise a base URL: keep scheme://host:port, drop a trailing /ari or slash. */
export function normaliseBaseUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url.trim());
  } catch {
    throw new AriError('not_configured', `ARI URL is not a valid URL: ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new AriError('not_configured', `ARI URL must be http(s): ${url}`);
  return new URL(`${u.protocol}//${u.host}`);
}

/**
 * A connection to one Asterisk: REST operations plus the events WebSocket of one Stasis app.
 * Events: 'event' (AriEvent), 'state' (state, error?), 'connected' (first time and after every
 * reconnect, with `{ reconnect: boolean }`), 'warning' (message).
 */
export class AriConnection extends EventEmitter {
  readonly app: string;
  private readonly base: URL;
  private readonly opts: AriOptions;
  private api?: AriApi;
  private ws?: WebSocket;
  private _state: ConnectionState = 'idle';
  private _lastError?: AriError;
  private closed = false;
  private retryTimer?: NodeJS.Timeout;
  private pingTimer?: NodeJS.Timeout;
  private attempt = 0;
  private everConnected = false;
  private reportedKey = '';
  private starting?: Promise<void>;

  constructor(opts: AriOptions) {
    super();
    this.setMaxListeners(0);
    if (!opts.app || !/^[A-Za-z0-9_.-]+$/.test(opts.app))
      throw new AriError(
        'not_configured',
        `Stasis app name must be letters, digits, _ . - (got ${JSON.stringify(opts.app)})`,
      );
    if (!opts.username) throw new AriError('not_configured', 'ARI username is empty');
    this.opts = opts;
    this.app = opts.app;
    this.base = normaliseBaseUrl(opts.url);
  }

  get state(): ConnectionState {
    return this._state;
  }
  get lastError(): AriError | undefined {
    return this._lastError;
  }
  get url(): string {
    return this.base.toString().replace(/\/$/, '');
  }

  private setState(s: ConnectionState, err?: AriError): void {
    this._state = s;
    if (err) this._lastError = err;
    this.emit('state', s, err);
  }

  /**
   * Connect (REST documents + events WebSocket). Resolves once connected; on failure it rejects with
   * an AriError AND keeps retrying in the background with backoff (state tells the story) until close().
   */
  start(): Promise<void> {
    if (this.starting) return this.starting;
    this.starting = new Promise<void>((resolve, reject) => {
      let settled = false;
      const onConnected = (): void => {
        if (!settled) {
          settled = true;
          this.off('state', onState);
          resolve();
        }
      };
      const onState = (s: ConnectionState, err?: AriError): void => {
        if (!settled && err && (s === 'unauthorized' || s === 'unreachable' || s === 'error')) {
          settled = true;
          this.off('connected', onConnected);
          this.off('state', onState);
          reject(err);
        }
      };
      this.once('connected', onConnected);
      this.on('state', onState);
      void this.attemptConnect();
    });
    // A rejected start is also reported through 'state'; avoid an unhandled rejection for callers that only listen.
    this.starting.catch(() => undefined);
    return this.starting;
  }

  private async attemptConnect(): Promise<void> {
    if (this.closed) return;
    this.setState(this.everConnected ? 'reconnecting' : 'connecting');
    try {
      if (!this.api) this.api = await this.loadApi();
      if (this.closed) return;
      await this.openEvents();
    } catch (err) {
      if (this.closed) return;
      const e = err instanceof AriError ? err : errorForNetwork(err, 'connect');
      this.fail(e);
    }
  }

  /** Report a connection failure once per distinct cause, then retry with backoff. */
  private fail(e: AriError): void {
    const key = `${e.kind}:${e.status ?? ''}`;
    const state: ConnectionState =
      e.kind === 'unauthorized'
        ? 'unauthorized'
        : e.kind === 'network' || e.kind === 'timeout'
          ? 'unreachable'
          : 'error';
    const delay = this.nextDelay(e.kind === 'unauthorized');
    if (key !== this.reportedKey) {
      this.reportedKey = key;
      this.emit('warning', `${e.message}; retrying in ${Math.round(delay / 1000)} s`);
    }
    this._lastError = e;
    this.setState(state, e);
    this.schedule(delay);
  }

  private nextDelay(unauthorized: boolean): number {
    if (unauthorized) return this.opts.unauthorizedRetryMs ?? 30_000;
    const initial = this.opts.backoff?.initialMs ?? 250;
    const max = this.opts.backoff?.maxMs ?? 30_000;
    const d = Math.min(max, initial * 2 ** Math.min(this.attempt, 20));
    this.attempt++;
    return Math.round(d * (0.8 + Math.random() * 0.4));
  }

  /** When the next retry is due (ms from now), for status lines. */
  retryInMs?: number;

  private schedule(delay: number): void {
    if (this.closed) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryInMs = delay;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.retryInMs = undefined;
      void this.attemptConnect();
    }, delay);
  }

  /** GET one ARI document as JSON (typed errors: unauthorized, unreachable, not ARI). */
  private async getDoc(name: string): Promise<unknown> {
    const u = new URL(`/ari/api-docs/${name}`, this.base);
    const what = `GET ${u.pathname}`;
    const r = await this.request('GET', u, undefined, what);
    if (r.status !== 200) throw errorForStatus(r.status, what, r.body);
    try {
      return JSON.parse(r.body) as unknown;
    } catch {
      const doc = name === 'resources.json' ? 'an ARI resource listing' : 'an ARI resource document';
      throw new AriError('bad_response', `${what}: not ${doc} (not JSON; is this Asterisk's HTTP server?)`);
    }
  }

  /** Load resources.json and the documents of the resources we use; build the operations from them. */
  private async loadApi(): Promise<AriApi> {
    const listing = (await this.getDoc('resources.json')) as { apis?: Array<{ path?: unknown }> } | null;
    const listed = listing?.apis;
    if (!Array.isArray(listed))
      throw new AriError('bad_response', 'GET /ari/api-docs/resources.json: not an ARI resource listing');
    const api: AriApi = {};
    for (const name of ARI_RESOURCES) {
      if (!listed.some((a) => typeof a?.path === 'string' && a.path.includes(`/${name}.`)))
        throw new AriError('bad_response', `ARI does not offer the ${name} resource`);
      api[name] = operationsOf(await this.getDoc(`${name}.json`), name);
    }
    return api;
  }

  private openEvents(): Promise<void> {
    const proto = this.base.protocol === 'https:' ? 'wss:' : 'ws:';
    const u = `${proto}//${this.base.host}/ari/events?app=${encodeURIComponent(this.app)}&api_key=${encodeURIComponent(this.opts.username)}:${encodeURIComponent(this.opts.password)}`;
    return new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(u, { handshakeTimeout: this.opts.requestTimeoutMs ?? 10_000 });
      let opened = false;
      ws.on('unexpected-response', (_req, res) => {
        res.resume();
        ws.terminate();
        reject(errorForStatus(res.statusCode ?? 0, 'events WebSocket'));
      });
      ws.on('open', () => {
        opened = true;
        this.ws = ws;
        const reconnect = this.everConnected;
        this.everConnected = true;
        this.attempt = 0;
        this.reportedKey = '';
        this._lastError = undefined;
        this.startPing(ws);
        this.setState('connected');
        this.emit('connected', { reconnect });
        resolve();
      });
      ws.on('message', (data) => {
        let ev: AriEvent;
        try {
          ev = JSON.parse(data.toString()) as AriEvent;
          if (!ev || typeof ev.type !== 'string') throw new Error('no type');
        } catch {
          this.emit('warning', 'ignored a malformed ARI event');
          return;
        }
        this.emit('event', ev);
      });
      ws.on('error', (err) => {
        if (!opened) reject(errorForNetwork(err, 'events WebSocket'));
      });
      ws.on('close', () => {
        if (this.ws === ws) this.ws = undefined;
        this.stopPing();
        if (!opened || this.closed) return;
        // Lost the events stream: Asterisk restarted or the network dropped.
        const e = new AriError('network', 'events WebSocket closed');
        this._lastError = e;
        this.setState('reconnecting', e);
        this.schedule(this.nextDelay(false));
      });
    });
  }

  private startPing(ws: WebSocket): void {
    this.stopPing();
    const every = this.opts.pingMs ?? 20_000;
    if (!every) return;
    let alive = true;
    ws.on('pong', () => (alive = true));
    this.pingTimer = setInterval(() => {
      if (!alive) {
        ws.terminate();
        return;
      }
      alive = false;
      try {
        ws.ping();
      } catch {
        /* closing */
      }
    }, every);
    this.pingTimer.unref?.();
  }

  private stopPing(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.stopPing();
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          ws.terminate();
          resolve();
        }, 1000);
        ws.once('close', () => {
          clearTimeout(t);
          resolve();
        });
        ws.close();
      });
    }
    this.agent?.destroy();
    this.agent = undefined;
    this.setState('closed');
    this.removeAllListeners('event');
  }

  // ------------------------------------------------------------------ REST

  /**
   * The REST client; while the first connection attempt is still running, wait for it (up to the
   * request timeout) instead of failing calls that arrive right after deploy. A known failure
   * (wrong password, unreachable) is returned at once.
   */
  private ready(what: string): Promise<AriApi> {
    if (this.api) return Promise.resolve(this.api);
    if (this.closed) return Promise.reject(new AriError('network', `${what}: ARI connection is closed`));
    if (this._state !== 'connecting' && this._state !== 'idle') {
      const e = this._lastError;
      return Promise.reject(
        e
          ? new AriError(e.kind, `${what}: ${e.message}`, { status: e.status, cause: e })
          : new AriError('network', `${what}: not connected to ARI`),
      );
    }
    const timeoutMs = this.opts.requestTimeoutMs ?? 10_000;
    return new Promise<AriApi>((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('state', onState);
      };
      const onState = (): void => {
        if (this.api) {
          cleanup();
          resolve(this.api);
        } else if (this._state !== 'connecting' && this._state !== 'idle') {
          cleanup();
          this.ready(what).then(resolve, reject);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new AriError('timeout', `${what}: not connected to ARI after ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('state', onState);
    });
  }

  /**
   * One REST operation: path, method and parameters from the resource documents; the request with
   * this connection's credentials, keep-alive agent and timeout; every failure typed.
   */
  private async call<T>(
    resource: string,
    operation: string,
    args: Record<string, unknown>,
    what: string,
    parse: 'json' | 'none' = 'json',
  ): Promise<T> {
    const api = await this.ready(what);
    const op = api[resource]?.[operation];
    if (!op)
      throw new AriError('not_found', `${what}: operation ${resource}.${operation} missing from the ARI documents`);
    let p = op.path;
    const query = new URLSearchParams();
    let body: string | undefined;
    for (const prm of op.parameters ?? []) {
      const v = args[prm.name];
      if (prm.paramType === 'path') {
        if (v === undefined || v === null || v === '')
          throw new AriError('invalid_input', `${what}: ${prm.name} is required`);
        p = p.replace(`{${prm.name}}`, encodeURIComponent(String(v)));
      } else if (prm.paramType === 'query') {
        if (v !== undefined && v !== null) query.set(prm.name, String(v));
        else if (prm.required) throw new AriError('invalid_input', `${what}: ${prm.name} is required`);
      } else if (prm.paramType === 'body' && v !== undefined) {
        body = JSON.stringify({ [prm.name]: v });
      }
    }
    const qs = query.toString();
    const url = new URL(`/ari${p}${qs ? `?${qs}` : ''}`, this.base);
    const r = await this.request(op.method, url, body, what);
    if (r.status >= 400) throw errorForStatus(r.status, what, r.body);
    if (parse === 'none' || !r.body) return undefined as T;
    try {
      return JSON.parse(r.body) as T;
    } catch {
      throw new AriError('bad_response', `${what}: response is not JSON`);
    }
  }

  private agent?: http.Agent;

  private request(
    method: string,
    url: URL,
    body: string | undefined,
    what: string,
    retried = false,
  ): Promise<{ status: number; body: string }> {
    const mod = url.protocol === 'https:' ? https : http;
    this.agent ??= new mod.Agent({ keepAlive: true, maxSockets: 64 });
    const timeoutMs = this.opts.requestTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = {
        Authorization: `Basic ${Buffer.from(`${this.opts.username}:${this.opts.password}`).toString('base64')}`,
        Accept: 'application/json',
      };
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        headers['Content-Length'] = Buffer.byteLength(body);
      }
      const req = mod.request(url, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', (err) => {
          clearTimeout(timer);
          reject(errorForNetwork(err, what));
        });
      });
      const timer = setTimeout(() => {
        req.destroy();
        reject(new AriError('timeout', `${what}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        // A kept-alive socket the server closed just as we reused it: send once more on a fresh one.
        if (req.reusedSocket && err.code === 'ECONNRESET' && !retried) {
          this.request(method, url, body, what, true).then(resolve, reject);
          return;
        }
        reject(errorForNetwork(err, what));
      });
      req.end(body);
    });
  }

  info(): Promise<Record<string, unknown>> {
    return this.call('asterisk', 'getInfo', {}, 'GET /asterisk/info');
  }

  originate(p: OriginateParams): Promise<AriChannel> {
    const args: Record<string, unknown> = { endpoint: p.endpoint, app: p.app };
    if (p.appArgs !== undefined) args.appArgs = p.appArgs;
    if (p.callerId) args.callerId = p.callerId;
    if (p.timeout !== undefined) args.timeout = p.timeout;
    if (p.channelId) args.channelId = p.channelId;
    if (p.formats) args.formats = p.formats;
    // The `variables` body parameter: sent as {"variables": {...}}, which Asterisk sets on the new channel.
    if (p.variables && Object.keys(p.variables).length) args.variables = p.variables;
    return this.call('channels', 'originate', args, 'POST /channels (originate)');
  }

  getChannel(channelId: string): Promise<AriChannel> {
    return this.call('channels', 'get', { channelId }, `GET /channels/${channelId}`);
  }

  listChannels(): Promise<AriChannel[]> {
    return this.call('channels', 'list', {}, 'GET /channels');
  }

  hangup(channelId: string, reason = 'normal'): Promise<void> {
    return this.call('channels', 'hangup', { channelId, reason }, `DELETE /channels/${channelId}`, 'none');
  }

  continueInDialplan(
    channelId: string,
    where: { context?: string; extension?: string; priority?: number },
  ): Promise<void> {
    const args: Record<string, unknown> = { channelId };
    if (where.context) args.context = where.context;
    if (where.extension) args.extension = where.extension;
    if (where.priority !== undefined) args.priority = where.priority;
    return this.call('channels', 'continueInDialplan', args, `POST /channels/${channelId}/continue`, 'none');
  }

  async getChannelVar(channelId: string, variable: string): Promise<string | undefined> {
    try {
      const r = await this.call<{ value: string }>(
        'channels',
        'getChannelVar',
        { channelId, variable },
        `GET /channels/${channelId}/variable`,
      );
      return r?.value;
    } catch (err) {
      if (err instanceof AriError && err.kind === 'not_found' && /variable/i.test(err.message)) return undefined;
      throw err;
    }
  }

  setChannelVar(channelId: string, variable: string, value: string): Promise<void> {
    return this.call(
      'channels',
      'setChannelVar',
      { channelId, variable, value },
      `POST /channels/${channelId}/variable`,
      'none',
    );
  }

  listApplications(): Promise<Array<{ name: string; channel_ids: string[] }>> {
    return this.call('applications', 'list', {}, 'GET /applications');
  }
}
