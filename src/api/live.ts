/**
 * The plain WebSocket live monitor, `GET <httpNodeRoot>/api/v1/live` (reference:
 * docs/reference/http-api.md#live-monitor-websocket). Each text message is one v1 event, the exact
 * JSON the MQTT publisher sends (src/events/feed.ts), in the order it was published; a client that
 * joins gets each campaign's last campaign_progress first (the MQTT retained status).
 *
 * The same rules as the HTTP API, checked before the upgrade and answered with an HTTP status and a
 * JSON `{error}` (the socket is then closed): Origin (same origin or API_ALLOWED_ORIGINS: 403), the
 * credential (API_TOKEN or API_READ_TOKEN as `Authorization: Bearer`, `X-API-Token` or, for browsers,
 * the subprotocol `bearer.<base64url(token)>` beside `ai-dialer.v1`; or the host's login: 401/403),
 * a token in the URL (400: proxies log URLs), the campaign filter (400), the connection limit (503).
 * Nothing about a token is ever logged.
 *
 * Per client: at most `maxBufferedBytes` waiting to be sent (past it the client is closed with 4001
 * and cut off if the close cannot be sent), a ping every `pingIntervalMs` (no pong by the next one:
 * cut off), messages from the client ignored (larger than 4 KiB: 1009). close() says 1001 to
 * everyone, clears the timer and leaves the feed.
 */
import type http from 'http';
import type { Duplex } from 'stream';
import { WebSocketServer, WebSocket } from 'ws';
import { eventFeed, type EventFeed, type FeedItem } from '../events/feed';
import { isTopicId } from '../events/topics';
import { registerHealthProbe } from '../health/probes';
import { originAllowList, originVerdict, requestToken, tokenRole, authMode, type AuthOptions } from './auth';

/** The subprotocol a browser offers (and the server answers with). */
export const LIVE_PROTOCOL = 'ai-dialer.v1';
/** Prefix of the subprotocol entry that carries a token: `bearer.` + base64url(token). */
export const BEARER_PROTOCOL_PREFIX = 'bearer.';

/** Close codes (documented in docs/reference/http-api.md). */
export const CLOSE = {
  /** The server stops (npm start shutdown, the plugin stopped). */
  going: 1001,
  /** A message from the client was larger than maxPayload (sent by ws). */
  tooBig: 1009,
  /** The client did not read fast enough: more than maxBufferedBytes waited. */
  tooSlow: 4001,
} as const;

/**
 * The host's login check for an upgrade request (Node-RED adminAuth): resolves 0 when allowed, else
 * the HTTP status to answer (401 no or bad login, 403 not permitted).
 */
export type UpgradeAuth = (req: http.IncomingMessage) => Promise<number>;

export interface LiveOptions {
  token?: string;
  readToken?: string;
  hostAuth?: UpgradeAuth;
  /** API_ALLOWED_ORIGINS */
  allowedOrigins?: string[];
  /** Node-RED's httpNodeRoot ('/' default): the endpoint is <root>/api/v1/live. */
  root?: string;
  /** Bytes allowed to wait for one slow client before it is closed (default 1 MiB). */
  maxBufferedBytes?: number;
  /** Keepalive ping interval (default 30 s). */
  pingIntervalMs?: number;
  /** Open connections at most (default 200); more: 503. */
  maxClients?: number;
  /** Largest message accepted from a client (default 4 KiB). */
  maxPayloadBytes?: number;
  /** Grace for a close handshake before the socket is cut (default 2 s). */
  closeGraceMs?: number;
  feed?: EventFeed;
  log?: (line: string) => void;
}

export interface LiveServer {
  /** The endpoint's path. */
  readonly path: string;
  /** An 'upgrade' handler: true when the request was ours (answered or upgraded). */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** Open connections. */
  clients(): number;
  /** Bytes waiting to be sent, summed over the clients (what a slow client can make the server hold). */
  bufferedBytes(): number;
  /** Close every connection (1001) and stop; resolves when every socket is gone. */
  close(): Promise<void>;
}

interface Client {
  ws: WebSocket;
  campaigns?: Set<string>;
  alive: boolean;
  closing: boolean;
  kill?: NodeJS.Timeout;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  503: 'Service Unavailable',
};

