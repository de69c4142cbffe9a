/**
 * The simulator's ARI side: the REST subset we use, the swagger documents the ARI client loads, and the
 * events WebSocket, behaving as Asterisk 22 does (see the Asterisk facts and the ARI side in
 * docs/contributing/simulator.md). Each originated channel follows the persona of the number dialled; on
 * continue-in-dialplan into an AGI context it connects to fastagi-in with the AGI client.
 *
 * Cheap per call: one small object and at most one timer per channel, so thousands of simulated
 * calls fit in one process.
 */
import { EventEmitter } from 'events';
import http from 'http';
import type { AddressInfo } from 'net';
import { WebSocketServer, WebSocket } from 'ws';
import { runAgiCall } from './agi-client';
import { demoPersona, type Persona } from './persona';
import { resourceDoc } from './swagger';
import { causeText } from '../ari/outcome';
import { errorMessage } from '../util/errors';

export type ChannelState = 'Down' | 'Ring' | 'Ringing' | 'Up';

export interface SimChannel {
  id: string;
  /** Asterisk's uniqueid (`<epoch>.<n>`); the id too unless the originate gave a channelId. */
  uniqueid: string;
  name: string;
  state: ChannelState;
  tech: string;
  /** The number dialled (resource part of the endpoint). */
  phone: string;
  endpoint: string;
  caller: { name: string; number: string };
  app?: string;
  appArgs: string[];
  inStasis: boolean;
  dialplan: { context: string; exten: string; priority: number; app_name: string; app_data: string };
  variables: Record<string, string>;
  /** The originate's `formats` (e.g. slin), if any. */
  formats?: string;
  creationtime: string;
  createdAt: number;
  answeredAt?: number;
  persona: Persona;
  lastDialStatus: string;
  timer?: NodeJS.Timeout;
  agiAbort?: AbortController;
  destroyed: boolean;
}

export interface AgiTarget {
  host: string;
  port: number;
  /** Dialplan contexts whose first priority runs AGI against fastagi-in. */
  contexts: string[];
  /** Path after host:port/ in the agi:// URL (agi_network_script). */
  script?: string;
  /** fastagi-in's shared secret (AGI_SECRET), sent as `?secret=` in the script, as extensions-agi.conf does. */
  secret?: string;
}

export interface AriSimOptions {
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  username?: string;
  password?: string;
  /** Time factor: 10 makes every ring and pause ten times shorter. */
  speed?: number;
  /** Persona per dialled number (exact string as it appears in the endpoint). */
  personas?: Record<string, Persona>;
  /** Persona for numbers without one; default demoPersona. */
  defaultPersona?: (phone: string) => Persona;
  agi?: Partial<AgiTarget>;
  /** Flat aliases of agi.host / agi.port / agi.secret. */
  agiHost?: string;
  agiPort?: number;
  agiSecret?: string;
  recordingsRoot?: string;
  /** Asterisk's entity id (MAC-like) reported in events and info. */
  asteriskId?: string;
  /** Delay between Down and Ringing, ms before speed scaling (default 60). */
  progressMs?: number;
  /**
   * ari.conf `channelvars`: variables every channel snapshot carries as `channelvars` (as Asterisk 22
   * does when ari.conf lists them, an unset one as ''; asterisk-config/ari.conf lists CALL_ID,
   * CAMPAIGN_ID, CONTACT_ID, CONTACT_PHONE). Default those four; [] for none.
   */
  channelvars?: string[];
}

const TECHS = new Set(['PJSIP', 'SIP', 'Local', 'IAX2', 'DAHDI']);
const HANGUP_REASONS: Record<string, number> = {
  normal: 16,
  busy: 17,
  congestion: 34,
  no_answer: 19,
  timeout: 19,
  rejected: 21,
  unallocated: 1,
  normal_unspecified: 31,
  number_incomplete: 28,
  codec_mismatch: 58,
  interworking: 127,
  failure: 38,
  answered_elsewhere: 26,
};

