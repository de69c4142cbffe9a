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
    const port = parseNumber(config.agiPort);
    const speed = parseNumber(config.simSpeed);
    this.service = new AriService(
      {
        mode: config.mode || 'env',
        url: config.url,
        username: config.username,
        password: this.credentials?.password,
        app: config.app,
        agiHost: config.agiHost || undefined,
        agiPort: port !== undefined && Number.isInteger(port) && port > 0 ? port : undefined,
        simSpeed: speed !== undefined && speed > 0 ? speed : undefined,
      },
      dialerEnv(RED),
      simulatorStarter(RED),
    );
    // Each distinct problem is logged once by the connection (then retried with backoff).
    this.service.on('warning', (w: string) => this.warn(w));
    this.service.on('state', (s: ConnectionState, err?: Error) => {
      if (s === 'error' && err) this.error(err.message);
    });
    this.connect = () => this.service.connect();
    onClose(this, () =>
      this.service.close().catch((err: unknown) => this.warn(t('warn.closeFailed', { error: errorMessage(err) }))),
    );
  }
  registerNode<AsteriskDef, AsteriskCreds, This>(RED, 'ai-dialer-asterisk', AiDialerAsterisk, {
    credentials: { password: { type: 'password' } },
  });
};