/** Answer an upgrade request with an HTTP error and close the socket. */
function refuse(socket: Duplex, status: number, error: string, extra: Record<string, string> = {}): void {
  const body = JSON.stringify({ error });
  const head = [
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.on('error', () => undefined);
  if (socket.writable) socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  else socket.destroy();
}

function decodeBase64Url(s: string): string | undefined {
  if (!/^[A-Za-z0-9_-]{1,1024}$/.test(s)) return undefined;
  return Buffer.from(s, 'base64url').toString('utf8');
}

/** The subprotocols offered (Sec-WebSocket-Protocol), split. */
function offeredProtocols(req: http.IncomingMessage): string[] {
  const raw = req.headers['sec-websocket-protocol'];
  if (typeof raw !== 'string') return [];
  return raw
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
}

export function createLiveServer(opts: LiveOptions = {}): LiveServer {
  const root = (opts.root ?? '/').replace(/\/+$/, '');
  const path = `${root}/api/v1/live`;
  const apiPrefix = `${root}/api/v1/`;
  const auth: AuthOptions = { token: opts.token, readToken: opts.readToken };
  const mode = authMode({ ...auth, hostAuth: opts.hostAuth ? ({} as AuthOptions['hostAuth']) : undefined });
  const allow = originAllowList(opts.allowedOrigins);
  const maxBuffered = opts.maxBufferedBytes ?? 1024 * 1024;
  const maxClients = opts.maxClients ?? 200;
  const grace = opts.closeGraceMs ?? 2000;
  const log = opts.log ?? (() => undefined);
  const feed = opts.feed ?? eventFeed();
  const clients = new Set<Client>();
  let pending = 0; // upgrades waiting for the host's login check
  let closed = false;

  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload: opts.maxPayloadBytes ?? 4096,
    perMessageDeflate: false,
    // the token entry is never echoed: only the protocol name
    handleProtocols: (offered) => (offered.has(LIVE_PROTOCOL) ? LIVE_PROTOCOL : false),
  });

  const cutOff = (c: Client) => {
    if (c.kill) return;
    c.kill = setTimeout(() => c.ws.terminate(), grace);
  };

  const closeClient = (c: Client, code: number, reason: string) => {
    if (c.closing) return;
    c.closing = true;
    try {
      c.ws.close(code, reason);
    } catch {
      c.ws.terminate();
    }
    cutOff(c);
  };

  const send = (c: Client, item: FeedItem) => {
    if (c.closing || c.ws.readyState !== WebSocket.OPEN) return;
    if (c.campaigns && (item.campaignId === null || !c.campaigns.has(item.campaignId))) return;
    if (c.ws.bufferedAmount + item.payload.length > maxBuffered) {
      log(`live monitor: a client fell more than ${maxBuffered} bytes behind; closed (${CLOSE.tooSlow})`);
      closeClient(c, CLOSE.tooSlow, `too slow: more than ${maxBuffered} bytes waiting`);
      return;
    }
    c.ws.send(item.payload);
  };

  const unsubscribe = feed.subscribe((item) => {
    for (const c of clients) send(c, item);
  });

  const ping = setInterval(() => {
    for (const c of clients) {
      if (!c.alive) {
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      if (c.ws.readyState === WebSocket.OPEN) c.ws.ping();
    }
  }, opts.pingIntervalMs ?? 30000);
  ping.unref();

  /** The campaign filter, or an error line. */
  const parseQuery = (url: URL): { campaigns?: Set<string> } | string => {
    for (const k of url.searchParams.keys())
      if (/^(access_)?token$|^api[_-]?token$/i.test(k))
        return `a token in the URL is refused (proxies and access logs keep URLs): send it as Authorization: Bearer <token> or, from a browser, as the WebSocket subprotocol "${BEARER_PROTOCOL_PREFIX}<base64url(token)>" beside "${LIVE_PROTOCOL}"`;
    const ids = url.searchParams.getAll('campaign').flatMap((v) => v.split(','));
    if (!ids.length) return {};
    if (ids.length > 100) return 'at most 100 campaign ids in the filter';
    for (const id of ids)
      if (!isTopicId(id))
        return `campaign must be a campaign id (letters, digits, _ . : @ -), got ${JSON.stringify(id.slice(0, 40))}`;
    return { campaigns: new Set(ids) };
  };

  /** Upgrade (ws answers a malformed handshake itself: 400 naming the header, or 426 for the version). */
  const accept = (req: http.IncomingMessage, socket: Duplex, head: Buffer, campaigns?: Set<string>) => {
    if (closed) return refuse(socket, 503, 'the live monitor is stopping');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const c: Client = { ws, campaigns, alive: true, closing: false };
      clients.add(c);
      ws.on('pong', () => (c.alive = true));
      ws.on('message', () => undefined); // the feed is one way; messages are read and dropped
      ws.on('error', () => undefined); // bad frames: ws closes with the right code (1002, 1007, 1009)
      ws.on('close', () => {
        clients.delete(c);
        if (c.kill) clearTimeout(c.kill);
      });
      for (const item of feed.retained()) send(c, item);
    });
  };

  const handleUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://x');
    } catch {
      // no listener can route a request target that is not a URL: say so rather than leave it hanging
      refuse(socket, 400, 'the request target is not a valid path');
      return true;
    }
    const p = url.pathname.replace(/\/+$/, '');
    if (p !== path) {
      if (!url.pathname.startsWith(apiPrefix)) return false; // not ours: another listener handles it
      refuse(socket, 404, `no WebSocket at ${url.pathname.slice(0, 100)}; the live monitor is ${path}`);
      return true;
    }
    if (req.method !== 'GET') {
      refuse(socket, 405, 'the live monitor is a WebSocket: GET with Upgrade: websocket', { Allow: 'GET' });
      return true;
    }
    if (closed) {
      refuse(socket, 503, 'the live monitor is stopping');
      return true;
    }
    const verdict = originVerdict(req.headers, allow);
    if (verdict === 'refused') {
      log(
        `live monitor: refused a WebSocket from origin ${JSON.stringify(String(req.headers.origin).slice(0, 100))} (not this server's origin nor in API_ALLOWED_ORIGINS)`,
      );
      refuse(
        socket,
        403,
        `cross-origin WebSocket refused (Origin ${String(req.headers.origin).slice(0, 100)}); list it in API_ALLOWED_ORIGINS to allow it`,
      );
      return true;
    }
    const q = parseQuery(url);
    if (typeof q === 'string') {
      refuse(socket, 400, q);
      return true;
    }
    const offered = offeredProtocols(req);
    let given = requestToken(req as never);
    const bearer = offered.find((x) => x.startsWith(BEARER_PROTOCOL_PREFIX));
    if (bearer) {
      const t = decodeBase64Url(bearer.slice(BEARER_PROTOCOL_PREFIX.length));
      if (t === undefined) {
        refuse(socket, 400, `the "${BEARER_PROTOCOL_PREFIX}" subprotocol must carry the token in base64url`);
        return true;
      }
      if (!offered.includes(LIVE_PROTOCOL)) {
        refuse(socket, 400, `offer the "${LIVE_PROTOCOL}" subprotocol beside the token (browsers need one answered)`);
        return true;
      }
      given = given || t.trim();
    }
    if (clients.size + pending >= maxClients) {
      refuse(socket, 503, `too many live monitor connections (${maxClients}); try again later`, {
        'Retry-After': '5',
      });
      return true;
    }
    if (mode === 'open' || tokenRole(auth, given)) {
      accept(req, socket, head, q.campaigns);
      return true;
    }
    if (opts.hostAuth) {
      // the host's login reads the Authorization header: a subprotocol token is handed over as one
      if (given && !req.headers.authorization) req.headers.authorization = `Bearer ${given}`;
      const check = opts.hostAuth;
      pending++;
      check(req).then(
        (status) => {
          pending--;
          if (status === 0) accept(req, socket, head, q.campaigns);
          else
            refuse(
              socket,
              status === 403 ? 403 : 401,
              status === 403
                ? 'not allowed'
                : 'the live monitor needs a login: an API token or a Node-RED editor access token',
            );
        },
        () => {
          pending--;
          refuse(socket, 401, 'the login could not be checked');
        },
      );
      return true;
    }
    if (!given)
      refuse(
        socket,
        401,
        `the live monitor needs the API token (Authorization: Bearer <token>, or the subprotocol "${BEARER_PROTOCOL_PREFIX}<base64url(token)>" beside "${LIVE_PROTOCOL}")`,
      );
    else refuse(socket, 403, 'the API token is wrong');
    return true;
  };

  return {
    path,
    handleUpgrade,
    clients: () => clients.size,
    bufferedBytes: () => [...clients].reduce((n, c) => n + c.ws.bufferedAmount, 0),
    close: async () => {
      if (closed) return;
      closed = true;
      unsubscribe();
      clearInterval(ping);
      const gone = [...clients].map(
        (c) =>
          new Promise<void>((r) => {
            if (c.ws.readyState === WebSocket.CLOSED) return r();
            c.ws.once('close', () => r());
            closeClient(c, CLOSE.going, 'server stopping');
          }),
      );
      await Promise.all(gone);
      wss.close();
    },
  };
}

