import type { NodeAPI, Node, NodeDef } from 'node-red';
import { AriService, type AsteriskMode } from '../../src/ari/service';
import type { ConnectionState } from '../../src/ari/client';
import { parseNumber } from '../../src/util/config';
import { errorMessage } from '../../src/util/errors';
import { dialerEnv, onClose, registerNode, translator } from '../lib/kit';
import type { AsteriskConfigNode } from '../lib/config-nodes';
import { simulatorStarter } from '../lib/simulator';

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
type This = AsteriskConfigNode & Node<AsteriskCreds>;

export = function (RED: NodeAPI): void {
  const t = translator(RED, 'ai-dialer-asterisk');
  function AiDialerAsterisk(this: This, config: AsteriskDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const port = parseNumber(config.agiPort);
    const speed = parseNumber(config.simSpeed);
    node.service = new AriService(
      {
        mode: config.mode || 'env',
        url: config.url,
        username: config.username,
        password: node.credentials?.password,
        app: config.app,
        agiHost: config.agiHost || undefined,
        agiPort: port !== undefined && Number.isInteger(port) && port > 0 ? port : undefined,
        simSpeed: speed !== undefined && speed > 0 ? speed : undefined,
      },
      dialerEnv(RED),
      simulatorStarter(RED),
    );
    // Each distinct problem is logged once by the connection (then retried with backoff).
    node.service.on('warning', (w: string) => node.warn(w));
    node.service.on('state', (s: ConnectionState, err?: Error) => {
      if (s === 'error' && err) node.error(err.message);
    });
    node.connect = () => node.service.connect();
    onClose(node, () =>
      node.service.close().catch((err: unknown) => node.warn(t('warn.closeFailed', { error: errorMessage(err) }))),
    );
  }
  registerNode<AsteriskDef, AsteriskCreds, This>(RED, 'ai-dialer-asterisk', AiDialerAsterisk, {
    credentials: { password: { type: 'password' } },
  });
};
