import type { NodeAPI, Node, NodeDef } from 'node-red';
import { AriService, type AsteriskMode } from '../../src/ari/service';
import type { AriConnection, ConnectionState } from '../../src/ari/client';

interface AsteriskDef extends NodeDef {
  mode: AsteriskMode;
  url: string;
  username: string;
  app: string;
  agiHost: string;
  agiPort: string;
  simSpeed: string;
}
interface AsteriskCreds {
  password?: string;
}
interface AsteriskConfigNode extends Node<AsteriskCreds> {
  /** The shared ARI service (state events, connect(), close). */
  service: AriService;
  /** The shared connection (starts it on first use). */
  connect(): Promise<AriConnection>;
}

export = function (RED: NodeAPI): void {
  function AiDialerAsterisk(this: AsteriskConfigNode, config: AsteriskDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const port = Number(config.agiPort);
    const speed = Number(config.simSpeed);
    node.service = new AriService({
      mode: config.mode || 'env',
      url: config.url,
      username: config.username,
      password: node.credentials?.password,
      app: config.app,
      agiHost: config.agiHost || undefined,
      agiPort: Number.isInteger(port) && port > 0 ? port : undefined,
      simSpeed: Number.isFinite(speed) && speed > 0 ? speed : undefined,
    });
    // Each distinct problem is logged once by the connection (then retried with backoff).
    node.service.on('warning', (w: string) => node.warn(w));
    node.service.on('state', (s: ConnectionState, err?: Error) => {
      if (s === 'error' && err) node.error(err.message);
    });
    node.connect = () => node.service.connect();
    node.on('close', (_removed: boolean, done: () => void) => {
      node.service
        .close()
        .catch((err: Error) => node.warn(`asterisk: close failed: ${err.message}`))
        .finally(done);
    });
  }
  RED.nodes.registerType(
    'ai-dialer-asterisk',
    AiDialerAsterisk as unknown as Parameters<NodeAPI['nodes']['registerType']>[1],
    {
      credentials: { password: { type: 'password' } },
    },
  );
};