/**
 * Serve the live monitor on an HTTP server (its 'upgrade' event); the returned close() also removes
 * the listener.
 */
export function attachLive(server: http.Server, opts: LiveOptions = {}): LiveServer {
  const live = createLiveServer(opts);
  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    try {
      live.handleUpgrade(req, socket, head);
    } catch (err) {
      (opts.log ?? (() => undefined))(`live monitor: upgrade failed: ${(err as Error).message}`);
      refuse(socket, 400, 'bad upgrade request');
    }
  };
  server.on('upgrade', onUpgrade);
  const close = live.close;
  const attached: LiveServer = {
    path: live.path,
    handleUpgrade: live.handleUpgrade,
    clients: live.clients,
    bufferedBytes: live.bufferedBytes,
    close: async () => {
      server.off('upgrade', onUpgrade);
      await close();
    },
  };
  registry().add(attached);
  // GET /api/v1/health: open live connections and feed listeners (neither may grow with Deploys)
  registerHealthProbe('live', () => ({
    clients: [...registry()].reduce((n, l) => n + l.clients(), 0),
    feedListeners: eventFeed().listenerCount,
  }));
  const remove = attached.close;
  attached.close = async () => {
    registry().delete(attached);
    await remove();
  };
  return attached;
}

const REGISTRY = Symbol.for('node-red-contrib-ai-dialer.live-servers');
function registry(): Set<LiveServer> {
  const g = globalThis as unknown as Record<symbol, Set<LiveServer> | undefined>;
  return (g[REGISTRY] ??= new Set());
}

