import type { NodeAPI, Node, NodeDef } from 'node-red';
import { AriService, type AsteriskMode } from '../../src/ari/service';
import type { ConnectionState } from '../../src/ari/client';
import { parseNumber } from '../../src/util/config';
import { errorMessage } from '../../src/util/errors';
import { dialerEnv, keepAcrossDeploy, registerNode, translator } from '../lib/kit';
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
    const settings = {
      mode: config.mode || 'env',
      url: config.url,
      username: config.username,
      password: this.credentials?.password,
      app: config.app,
      agiHost: config.agiHost || undefined,
      agiPort: port !== undefined && Number.isInteger(port) && port > 0 ? port : undefined,
      simSpeed: speed !== undefined && speed > 0 ? speed : undefined,
    };
    // Each distinct problem is logged once by the connection (then retried with backoff).
    const onWarning = (w: string) => this.warn(w);
    const onState = (s: ConnectionState, err?: Error) => {
      if (s === 'error' && err) this.error(err.message);
    };
    // the connection outlives a redeploy: the calls it follows go on through the new flows
    const { value: service } = keepAcrossDeploy(
      this,
      settings,
      () => new AriService(settings, dialerEnv(RED), simulatorStarter(RED)),
      (svc) => svc.close().catch((err: unknown) => this.warn(t('warn.closeFailed', { error: errorMessage(err) }))),
      {
        attach: (svc) => svc.on('warning', onWarning).on('state', onState),
        detach: (svc) => svc.off('warning', onWarning).off('state', onState),
      },
    );
    this.service = service;
    this.connect = () => this.service.connect();
  }
  registerNode<AsteriskDef, AsteriskCreds, This>(RED, 'ai-dialer-asterisk', AiDialerAsterisk, {
    credentials: { password: { type: 'password' } },
  });
};
