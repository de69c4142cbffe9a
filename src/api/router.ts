/**
 * The HTTP API (JSON, /api/v1/...) as an express Router, for Node-RED's httpNode (express 4) or any
 * express app. Every bad input gets a 4xx with `{error: "<one clear line>"}`; a 500 means a bug and
 * says only that (the detail goes to the log).
 *
 *   const router = createApiRouter({ getDb: () => acquireDb(opts), token: process.env.API_TOKEN });
 *   app.use(router);
 *
 * Order of every request: same-origin check (no CORS `*`), health (open), credential (every other
 * route, reads included, when a token or the host's login is configured), the route (which checks
 * the campaign and the declared size before it reads a body), then JSON errors. The routes live in
 * routes/*.ts, their SQL in src/store/. Route reference: docs/reference/http-api.md.
 */
import express, { type Router } from 'express';
import type { Db, Queryable } from '../store/db';
import { getCampaign, type CampaignRow } from '../store/campaigns';
import { errorMessage } from '../util/errors';
import { campaignControl } from '../campaign/control';
import { ApiError } from './errors';
import { DEFAULT_LIMITS, apiErrorHandler, type ApiLimits } from './http';
import { authMode, createAuth, originGuard, type AuthOptions } from './auth';
import type { ApiContext, CampaignControlApi } from './context';
import { campaignRoutes } from './routes/campaigns';
import { uploadRoutes } from './routes/uploads';
import { phoneNumberRoutes } from './routes/phone-numbers';
import { engineRoutes } from './routes/engine';
import { callRoutes } from './routes/calls';
import { dncRoutes } from './routes/dnc';
import { recordingsDir } from '../agi/recording';
import { healthRoutes } from './routes/health';

export { ApiError } from './errors';
export { parseId } from './http';
export type { CampaignControlApi } from './context';

export interface ApiRouterOptions {
  getDb: () => Promise<Db>;
  /** Campaign engine controls; default: `campaignControl` from src/campaign/control (loaded when first needed). */
  control?: CampaignControlApi | (() => CampaignControlApi | undefined);
  /** Full-access token; default process.env.API_TOKEN; empty: none. */
  token?: string;
  /** Read-only token (dashboards); default process.env.API_READ_TOKEN. */
  readToken?: string;
  /** The host's login check (Node-RED adminAuth), see auth.ts. */
  hostAuth?: AuthOptions['hostAuth'];
  /** Origins (scheme://host:port) other than the API's own that browsers may call it from. */
  allowedOrigins?: string[];
  /** Largest CSV / multipart upload in bytes (default 50 MB). */
  maxUploadBytes?: number;
  /** Largest JSON body in bytes (default 10 MB). */
  maxJsonBytes?: number;
  /** Whole-call recordings directory (default: RECORDINGS_DIR, else DATA_DIR/recordings). */
  recordingsDir?: string;
  /** One-line logger for unexpected (500) errors. */
  log?: (line: string) => void;
}

/** The campaign engine's control object of this process. */
function loadDefaultControl(): CampaignControlApi | undefined {
  return campaignControl;
}

function context(opts: ApiRouterOptions, limits: ApiLimits, auth: AuthOptions): ApiContext {
  return {
    limits,
    recordingsDir: recordingsDir(opts.recordingsDir),
    authMode: authMode(auth),
    log: opts.log ?? ((line: string) => console.error(line)),
    db: async () => {
      try {
        return await opts.getDb();
      } catch (err) {
        throw new ApiError(503, `the database is unavailable: ${errorMessage(err)}`);
      }
    },
    control: () => {
      let c: CampaignControlApi | undefined;
      try {
        c = typeof opts.control === 'function' ? opts.control() : (opts.control ?? loadDefaultControl());
      } catch (err) {
        throw new ApiError(503, `the campaign engine failed to load: ${errorMessage(err)}`);
      }
      if (!c)
        throw new ApiError(
          503,
          'the campaign engine is not available in this runtime (no campaign control loaded); start/stop/pause/resume cannot run',
        );
      return c;
    },
    mustCampaign: async (q: Queryable, id: number): Promise<CampaignRow> => {
      const c = await getCampaign(q, id);
      if (!c) throw new ApiError(404, `campaign ${id} not found`);
      return c;
    },
  };
}

export function createApiRouter(opts: ApiRouterOptions): Router {
  const limits: ApiLimits = {
    jsonBytes: opts.maxJsonBytes ?? DEFAULT_LIMITS.jsonBytes,
    uploadBytes: opts.maxUploadBytes ?? DEFAULT_LIMITS.uploadBytes,
  };
  const auth: AuthOptions = {
    token: opts.token ?? process.env.API_TOKEN ?? '',
    readToken: opts.readToken ?? process.env.API_READ_TOKEN ?? '',
    hostAuth: opts.hostAuth,
  };
  const ctx = context(opts, limits, auth);
  const api = express.Router();
  api.use(originGuard(opts.allowedOrigins));
  api.options('*', (_req, res) => {
    res.status(204).end(); // same-origin pages never preflight; other origins got a 403 above
  });
  healthRoutes(api, ctx);
  api.use(createAuth(auth));
  // the live monitor is a WebSocket (src/api/live.ts answers upgrades on the HTTP server); a plain GET
  // got past the origin and credential checks: 426 says so (the dashboard tells its user why it failed)
  api.get('/api/v1/live', (_req, res) => {
    res.status(426).set({ Upgrade: 'websocket', 'Cache-Control': 'no-store' }).json({
      error: 'the live monitor is a WebSocket: connect with a WebSocket client (subprotocol ai-dialer.v1)',
      credential: 'accepted',
    });
  });
  campaignRoutes(api, ctx);
  uploadRoutes(api, ctx);
  phoneNumberRoutes(api, ctx);
  engineRoutes(api, ctx);
  callRoutes(api, ctx);
  dncRoutes(api, ctx);
  api.use((req, _res, next) =>
    next(new ApiError(404, `no such route: ${req.method} ${req.originalUrl.split('?')[0].slice(0, 200)}`)),
  );
  api.use(apiErrorHandler(ctx.log));

  const router = express.Router();
  // everything under /api/v1 (and /api/v1 itself) goes through the API chain, nothing else does
  router.use((req, res, next) => {
    const p = req.path;
    if (p === '/api/v1' || p.startsWith('/api/v1/')) return api(req, res, next);
    next();
  });
  return router;
}