/** Close every live monitor of the process (npm start's shutdown, before the HTTP server closes). */
export async function closeAllLive(): Promise<void> {
  await Promise.all([...registry()].map((l) => l.close()));
}

/**
 * The host's express-style login middleware (Node-RED's RED.auth.needsPermission) as an UpgradeAuth:
 * run on the upgrade request with a minimal response that records a refusal instead of writing it.
 */
export function upgradeAuthFrom(
  mw: (req: never, res: never, next: (err?: unknown) => void) => void,
  timeoutMs = 10000,
): UpgradeAuth {
  return (req) =>
    new Promise<number>((resolve) => {
      let settled = false;
      const finish = (status: number) => {
        if (settled) return;
        settled = true;
        clearTimeout(t);
        resolve(status);
      };
      const t = setTimeout(() => finish(401), timeoutMs);
      const res = {
        statusCode: 200,
        headersSent: false,
        locals: {},
        setHeader: () => res,
        getHeader: () => undefined,
        removeHeader: () => res,
        set: () => res,
        header: () => res,
        status(code: number) {
          res.statusCode = code;
          return res;
        },
        end: () => finish(res.statusCode >= 400 ? res.statusCode : 401),
        send: () => res.end(),
        json: () => res.end(),
        redirect: () => finish(401),
      };
      try {
        mw(req as never, res as never, (err?: unknown) => finish(err ? 401 : 0));
      } catch {
        finish(401);
      }
    });
}
