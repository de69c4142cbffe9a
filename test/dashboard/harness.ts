/**
 * A small, reusable stand for dashboard tests: express serving the HTTP API and the dashboard, the
 * live monitor WebSocket at /api/v1/live and the embedded broker (aedes) with MQTT over WebSocket at
 * /mqtt on the same port, the real Publisher that publishes v1 events (built by src/events/builders)
 * to both, and headless Chromium.
 *
 *   const hx = await startDashboardHarness();           // PGlite in memory unless opts.db is given
 *   const browser = await launchChromium();
 *   await hx.publish('call_started', { call: { id: 7, campaignId: 1, phone: '+12125550123' } });
 *   ...
 *   await hx.close();
 */
import http from 'http';
import fs from 'fs';
import path from 'path';
import type { AddressInfo } from 'net';
import express from 'express';
import { chromium, type Browser, type Page } from 'playwright-core';
import { openDb, type Db } from '../../src/store/db';
import { createApiRouter, type CampaignControlApi } from '../../src/api/router';
import { mountDashboard, type DashboardOptions } from '../../src/api/dashboard';
import { EmbeddedBroker, type Account } from '../../src/events/broker';
import { buildEvent } from '../../src/events/builders';
import { Publisher } from '../../src/events/publisher';
import { attachLive, type LiveServer } from '../../src/api/live';

export interface DashboardHarness {
  /** http://127.0.0.1:<port> */
  url: string;
  /** The dashboard page URL. */
  pageUrl: string;
  server: http.Server;
  db: Db;
  broker: EmbeddedBroker;
  publisher: Publisher;
  live: LiveServer;
  /** Stop the live monitor (its clients get 1001) and serve a new one on the same port. */
  restartLive(): Promise<void>;
  /** Publish one event built from a msg (the call-broadcast contract): msg.call, msg.turn, msg.progress... */
  publish(type: string, msg: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  db?: Db;
  control?: CampaignControlApi | (() => CampaignControlApi | undefined);
  token?: string;
  accounts?: Account[];
  dashboard?: DashboardOptions;
}

export async function startDashboardHarness(opts: HarnessOptions = {}): Promise<DashboardHarness> {
  const ownDb = !opts.db;
  const db = opts.db ?? (await openDb({ dataDir: 'memory://' }));
  const app = express();
  app.use(
    createApiRouter({ getDb: async () => db, control: opts.control, token: opts.token ?? '', log: () => undefined }),
  );
  mountDashboard(app, { mqttAuth: !!opts.accounts?.length, apiTokenRequired: !!opts.token, ...(opts.dashboard ?? {}) });
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const broker = await EmbeddedBroker.start({ port: 0, accounts: opts.accounts });
  const detach = broker.attachWebSocket(server, '/mqtt');
  let live = attachLive(server, { token: opts.token ?? '' });
  const publisher = new Publisher({
    url: broker.url,
    username: broker.internal.username,
    password: broker.internal.password,
    progressIntervalMs: 0,
  });
  if (!(await publisher.whenConnected(10000))) throw new Error('the harness publisher did not connect');
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    pageUrl: `${url}/dialer/`,
    server,
    db,
    broker,
    publisher,
    get live() {
      return live;
    },
    restartLive: async () => {
      await live.close();
      live = attachLive(server, { token: opts.token ?? '' });
    },
    publish: async (type, msg) => {
      publisher.publish(buildEvent(msg, type));
      await publisher.whenIdle();
    },
    close: async () => {
      await publisher.close(0).catch(() => undefined);
      await live.close();
      detach();
      await broker.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      if (ownDb) await db.close();
    },
  };
}

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export function chromiumAvailable(): boolean {
  return fs.existsSync(process.env.CHROMIUM_PATH ?? CHROMIUM);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? CHROMIUM,
    args: CHROMIUM_ARGS,
    headless: true,
  });
}

/** test-artifacts/<name>.png at the repository root (gitignored). */
export async function screenshot(page: Page, name: string): Promise<string> {
  const dir = path.resolve(__dirname, '..', '..', 'test-artifacts');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
