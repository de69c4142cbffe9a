/**
 * Who may use the API. Credentials, in the order they are tried:
 *
 *  - `API_TOKEN` (full access) or `API_READ_TOKEN` (reads only: dashboards, reporting), sent as
 *    `Authorization: Bearer <token>` or `X-API-Token: <token>`, compared in constant time;
 *  - the host's own login (Node-RED `adminAuth`): a valid editor access token is accepted with the
 *    permission it carries (`read` scope: reads; `*`: everything). The host check is a middleware
 *    supplied by the plugin (RED.auth.needsPermission), so this module has no Node-RED import;
 *  - nothing configured at all: open (the runtime refuses a non-loopback bind then; health says so).
 *
 * Every route needs the credential when one is configured, reads included: call records, transcripts
 * and contact lists are personal data.
 */
import { createHash, timingSafeEqual } from 'crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ApiError } from './errors';

export type AuthMode = 'token' | 'host' | 'token+host' | 'open';

export interface AuthOptions {
  /** Full-access token ('' or undefined: none). */
  token?: string;
  /** Read-only token. */
  readToken?: string;
  /** The host runtime's login check for reads and writes (answers 401/403 itself or calls next). */
  hostAuth?: { read: RequestHandler; write: RequestHandler };
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export function authMode(o: AuthOptions): AuthMode {
  const tokens = !!(o.token || o.readToken);
  if (tokens && o.hostAuth) return 'token+host';
  if (tokens) return 'token';
  if (o.hostAuth) return 'host';
  return 'open';
}

/** The token a request carries, if any. */
export function requestToken(req: Request): string {
  const auth = String(req.headers.authorization ?? '');
  const bearer = /^Bearer\s+(.+)$/i.exec(auth)?.[1]?.trim();
  if (bearer) return bearer;
  const x = req.headers['x-api-token'];
  return typeof x === 'string' ? x.trim() : '';
}

export const isReadMethod = (m: string): boolean => m === 'GET' || m === 'HEAD';

const ACTOR = 'aiDialerActor';

/**
 * Who made an allowed request, for audit trails (never a secret): `api-token`, `read-token`,
 * `user:<name>` (the host's login), `host-login` or `open` (no credential configured).
 */
export function requestActor(req: Request, res: Response): string {
  const byToken = res.locals[ACTOR] as string | undefined;
  if (byToken) return byToken;
  const user = (req as { user?: { username?: unknown } }).user;
  if (user && typeof user.username === 'string' && user.username)
    return `user:${user.username.replace(/[^\w.@+-]/g, '_').slice(0, 100)}`;
  return authModeOf(res) === 'open' ? 'open' : 'host-login';
}

function authModeOf(res: Response): AuthMode | undefined {
  return res.locals.aiDialerAuthMode as AuthMode | undefined;
}

/** Which configured token `given` is (constant-time compare), if any. */
export function tokenRole(o: AuthOptions, given: string): 'full' | 'read' | undefined {
  if (!given) return undefined;
  const d = digest(given);
  if (o.token && timingSafeEqual(d, digest(o.token))) return 'full';
  if (o.readToken && timingSafeEqual(d, digest(o.readToken))) return 'read';
  return undefined;
}

/** The middleware: next() when allowed, else an ApiError (401 no credential, 403 wrong or read-only). */
export function createAuth(o: AuthOptions): RequestHandler {
  const full = o.token ? digest(o.token) : undefined;
  const read = o.readToken ? digest(o.readToken) : undefined;
  const mode = authMode(o);
  return (req: Request, res: Response, next: NextFunction) => {
    res.locals.aiDialerAuthMode = mode;
    if (mode === 'open') return next();
    const reading = isReadMethod(req.method);
    const given = requestToken(req);
    if (given) {
      const d = digest(given);
      if (full && timingSafeEqual(d, full)) {
        res.locals[ACTOR] = 'api-token';
        return next();
      }
      if (read && timingSafeEqual(d, read)) {
        res.locals[ACTOR] = 'read-token';
        if (reading) return next();
        return next(new ApiError(403, 'the read-only API token cannot change anything: use API_TOKEN'));
      }
    }
    if (o.hostAuth) return (reading ? o.hostAuth.read : o.hostAuth.write)(req, res, next);
    if (!given)
      return next(
        new ApiError(401, 'this route needs the API token (Authorization: Bearer <token> or X-API-Token: <token>)'),
      );
    next(new ApiError(403, 'the API token is wrong'));
  };
}

/**
 * Wrap a host login middleware that answers refusals itself with a bare 401 (Node-RED's
 * needsPermission / passport): the refusal becomes the API's JSON error instead.
 */
export function jsonHostRefusal(mw: RequestHandler): RequestHandler {
  return (req, res, next) => {
    const end = res.end.bind(res);
    let passed = false;
    (res as { end: unknown }).end = (...args: unknown[]) => {
      res.end = end;
      if (!passed && res.statusCode >= 400 && !res.headersSent) {
        const status = res.statusCode;
        res.removeHeader('Content-Length');
        res.set('Content-Type', 'application/json; charset=utf-8');
        return end(
          JSON.stringify({
            error:
              status === 401
                ? 'this route needs a login: an API token (Authorization: Bearer <token>) or a Node-RED editor access token'
                : 'not allowed',
          }),
        );
      }
      return (end as (...a: unknown[]) => Response)(...args);
    };
    try {
      mw(req, res, (err?: unknown) => {
        passed = true;
        res.end = end;
        next(err);
      });
    } catch (err) {
      res.end = end;
      next(err);
    }
  };
}

/**
 * Where a browser request comes from, as the API judges it: no Origin header (not a browser, or
 * same-origin navigation), the API's own origin (Host or X-Forwarded-Host), an origin listed in
 * API_ALLOWED_ORIGINS, or refused. The HTTP routes (originGuard) and the live monitor (live.ts) share it.
 */
export function originVerdict(
  headers: { origin?: string; host?: string; 'x-forwarded-host'?: string | string[] },
  allow: Set<string>,
): 'none' | 'same' | 'listed' | 'refused' {
  const origin = headers.origin;
  if (origin === undefined) return 'none';
  if (allow.has(origin.toLowerCase())) return 'listed';
  try {
    const host = new URL(origin).host.toLowerCase();
    // behind a reverse proxy the browser's host is the forwarded one
    const fwd = String(headers['x-forwarded-host'] ?? '')
      .split(',')[0]
      .trim()
      .toLowerCase();
    if (host === String(headers.host ?? '').toLowerCase() || (!!fwd && host === fwd)) return 'same';
  } catch {
    // not a URL: refused
  }
  return 'refused';
}

/** The allow-list of originGuard / originVerdict (API_ALLOWED_ORIGINS), normalised. */
export function originAllowList(allowed: string[] = []): Set<string> {
  return new Set(allowed.map((o) => o.trim().replace(/\/+$/, '').toLowerCase()).filter(Boolean));
}

/** Same-origin only: refuse a request a browser sent from another origin (CSRF and reads alike). */
export function originGuard(allowed: string[] = []): RequestHandler {
  const allow = originAllowList(allowed);
  return (req, res, next) => {
    // whatever the host set (Node-RED's admin app sets `*` on everything it sees): not ours
    res.removeHeader('Access-Control-Allow-Origin');
    res.removeHeader('Access-Control-Allow-Methods');
    res.removeHeader('Access-Control-Allow-Credentials');
    const verdict = originVerdict(req.headers, allow);
    const origin = req.headers.origin ?? '';
    if (verdict === 'listed') {
      res.set('Access-Control-Allow-Origin', origin);
      res.vary('Origin');
      if (req.method === 'OPTIONS') {
        res.set('Access-Control-Allow-Methods', 'GET,POST,PATCH,DELETE');
        res.set('Access-Control-Allow-Headers', 'Authorization,X-API-Token,Content-Type');
        res.set('Access-Control-Max-Age', '600');
        res.status(204).end();
        return;
      }
      return next();
    }
    if (verdict === 'same' || verdict === 'none') return next();
    next(
      new ApiError(
        403,
        `cross-origin request refused (Origin ${origin.slice(0, 100)}); list it in API_ALLOWED_ORIGINS to allow it`,
      ),
    );
  };
}
