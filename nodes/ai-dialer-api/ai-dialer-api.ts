/**
 * Node-RED plugin: the one owner of the package's HTTP API (/api/v1) and dashboard (/dialer) in a
 * runtime. Loaded once at start-up (package.json "node-red".plugins), independent of the flows.
 */
import type { NodeAPI } from 'node-red';
import { serveOnHost, type HostApi } from '../../src/api/host';

export = function (RED: NodeAPI): void {
  const red = RED as unknown as HostApi & { plugins: { registerPlugin(id: string, def: object): void } };
  red.plugins.registerPlugin('ai-dialer-api', { type: 'ai-dialer-api' });
  try {
    serveOnHost(red);
  } catch (err) {
    red.log.error(`ai-dialer: cannot serve the HTTP API and dashboard: ${(err as Error).message}`);
  }
};