/** Asterisk's timestamp format: 2026-11-24T22:10:00.123+0000. */
export function asteriskTime(d = new Date()): string {
  return d.toISOString().replace('Z', '+0000');
}

/** The number part of an endpoint: `PJSIP/+1212@trunk` -> `+1212`; `PJSIP/trunk/sip:+1212@host` -> `+1212`. */
export function phoneOfEndpoint(endpoint: string): string {
  const slash = endpoint.indexOf('/');
  let rest = slash >= 0 ? endpoint.slice(slash + 1) : endpoint;
  const sip = /sips?:([^@;]+)/.exec(rest);
  if (sip) return sip[1];
  const at = rest.indexOf('@');
  if (at >= 0) rest = rest.slice(0, at);
  return rest;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface WsClient {
  ws: WebSocket;
  apps: Set<string>;
}

export class AriSimulator extends EventEmitter {
  readonly username: string;
  readonly password: string;
  readonly speed: number;
  readonly asteriskId: string;
  private readonly opts: AriSimOptions;
  private readonly personas = new Map<string, Persona>();
  private readonly chans = new Map<string, SimChannel>();
  private readonly clients = new Set<WsClient>();
  private readonly apps = new Map<string, { channelIds: Set<string> }>();
  private server?: http.Server;
  private wss?: WebSocketServer;
  private seq = 0;
  private boundPort = 0;
  private readonly startedAt = new Date();
  agi: AgiTarget;

  constructor(opts: AriSimOptions = {}) {
    super();
    this.opts = opts;
    this.username = opts.username ?? 'asterisk';
    if (!opts.password) throw new Error('AriSimulator needs a password (generate one; never hard-code it)');
    this.password = opts.password;
    this.speed = opts.speed && opts.speed > 0 ? opts.speed : 1;
    this.asteriskId = opts.asteriskId ?? '02:42:ac:11:00:02';
    for (const [k, v] of Object.entries(opts.personas ?? {})) this.personas.set(k, v);
    this.agi = {
      host:
        opts.agi?.host ??
        opts.agiHost ??
        (process.env.AGI_HOST && process.env.AGI_HOST !== '0.0.0.0' ? process.env.AGI_HOST : '127.0.0.1'),
      port: opts.agi?.port ?? opts.agiPort ?? Number(process.env.AGI_PORT || 4573),
      contexts: opts.agi?.contexts ?? ['ai-dialer-agi'],
      script: opts.agi?.script ?? 'ai-dialer',
      secret: opts.agi?.secret ?? opts.agiSecret ?? process.env.AGI_SECRET ?? undefined,
    };
    this.setMaxListeners(0);
  }

  get port(): number {
    return this.boundPort;
  }
  get url(): string {
    const h = this.opts.host && this.opts.host !== '0.0.0.0' ? this.opts.host : '127.0.0.1';
    return `http://${h}:${this.boundPort}`;
  }

  setPersona(phone: string, persona: Persona): void {
    this.personas.set(phone, persona);
  }

  personaFor(phone: string): Persona {
    return (
      this.personas.get(phone) ??
      this.personas.get(phone.replace(/^\+/, '')) ??
      (this.opts.defaultPersona ?? demoPersona)(phone)
    );
  }

  /** Live channels (snapshots with their variables), for tests and the CLI. */
  channels(): Array<ReturnType<AriSimulator['snapshot']> & { variables: Record<string, string>; formats?: string }> {
    return [...this.chans.values()].map((c) => ({
      ...this.snapshot(c),
      variables: { ...c.variables },
      formats: c.formats,
    }));
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => this.onRequest(req, res));
    server.keepAliveTimeout = 5000;
    const wss = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req, socket, head) => this.onUpgrade(wss, req, socket as import('net').Socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort || this.opts.port || 0, this.opts.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (server.address() as AddressInfo).port;
    this.server = server;
    this.wss = wss;
  }

  /** Stop listening; with dropChannels (an Asterisk crash/restart) every channel vanishes without events. */
  async stop(opts: { dropChannels?: boolean } = {}): Promise<void> {
    for (const c of this.clients) c.ws.terminate();
    this.clients.clear();
    this.apps.clear();
    const server = this.server;
    this.server = undefined;
    this.wss?.close();
    this.wss = undefined;
    if (opts.dropChannels !== false) {
      for (const c of this.chans.values()) this.vanish(c);
      this.chans.clear();
    }
    if (server) {
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  /** Like an Asterisk restart: all connections and (unless keepChannels) all channels are lost; listens again on the same port. */
  async restart(opts: { keepChannels?: boolean; downMs?: number } = {}): Promise<void> {
    await this.stop({ dropChannels: !opts.keepChannels });
    if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
    await this.start();
  }

  async close(): Promise<void> {
    await this.stop({ dropChannels: true });
  }

  // ---------------------------------------------------------------- HTTP

  private authorised(req: http.IncomingMessage, url: URL): boolean {
    const key = url.searchParams.get('api_key');
    if (key !== null) return key === `${this.username}:${this.password}`;
    const h = req.headers.authorization;
    if (!h || !/^Basic /i.test(h)) return false;
    const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
    return decoded === `${this.username}:${this.password}`;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    this.emit('request', req.method, url.pathname);
    const send = (status: number, body?: unknown): void => {
      if (res.headersSent) return;
      const text = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, {
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(text),
        Server: 'Asterisk/22.10.1',
        ...(status === 401 ? { 'WWW-Authenticate': 'Basic realm="Asterisk REST Interface"' } : {}),
      });
      res.end(text);
    };
    if (!url.pathname.startsWith('/ari/')) return send(404, { message: 'Not found' });
    if (!this.authorised(req, url)) return send(401, { error: 'Authentication required' });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 1_000_000) {
        send(413, { message: 'Request body too large' });
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      let body: Record<string, unknown> = {};
      if (chunks.length) {
        try {
          const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
          if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
          else throw new Error('not an object');
        } catch {
          return send(400, { message: 'Failed to parse body as JSON' });
        }
      }
      try {
        const host = req.headers.host ?? `127.0.0.1:${this.boundPort}`;
        const out = this.route(req.method ?? 'GET', url, body, `http://${host}/ari`);
        send(out.status, out.body);
      } catch (err) {
        if (err instanceof HttpError) send(err.status, { message: err.message });
        else send(500, { message: errorMessage(err) });
      }
    });
  }

  private route(
    method: string,
    url: URL,
    body: Record<string, unknown>,
    basePath: string,
  ): { status: number; body?: unknown } {
    const parts = url.pathname
      .replace(/^\/ari\//, '')
      .split('/')
      .filter(Boolean)
      .map(decodeURIComponent);
    // Asterisk accepts parameters in the query string or as top-level fields of a JSON body.
    const q = (name: string): string | undefined => {
      const v = url.searchParams.get(name);
      if (v !== null) return v;
      const b = body[name];
      return b === undefined || b === null || typeof b === 'object' ? undefined : String(b);
    };
    const [res, id, sub] = parts;
    if (res === 'api-docs' && method === 'GET' && id) {
      const doc = resourceDoc(id.replace(/\.json$/, ''), basePath);
      if (!doc) throw new HttpError(404, 'Resource not found');
      return { status: 200, body: doc };
    }
    if (res === 'asterisk' && method === 'GET' && id === 'info') return { status: 200, body: this.info() };
    if (res === 'asterisk' && method === 'GET' && id === 'ping') {
      return { status: 200, body: { asterisk_id: this.asteriskId, ping: 'pong', timestamp: asteriskTime() } };
    }
    if (res === 'applications' && method === 'GET') {
      if (!id) return { status: 200, body: [...this.apps.keys()].map((n) => this.appJson(n)) };
      if (!this.apps.has(id)) throw new HttpError(404, 'Application not found');
      return { status: 200, body: this.appJson(id) };
    }
    if (res === 'channels') {
      if (!id) {
        if (method === 'GET')
          return {
            status: 200,
            body: [...this.chans.values()].flatMap((c) =>
              c.tech === 'Local' ? [this.snapshot(c), this.otherHalf(c)] : [this.snapshot(c)],
            ),
          };
        if (method === 'POST') return { status: 200, body: this.snapshot(this.originate(q, body)) };
      } else {
        // the other half of a Local channel (`<id>;2`): listed and answered; a hangup ends the pair
        const half = /;2$/.test(id) ? this.chans.get(id.slice(0, -2)) : undefined;
        if (half && half.tech === 'Local' && !sub && method === 'GET')
          return { status: 200, body: this.otherHalf(half) };
        const ch =
          this.chans.get(id) ?? (half && half.tech === 'Local' && !sub && method === 'DELETE' ? half : undefined);
        if (!sub && method === 'GET') {
          if (!ch) throw new HttpError(404, 'Channel not found');
          return { status: 200, body: this.snapshot(ch) };
        }
        if (!sub && method === 'DELETE') {
          if (!ch) throw new HttpError(404, 'Channel not found');
          const reasonCode = q('reason_code');
          const reason = q('reason') ?? 'normal';
          let cause: number;
          if (reasonCode !== undefined) {
            cause = Number(reasonCode);
            if (!Number.isInteger(cause)) throw new HttpError(400, 'Invalid reason for hangup provided');
          } else {
            if (!(reason in HANGUP_REASONS)) throw new HttpError(400, 'Invalid reason for hangup provided');
            cause = HANGUP_REASONS[reason];
          }
          this.hangup(ch, cause, { requested: true });
          return { status: 204 };
        }
        if (sub === 'continue' && method === 'POST') {
          if (!ch) throw new HttpError(404, 'Channel not found');
          if (!ch.inStasis) throw new HttpError(409, 'Channel not in Stasis application');
          this.continueInDialplan(ch, q('context'), q('extension'), q('priority'));
          return { status: 204 };
        }
        if (sub === 'variable') {
          if (!ch) throw new HttpError(404, 'Channel not found');
          const name = q('variable');
          if (!name) throw new HttpError(400, 'Variable name is required');
          if (method === 'GET') {
            const v = ch.variables[name];
            if (v === undefined) throw new HttpError(404, 'Provided variable was not found');
            return { status: 200, body: { value: v } };
          }
          if (method === 'POST') {
            this.setVar(ch, name, q('value') ?? '');
            return { status: 204 };
          }
        }
      }
    }
    throw new HttpError(404, 'Resource not found');
  }

  private info(): Record<string, unknown> {
    return {
      build: {
        os: 'Linux',
        kernel: '6.1.0',
        machine: 'x86_64',
        options: 'BUILD_NATIVE, OPTIONAL_API',
        date: '2026-01-01 00:00:00 UTC',
        user: 'simulator',
      },
      system: { version: '22.10.1', entity_id: this.asteriskId },
      config: {
        name: 'ai-dialer-sim',
        default_language: 'en',
        setid: { user: '', group: '' },
      },
      status: { startup_time: asteriskTime(this.startedAt), last_reload_time: asteriskTime(this.startedAt) },
    };
  }

  private appJson(name: string): Record<string, unknown> {
    const a = this.apps.get(name);
    return {
      name,
      channel_ids: a ? [...a.channelIds] : [],
      bridge_ids: [],
      endpoint_ids: [],
      device_names: [],
      events_allowed: [],
      events_disallowed: [],
    };
  }

  snapshot(c: SimChannel): Record<string, unknown> {
    const out: Record<string, unknown> = {
      id: c.id,
      name: c.name,
      state: c.state,
      protocol_id: '',
      caller: { ...c.caller },
      // Asterisk 22 leaves connected empty on a Local channel originated over ARI
      connected: { name: '', number: c.tech === 'Local' ? '' : c.phone },
      accountcode: '',
      dialplan: { ...c.dialplan },
      creationtime: c.creationtime,
      language: 'en',
    };
    const vars = this.opts.channelvars ?? ['CALL_ID', 'CAMPAIGN_ID', 'CONTACT_ID', 'CONTACT_PHONE'];
    if (vars.length) {
      // every listed variable, an unset one as '' (seen on Asterisk 22.10.1, test/real-asterisk)
      const cv: Record<string, string> = {};
      for (const v of vars) cv[v] = c.variables[v] ?? '';
      out.channelvars = cv;
    }
    return out;
  }

  /** The `;2` half of a Local channel, as GET /channels lists it (it runs the callee's dialplan). */
  private otherHalf(c: SimChannel): Record<string, unknown> {
    const s = this.snapshot(c);
    const at = c.endpoint.indexOf('@');
    return {
      ...s,
      id: `${c.id};2`,
      name: c.name.replace(/;1$/, ';2'),
      caller: { name: '', number: '' },
      connected: { name: '', number: '' },
      dialplan: {
        context: at >= 0 ? c.endpoint.slice(at + 1) : 'default',
        exten: c.phone,
        priority: 1,
        app_name: '',
        app_data: '',
      },
    };
  }

  // ---------------------------------------------------------------- WebSocket

  private onUpgrade(wss: WebSocketServer, req: http.IncomingMessage, socket: import('net').Socket, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const reject = (status: number, text: string): void => {
      socket.write(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      socket.destroy();
    };
    if (url.pathname !== '/ari/events') return reject(404, 'Not Found');
    if (!this.authorised(req, url)) return reject(401, 'Unauthorized');
    const apps = (url.searchParams.get('app') ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (!apps.length) return reject(400, 'Bad Request');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const client: WsClient = { ws, apps: new Set(apps) };
      this.clients.add(client);
      for (const a of apps) if (!this.apps.has(a)) this.apps.set(a, { channelIds: new Set() });
      ws.on('close', () => {
        this.clients.delete(client);
        for (const a of client.apps) {
          if (![...this.clients].some((c) => c.apps.has(a))) this.apps.delete(a);
        }
      });
      ws.on('error', () => ws.terminate());
      this.emit('ws-connected', apps);
    });
  }

  private emitEvent(app: string | undefined, type: string, fields: Record<string, unknown>): void {
    const ev = { type, ...fields, asterisk_id: this.asteriskId, timestamp: asteriskTime(), application: app ?? '' };
    this.emit('ari-event', ev);
    if (!app) return;
    let text: string | undefined;
    for (const c of this.clients) {
      if (!c.apps.has(app) || c.ws.readyState !== WebSocket.OPEN) continue;
      text ??= JSON.stringify(ev);
      c.ws.send(text);
    }
  }

  // ---------------------------------------------------------------- channels

  private ms(v: number): number {
    return Math.max(0, Math.round(v / this.speed));
  }

  private originate(q: (n: string) => string | undefined, body: Record<string, unknown>): SimChannel {
    const endpoint = q('endpoint');
    if (!endpoint) throw new HttpError(400, 'Endpoint must be specified');
    const slash = endpoint.indexOf('/');
    const tech = slash > 0 ? endpoint.slice(0, slash) : '';
    const resource = slash > 0 ? endpoint.slice(slash + 1) : '';
    if (!TECHS.has(tech) || !resource) throw new HttpError(400, 'Allocation failed');
    if (tech === 'Local' && !resource.includes('@')) throw new HttpError(400, 'Allocation failed');
    const app = q('app');
    if (!app && !q('extension') && !q('context'))
      throw new HttpError(400, 'Application or extension must be specified');
    const vars = body.variables;
    if (vars !== undefined && (typeof vars !== 'object' || vars === null || Array.isArray(vars)))
      throw new HttpError(400, 'Variables must be an object');
    // Asterisk makes the channel id the channel's uniqueid (UNIQUEID, agi_uniqueid)
    const id = q('channelId') || `${Math.floor(Date.now() / 1000)}.${this.seq + 1}`;
    const uniqueid = id;
    if (id.length > 128 || /[\s/]/.test(id)) throw new HttpError(400, 'Invalid channel id');
    if (this.chans.has(id)) throw new HttpError(409, 'Channel with given unique ID already exists');
    const timeoutS = q('timeout') === undefined ? 30 : Number(q('timeout'));
    if (!Number.isFinite(timeoutS)) throw new HttpError(400, 'Invalid timeout');
    const n = ++this.seq;
    const hex = n.toString(16).padStart(8, '0');
    const phone = phoneOfEndpoint(endpoint);
    const at = resource.indexOf('@');
    const name =
      tech === 'Local'
        ? `Local/${resource}-${hex};1`
        : `${tech}/${at >= 0 ? resource.slice(at + 1) : resource.split('/')[0]}-${hex}`;
    const cid = /^\s*(?:"([^"]*)"\s*)?<?([^<>]*)>?\s*$/.exec(q('callerId') ?? '') ?? [];
    const now = Date.now();
    const ch: SimChannel = {
      id,
      uniqueid,
      name,
      state: 'Down',
      tech,
      phone,
      endpoint,
      caller: { name: cid[1] ?? '', number: (cid[2] ?? '').trim() },
      app,
      appArgs: (q('appArgs') ?? '').split(',').filter((s) => s !== ''),
      inStasis: false,
      dialplan: {
        context: q('context') ?? 'default',
        exten: q('extension') ?? 's',
        priority: Number(q('priority') ?? 1),
        app_name: '',
        app_data: '',
      },
      variables: {},
      formats: q('formats') || undefined,
      creationtime: asteriskTime(new Date(now)),
      createdAt: now,
      persona: this.personaFor(phone),
      lastDialStatus: '',
      destroyed: false,
    };
    this.chans.set(id, ch);
    if (app) this.apps.get(app)?.channelIds.add(id);
    for (const [k, v] of Object.entries((vars as Record<string, unknown>) ?? {})) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*(\([^)]*\))?$/.test(k)) continue;
      ch.variables[k] = v === null || v === undefined ? '' : String(v);
    }
    this.emit('channel-created', { id, phone, app: ch.app, variables: { ...ch.variables } });
    // The originate answer comes first; the dialling runs after it, as on Asterisk.
    setImmediate(() => this.dial(ch, timeoutS));
    return ch;
  }

  private setVar(ch: SimChannel, name: string, value: string): void {
    ch.variables[name] = value;
    this.emitEvent(ch.app, 'ChannelVarset', { variable: name, value, channel: this.snapshot(ch) });
  }

  private setState(ch: SimChannel, state: ChannelState): void {
    if (ch.state === state || ch.destroyed) return;
    ch.state = state;
    this.emitEvent(ch.app, 'ChannelStateChange', { channel: this.snapshot(ch) });
  }

  private dialEvent(ch: SimChannel, status: string): void {
    ch.lastDialStatus = status;
    this.emitEvent(ch.app, 'Dial', {
      peer: this.snapshot(ch),
      dialstring: ch.endpoint.slice(ch.endpoint.indexOf('/') + 1),
      dialstatus: status,
    });
  }

  private later(ch: SimChannel, ms: number, fn: () => void): void {
    if (ch.timer) clearTimeout(ch.timer);
    ch.timer = setTimeout(() => {
      ch.timer = undefined;
      if (!ch.destroyed) fn();
    }, this.ms(ms));
  }

  private dial(ch: SimChannel, timeoutS: number): void {
    if (ch.destroyed) return;
    for (const [k, v] of Object.entries(ch.variables))
      this.emitEvent(ch.app, 'ChannelVarset', { variable: k, value: v, channel: this.snapshot(ch) });
    this.dialEvent(ch, '');
    const dial = ch.persona.dial ?? { behaviour: 'answer' as const, ringMs: 1000 };
    const ringMs = dial.ringMs ?? 1000;
    const progress = this.opts.progressMs ?? 60;
    const local = ch.tech === 'Local';
    const invalid = !/\d/.test(ch.phone);
    if (invalid || dial.behaviour === 'unreachable') {
      // Nothing rings: the trunk refuses the number (404 -> cause 1) or the destination is absent (480 -> cause 20).
      this.later(ch, progress, () => {
        this.dialEvent(ch, 'CHANUNAVAIL');
        this.hangup(ch, local ? 0 : invalid ? 1 : 20);
      });
      return;
    }
    const timeoutMs = timeoutS < 0 ? Infinity : timeoutS * 1000;
    this.later(ch, progress, () => {
      this.setState(ch, 'Ringing');
      this.dialEvent(ch, 'RINGING');
      const noAnswer = (): void => this.hangup(ch, 19); // last dialstatus stays RINGING
      switch (dial.behaviour) {
        case 'answer':
          if (ringMs >= timeoutMs) this.later(ch, timeoutMs, noAnswer);
          else this.later(ch, ringMs, () => this.answer(ch));
          break;
        case 'busy':
          if (ringMs >= timeoutMs) this.later(ch, timeoutMs, noAnswer);
          else
            this.later(ch, ringMs, () => {
              this.dialEvent(ch, 'BUSY');
              this.hangup(ch, local ? 0 : 17);
            });
          break;
        case 'congestion':
          if (ringMs >= timeoutMs) this.later(ch, timeoutMs, noAnswer);
          else
            this.later(ch, ringMs, () => {
              this.dialEvent(ch, 'CONGESTION');
              this.hangup(ch, local ? 0 : 34);
            });
          break;
        default:
          if (timeoutMs !== Infinity) this.later(ch, timeoutMs, noAnswer);
      }
    });
  }

  private answer(ch: SimChannel): void {
    ch.answeredAt = Date.now();
    this.setState(ch, 'Up');
    this.dialEvent(ch, 'ANSWER');
    if (ch.app) {
      ch.inStasis = true;
      ch.dialplan = { ...ch.dialplan, app_name: 'Stasis', app_data: [ch.app, ...ch.appArgs].join(',') };
      this.emitEvent(ch.app, 'StasisStart', { args: ch.appArgs, channel: this.snapshot(ch) });
    }
  }

  private continueInDialplan(ch: SimChannel, context?: string, exten?: string, priority?: string): void {
    ch.inStasis = false;
    ch.dialplan = {
      context: context ?? ch.dialplan.context,
      exten: exten ?? ch.dialplan.exten,
      priority: priority !== undefined ? Number(priority) : ch.dialplan.priority + 1,
      app_name: '',
      app_data: '',
    };
    this.emitEvent(ch.app, 'StasisEnd', { channel: this.snapshot(ch) });
    if (this.agi.contexts.includes(ch.dialplan.context)) setImmediate(() => this.runDialplanAgi(ch));
    else if (ch.persona.hangupAfterMs !== undefined)
      this.later(ch, ch.persona.hangupAfterMs, () => this.hangup(ch, 16));
  }

  /** What extensions-agi.conf does: optional AMD(), then AGI(agi://host:port/script), then Hangup(). */
  private runDialplanAgi(ch: SimChannel): void {
    if (ch.destroyed) return;
    if (ch.variables.AMD_ENABLED === '1') {
      const status = ch.persona.amd ?? 'HUMAN';
      const cause =
        status === 'HUMAN' ? 'HUMAN-300-800' : status === 'MACHINE' ? 'LONGGREETING-1600-1500' : 'TOOLONG-5000';
      const notSureAs = ch.variables.AMD_NOTSURE === 'machine' ? 'machine' : 'human';
      this.setVar(ch, 'AMDSTATUS', status);
      this.setVar(ch, 'AMDCAUSE', cause);
      this.setVar(ch, 'AMD_PATH', status === 'MACHINE' ? 'machine' : status === 'NOTSURE' ? notSureAs : 'human');
    }
    const script = `${this.agi.script ?? ''}${this.agi.secret ? `?secret=${encodeURIComponent(this.agi.secret)}` : ''}`;
    // extensions-agi.conf: the runtime that originated the call named its FastAGI in AGI_TARGET
    const target = agiTarget(ch.variables.AGI_TARGET) ?? { host: this.agi.host, port: this.agi.port };
    ch.dialplan = {
      ...ch.dialplan,
      app_name: 'AGI',
      app_data: `agi://${target.host}:${target.port}/${this.agi.script ?? ''}`,
    };
    const abort = new AbortController();
    ch.agiAbort = abort;
    runAgiCall({
      host: target.host,
      port: target.port,
      script,
      args: [],
      channel: ch.name,
      uniqueid: ch.uniqueid,
      callerId: ch.caller.number,
      context: ch.dialplan.context,
      extension: ch.dialplan.exten,
      variables: ch.variables,
      persona: ch.persona,
      speed: this.speed,
      recordingsRoot: this.opts.recordingsRoot,
      signal: abort.signal,
      onLine: this.listenerCount('agi-line')
        ? (dir: string, line: string) => this.emit('agi-line', ch.id, dir, line)
        : undefined,
    })
      .then((r) => this.emit('agi-done', ch.id, r, `${target.host}:${target.port}`))
      .catch((err: unknown) => this.emit('agi-error', ch.id, err))
      .finally(() => {
        ch.agiAbort = undefined;
        if (!ch.destroyed) this.hangup(ch, 16);
      });
  }

  /** End a channel: hangup request, StasisEnd if still in the app, ChannelDestroyed. */
  hangup(ch: SimChannel, cause: number, opts: { requested?: boolean } = {}): void {
    if (ch.destroyed) return;
    if (ch.timer) clearTimeout(ch.timer);
    ch.timer = undefined;
    if (opts.requested && ch.state !== 'Up') this.dialEvent(ch, 'CANCEL');
    this.emitEvent(ch.app, 'ChannelHangupRequest', { cause, soft: false, channel: this.snapshot(ch) });
    ch.destroyed = true;
    ch.agiAbort?.abort();
    if (ch.inStasis) {
      ch.inStasis = false;
      this.emitEvent(ch.app, 'StasisEnd', { channel: this.snapshot(ch) });
    }
    this.chans.delete(ch.id);
    if (ch.app) this.apps.get(ch.app)?.channelIds.delete(ch.id);
    this.emitEvent(ch.app, 'ChannelDestroyed', { cause, cause_txt: causeText(cause), channel: this.snapshot(ch) });
    this.emit('channel-destroyed', {
      id: ch.id,
      cause,
      variables: ch.variables,
      answered: ch.answeredAt !== undefined,
    });
  }

  /** A channel lost with the process (restart): no events, the AGI side is cut. */
  private vanish(ch: SimChannel): void {
    if (ch.timer) clearTimeout(ch.timer);
    ch.destroyed = true;
    ch.agiAbort?.abort();
  }

  /** Make a channel disappear without any event, as if its events were lost (tests of reconciliation). */
  loseChannel(id: string): boolean {
    const ch = this.chans.get(id);
    if (!ch) return false;
    this.vanish(ch);
    this.chans.delete(id);
    if (ch.app) this.apps.get(ch.app)?.channelIds.delete(id);
    return true;
  }

  /** Hang up a live channel as if the callee put the phone down (tests, CLI). */
  hangupFromCallee(id: string): boolean {
    const ch = this.chans.get(id);
    if (!ch) return false;
    this.hangup(ch, 16);
    return true;
  }
}

/**
 * The channel variable AGI_TARGET (`host:port`, set at originate by the runtime that placed the call) as
 * the shipped dialplan uses it; anything else (unset, empty, malformed) falls back to the configured target.
 */
export function agiTarget(v: string | undefined): { host: string; port: number } | undefined {
  const m = /^([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):(\d{1,5})$/.exec(v ?? '');
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}
