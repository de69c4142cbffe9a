/**
 * Serve the HTTP API and the dashboard on a host express app (Node-RED's RED.httpNode) once per
 * process, however often flows are redeployed: one dispatcher middleware is installed the first
 * time, and nodes install or remove the router it delegates to.
 */
import express, { type Router } from 'express';
import type { Db } from '../store/db';
import { createApiRouter } from './router';
import { mountDashboard, type DashboardOptions } from './dashboard';

interface Slot {
  current?: { owner: string; router: Router };
}

const slots = new WeakMap<object, Slot>();

export interface WebOptions {
  getDb: () => Promise<Db>;
  token?: string;
  dashboard?: DashboardOptions;
  log?: (line: string) => void;
}

/** Dashboard settings from the environment (the MQTT broker's WebSocket and the read-only account). */
export function dashboardOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): DashboardOptions {
  return {
    mqttUrl: env.MQTT_WS_URL || undefined,
    mqttPath: '/mqtt',
    mqttAuth: !!env.MQTT_READER_USER,
    mqttUsername: env.MQTT_READER_USER || undefined,
    apiTokenRequired: !!env.API_TOKEN,
  };
}

/**
 * Install the API (`/api/v1/...`) and dashboard (`/dialer`) for `owner` on `app`. Returns false when
 * another owner already serves them (one set per process). `unmountWeb(app, owner)` removes them.
 */
export function mountWeb(app: { use: express.Router['use'] }, owner: string, opts: WebOptions): boolean {
  let slot = slots.get(app);
  if (!slot) {
    const s: Slot = {};
    slot = s;
    slots.set(app, s);
    app.use((req, res, next) => (s.current ? s.current.router(req, res, next) : next()));
  }
  if (slot.current && slot.current.owner !== owner) return false;
  const router = express.Router();
  router.use(createApiRouter({ getDb: opts.getDb, token: opts.token, log: opts.log }));
  mountDashboard(router, opts.dashboard ?? dashboardOptionsFromEnv());
  slot.current = { owner, router };
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
