/**
 * Serve the dashboard (static files in the package's `dashboard/` folder) at `/dialer`, the MQTT
 * browser client from the installed `mqtt` package, and `/dialer/config.json` telling the page where
 * the live data is: the API's own WebSocket (/api/v1/live, same credential as the API) unless an
 * external broker's WebSocket is named (MQTT_WS_URL), then MQTT over WebSocket. The writer password is
 * never sent; a read-only username may be.
 */
import fs from 'fs';
import path from 'path';
import express from 'express';
import { DEFAULT_ROOT, checkRoot } from '../events/topics';

export interface DashboardOptions {
  /** Where the dashboard is served (default '/dialer'). */
  basePath?: string;
  /** WebSocket path of the MQTT broker on the same HTTP server (default '/mqtt'). */
  mqttPath?: string;
  /** Full ws:// or wss:// URL of an external broker's WebSocket listener (instead of mqttPath). */
  mqttUrl?: string;
  /**
   * Where the page takes live events from: 'api' (the live monitor WebSocket, default) or 'mqtt'
   * (MQTT over WebSocket; the default when mqttUrl is set: several runtimes behind one broker).
   */
  live?: 'api' | 'mqtt';
  /** Topic root (default ai-dialer/v1). */
  topicRoot?: string;
  /** The broker asks for a login (the page then asks for the read-only account). */
  mqttAuth?: boolean;
  /** Read-only account name to pre-fill (never the writer's). */
  mqttUsername?: string;
  /** The API needs a credential (the page then asks for the token once, or uses the editor login). */
  apiTokenRequired?: boolean;
  /** The API accepts the Node-RED editor's login (adminAuth): the page tries the editor's access token. */
  hostLogin?: boolean;
  /** Where the API is, relative to the dashboard page (default '../api/v1'). */
  apiBase?: string;
  /** Page title. */
  title?: string;
  /** Folder of the static files (default: the package's dashboard/). */
  dir?: string;
}

/** The package's dashboard/ folder, found from this file both in src/ (tests) and dist/src/ (build). */
export function dashboardDir(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    const cand = path.join(dir, 'dashboard');
    if (fs.existsSync(path.join(cand, 'index.html'))) return cand;
    dir = path.dirname(dir);
  }
  throw new Error(`dashboard/ folder not found above ${__dirname}`);
}

export interface DashboardConfig {
  title: string;
  apiBase: string;
  apiTokenRequired: boolean;
  hostLogin: boolean;
  /** 'api': the WebSocket at `livePath` (relative to the page); 'mqtt': the broker below. */
  live: 'api' | 'mqtt';
  livePath: string;
  mqtt: { path: string | null; url: string | null; topicRoot: string; auth: boolean; username: string | null };
}

export function dashboardConfig(opts: DashboardOptions = {}): DashboardConfig {
  return {
    title: opts.title ?? 'AI Dialer',
    apiBase: opts.apiBase ?? '../api/v1',
    apiTokenRequired: opts.apiTokenRequired ?? !!(process.env.API_TOKEN || process.env.API_READ_TOKEN),
    hostLogin: !!opts.hostLogin,
    live: opts.live ?? (opts.mqttUrl ? 'mqtt' : 'api'),
    livePath: `${(opts.apiBase ?? '../api/v1').replace(/\/+$/, '')}/live`,
    mqtt: {
      path: opts.mqttUrl ? null : (opts.mqttPath ?? '/mqtt'),
      url: opts.mqttUrl ?? null,
      topicRoot: checkRoot(opts.topicRoot ?? DEFAULT_ROOT),
      auth: !!opts.mqttAuth,
      username: opts.mqttUsername ?? null,
    },
  };
}

/** Mount the dashboard on an express app or router (e.g. Node-RED's RED.httpNode). */
export function mountDashboard(
  app: { use: express.Router['use'] } & Pick<express.Router, 'get'>,
  opts: DashboardOptions = {},
): void {
  const base = (opts.basePath ?? '/dialer').replace(/\/+$/, '') || '/dialer';
  const dir = opts.dir ?? dashboardDir();
  const mqttBundle = path.join(path.dirname(require.resolve('mqtt/package.json')), 'dist', 'mqtt.min.js');
  const router = express.Router();
  router.get('/config.json', (_req, res) => {
    res.set('Cache-Control', 'no-store').json(dashboardConfig(opts));
  });
  router.get('/vendor/mqtt.min.js', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=3600').type('application/javascript').sendFile(mqttBundle);
  });
  router.use(express.static(dir, { index: 'index.html', redirect: true, fallthrough: true, maxAge: 0 }));
  // `/dialer` -> `/dialer/` so the page's relative URLs resolve under it.
  app.get(base, (req, res, next) => {
    if (req.originalUrl.split('?')[0].endsWith('/')) return next();
    res.redirect(301, req.originalUrl.replace(/^([^?]*)/, '$1/'));
  });
  app.use(
    base,
    (_req, res, next) => {
      // same-origin only (the host may have set `*`), no framing, no sniffing
      res.removeHeader('Access-Control-Allow-Origin');
      res.removeHeader('Access-Control-Allow-Methods');
      res.set('X-Content-Type-Options', 'nosniff');
      res.set('Referrer-Policy', 'same-origin');
      res.set('X-Frame-Options', 'DENY');
      next();
    },
    router,
  );
}
