import type { Node, NodeAPI, NodeDef } from 'node-red';
import type * as http from 'http';
import { BusController, type BusSettings } from '../../src/controllers/config-nodes';
import { dialerEnv, keepAcrossDeploy, registerNode, translator } from '../lib/kit';
import type { BusConfigNode } from '../lib/config-nodes';

type BusDef = NodeDef & BusSettings;
interface BusCreds {
  username?: string;
  password?: string;
  writerPassword?: string;
  readerPassword?: string;
}

export = function (RED: NodeAPI): void {
  const t = translator(RED, 'ai-dialer-bus');
  function AiDialerBus(this: BusConfigNode & Node<BusCreds>, config: BusDef) {
    RED.nodes.createNode(this, config);
    const server = RED.server as http.Server | undefined;
    const { mode, url, port, root, ws, writerUser, readerUser } = config;
    const settings: BusSettings = { mode, url, port, root, ws, writerUser, readerUser, ...this.credentials };
    // the bus (and an embedded broker) outlives a redeploy: dashboards stay connected
    const { value: ctl } = keepAcrossDeploy(
      this,
      settings,
      () => new BusController(settings, `events:${this.id}`, this, t, server, dialerEnv(RED)),
      (c) => c.close(),
    );
    this.getBus = () => ctl.getBus();
    this.getPublisher = () => ctl.getPublisher();
    // Start at deploy so supervisor controls are listened to even before the first event.
    ctl.getBus().catch(() => undefined);
  }
  registerNode<BusDef, BusCreds, BusConfigNode & Node<BusCreds>>(RED, 'ai-dialer-bus', AiDialerBus, {
    credentials: {
      username: { type: 'text' },
      password: { type: 'password' },
      writerPassword: { type: 'password' },
      readerPassword: { type: 'password' },
    },
  });
};
