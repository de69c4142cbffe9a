/**
 * Serve the HTTP API (/api/v1) and the dashboard (/dialer) on a host express app (Node-RED's
 * RED.httpNode) once per process. The owner is the `ai-dialer-api` plugin (one per runtime, not
 * tied to any flow); `unmountWeb` removes it again (tests, a plugin reload).
 *
 * `frontDoor` puts the same handler at the head of the host's outermost app: in a stock Node-RED the
 * editor app is mounted before httpNode on the same root and answers every request with
 * `Access-Control-Allow-Origin: *` and its own 5 MB body parser (HTML errors) before httpNode is
 * reached.
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response, type Router } from 'express';
import type { Db } from '../store/db';
import { createApiRouter, type ApiRouterOptions } from './router';
import { mountDashboard, type DashboardOptions } from './dashboard';
import { authMode } from './auth';

interface Slot {
  current?: { owner: string; router: Router };
  dispatch: RequestHandler;
}

const slots = new WeakMap<object, Slot>();

export interface WebOptions extends Omit<ApiRouterOptions, 'getDb'> {
  getDb: () => Promise<Db>;
  dashboard?: DashboardOptions;
}

/** Dashboard settings from the environment (the MQTT broker's WebSocket and the read-only account). */
export function dashboardOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): DashboardOptions {
  return {
    mqttUrl: env.MQTT_WS_URL || undefined,
    mqttPath: '/mqtt',
    mqttAuth: !!env.MQTT_READER_USER,
    mqttUsername: env.MQTT_READER_USER || undefined,
    apiTokenRequired: !!(env.API_TOKEN || env.API_READ_TOKEN),
  };
}

/** The API router and the dashboard as one handler. */
export function createWeb(opts: WebOptions): Router {
  const router = express.Router();
  router.use(createApiRouter(opts));
  const mode = authMode({ token: opts.token, readToken: opts.readToken, hostAuth: opts.hostAuth });
  mountDashboard(router, {
    ...(opts.dashboard ?? dashboardOptionsFromEnv()),
    apiTokenRequired: mode !== 'open',
    hostLogin: !!opts.hostAuth,
  });
  return router;
}

/**
 * Install the API and dashboard for `owner` on `app`. Returns false when another owner already
 * serves them (one set per app). `unmountWeb(app, owner)` removes them.
 */
export function mountWeb(app: { use: express.Router['use'] }, owner: string, opts: WebOptions): boolean {
  let slot = slots.get(app);
  if (!slot) {
    const s: Slot = {
      dispatch: (req: Request, res: Response, next: NextFunction) =>
        s.current ? s.current.router(req, res, next) : next(),
    };
    slot = s;
    slots.set(app, s);
    app.use(s.dispatch);
  }
  if (slot.current && slot.current.owner !== owner) return false;
  slot.current = { owner, router: createWeb(opts) };
  return true;
}

export function unmountWeb(app: object, owner: string): void {
  const slot = slots.get(app);
  if (slot?.current?.owner === owner) slot.current = undefined;
}

/** Who serves the API on `app`, if anyone. */
export function webOwner(app: object): string | undefined {
  return slots.get(app)?.current?.owner;
}

/** The paths the package serves (relative to the app's root). */
export function isWebPath(p: string): boolean {
  return p === '/api/v1' || p.startsWith('/api/v1/') || p === '/dialer' || p.startsWith('/dialer/');
}

interface Layer {
  name?: string;
  handle?: unknown;
}

/**
 * Put `app`'s package handler (from mountWeb) at the head of `top` (the host's outermost express
 * app, where `app` is mounted at `root`), right after express's own init layers, for package paths
 * only. Returns false when `top` is not an express 4 app whose stack can be reached (nothing changes).
 */
export function frontDoor(top: unknown, app: object, root = '/'): boolean {
  const slot = slots.get(app);
  const f = top as { use?: express.Router['use']; _router?: { stack?: Layer[] } } | undefined;
  if (!slot || !f || typeof f.use !== 'function') return false;
  const door = express.Router();
  door.use(root, (req, res, next) => (isWebPath(req.path) ? slot.dispatch(req, res, next) : next()));
  f.use(door);
  const stack = f._router?.stack;
  if (!Array.isArray(stack) || stack[stack.length - 1]?.handle !== door) return false;
  const layer = stack.pop()!;
  const init = stack.findIndex((l) => l.name === 'expressInit');
  stack.splice(init + 1, 0, layer);
  return true;
}
