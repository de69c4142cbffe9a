/**
 * The one owner of the HTTP API and the dashboard inside a Node-RED runtime (used by the
 * `ai-dialer-api` plugin; no Node-RED import here, the host is passed in):
 *
 *  - served on RED.httpNode once per runtime, from start-up, whatever flows are (re)deployed;
 *  - the database is the `ai-dialer-store` config node a deployed campaign-queue uses (else the
 *    first deployed store), looked up again after every deploy; none deployed: 503 JSON;
 *  - a front door at the head of the host's outermost app keeps the editor app's
 *    `Access-Control-Allow-Origin: *` and 5 MB HTML-erroring body parser off the package's paths;
 *  - credentials: API_TOKEN / API_READ_TOKEN (or settings.aiDialer.apiToken / apiReadToken), and,
 *    when the runtime has `adminAuth`, a valid editor access token with its permission;
 *  - the live monitor WebSocket (<httpNodeRoot>/api/v1/live, src/api/live.ts) on RED.server with the
 *    same credentials and origin rules.
 */
import type http from 'http';
import type { RequestHandler } from 'express';
import type { Db } from '../store/db';
import { frontDoor, mountWeb, unmountWeb, dashboardOptionsFromEnv } from './mount';
import { jsonHostRefusal, authMode } from './auth';
import { ApiError } from './errors';
import { attachLive, upgradeAuthFrom, type LiveServer } from './live';

interface NodeDefLike {
  id: string;
  type: string;
  store?: string;
}

export interface HostApi {
  httpNode?: { use: (...a: never[]) => unknown };
  /** The runtime's HTTP server (RED.server): the live monitor's WebSocket upgrades arrive there. */
  server?: http.Server;
  settings: Record<string, unknown>;
  auth?: { needsPermission(permission: string): RequestHandler };
  nodes: { eachNode(cb: (n: NodeDefLike) => void): void; getNode(id: string): unknown };
  events?: { on(event: string, cb: () => void): unknown; off?(event: string, cb: () => void): unknown };
  log: { info(s: string): void; warn(s: string): void; error(s: string): void };
}

/** The package's settings block in the Node-RED settings file (`aiDialer: {...}`), all optional. */
export interface AiDialerSettings {
  /** false: do not serve the API and dashboard at all. */
  serveApi?: boolean;
  apiToken?: string;
  apiReadToken?: string;
  /** Origins other than the runtime's own allowed to call the API from a browser. */
  allowedOrigins?: string[];
  /** Upload limit in MB (default 50). */
  maxUploadMb?: number;
  /** false: do not accept (nor require) the editor login even when the runtime has adminAuth (npm start). */
  followAdminAuth?: boolean;
}

const OWNER = 'ai-dialer-api plugin';

const rootOf = (v: unknown): string | false =>
  v === false ? false : (typeof v === 'string' && v ? v : '/').replace(/\/+$/, '') || '/';

/** Which store's database the API uses: the one a campaign-queue uses, else the first store. */
export function findStore(nodes: HostApi['nodes']): { getDb(): Promise<Db> } | undefined {
  const preferred: string[] = [];
  const stores: string[] = [];
  nodes.eachNode((n) => {
    if (n.type === 'campaign-queue' && n.store) preferred.push(n.store);
    else if (n.type === 'ai-dialer-store') stores.push(n.id);
  });
  for (const id of [...preferred, ...stores]) {
    const s = nodes.getNode(id) as { getDb?: () => Promise<Db> } | null;
    if (s && typeof s.getDb === 'function') return s as { getDb(): Promise<Db> };
  }
  return undefined;
}

export function serveOnHost(
  RED: HostApi,
  env: NodeJS.ProcessEnv = process.env,
): { stop(): Promise<void>; live?: LiveServer } | undefined {
  const s = (RED.settings.aiDialer ?? {}) as AiDialerSettings;
  if (s.serveApi === false || !RED.httpNode) return undefined;
  const token = s.apiToken ?? env.API_TOKEN ?? '';
  const readToken = s.apiReadToken ?? env.API_READ_TOKEN ?? '';
  const hostAuth =
    s.followAdminAuth !== false && RED.settings.adminAuth && RED.auth && typeof RED.auth.needsPermission === 'function'
      ? {
          read: jsonHostRefusal(RED.auth.needsPermission('aidialer.read')),
          write: jsonHostRefusal(RED.auth.needsPermission('aidialer.write')),
        }
      : undefined;
  const allowedOrigins =
    s.allowedOrigins ??
    (env.API_ALLOWED_ORIGINS ?? '')
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  const mb = Number(s.maxUploadMb ?? env.API_MAX_UPLOAD_MB);
  let store: { getDb(): Promise<Db> } | undefined;
  let looked = false;
  const refresh = () => {
    looked = false;
  };
  RED.events?.on('flows:started', refresh);
  const getDb = async (): Promise<Db> => {
    if (!looked || !store) {
      store = findStore(RED.nodes);
      looked = true;
    }
    if (!store) throw new ApiError(503, 'no ai-dialer-store config node is deployed');
    return store.getDb();
  };
  mountWeb(RED.httpNode as never, OWNER, {
    getDb,
    token,
    readToken,
    hostAuth,
    allowedOrigins,
    maxUploadBytes: Number.isFinite(mb) && mb > 0 ? Math.round(mb * 1024 * 1024) : undefined,
    log: (l) => RED.log.error(l),
    dashboard: dashboardOptionsFromEnv(env),
  });
  const nodeRoot = rootOf(RED.settings.httpNodeRoot ?? RED.settings.httpRoot) || '/';
  // express sets `parent` when an app is mounted: httpNode's parent is the host's outermost app
  const top = (RED.httpNode as { parent?: unknown }).parent;
  if (!top || !frontDoor(top, RED.httpNode, nodeRoot))
    RED.log.warn('ai-dialer: cannot put the API ahead of the editor app; its CORS and body limits may apply');
  const mode = authMode({ token, readToken, hostAuth });
  let live: LiveServer | undefined;
  if (RED.server && typeof RED.server.on === 'function')
    live = attachLive(RED.server, {
      token,
      readToken,
      hostAuth: hostAuth ? upgradeAuthFrom(RED.auth!.needsPermission('aidialer.read') as never) : undefined,
      allowedOrigins,
      root: nodeRoot,
      log: (l) => RED.log.warn(`ai-dialer: ${l}`),
    });
  else RED.log.warn('ai-dialer: no HTTP server to serve the live monitor WebSocket (/api/v1/live) on');
  RED.log.info(
    `ai-dialer: HTTP API at ${nodeRoot === '/' ? '' : nodeRoot}/api/v1 (live monitor WebSocket ${live ? 'at /api/v1/live' : 'off'}) and dashboard at ${nodeRoot === '/' ? '' : nodeRoot}/dialer (${
      mode === 'open'
        ? 'OPEN: no API_TOKEN and no adminAuth, anyone who reaches this port reads call records'
        : `login: ${mode}`
    })`,
  );
  return {
    live,
    stop: async () => {
      RED.events?.off?.('flows:started', refresh);
      unmountWeb(RED.httpNode!, OWNER);
      await live?.close();
    },
  };
}
