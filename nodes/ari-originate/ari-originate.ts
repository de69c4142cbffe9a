import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import { AriOriginateController, type AriOriginateConfig } from '../../src/controllers/ari-originate';
import type { DialerMsg } from '../../src/types/msg';
import { dialerEnv, keepAcrossDeploy, onInput, registerNode, status, translator } from '../lib/kit';
import { asteriskNode } from '../lib/config-nodes';

type OriginateDef = NodeDef & AriOriginateConfig & { asterisk?: string };

/** A process-unique number per Asterisk connection (a controller is kept only on the same one). */
const serviceIds = new WeakMap<object, number>();
let lastServiceId = 0;
function serviceId(service: object): number {
  let n = serviceIds.get(service);
  if (n === undefined) serviceIds.set(service, (n = ++lastServiceId));
  return n;
}

export = function (RED: NodeAPI): void {
  const t = translator(RED, 'ari-originate');
  function AriOriginate(this: Node, config: OriginateDef) {
    RED.nodes.createNode(this, config);
    const asterisk = asteriskNode(RED, config.asterisk);
    if (!asterisk) {
      this.status(status.error(t('status.noConfig')));
      this.error(t('error.noConfig'));
      onInput(this, () => {
        throw new Error(t('error.noConfig'));
      });
      return;
    }
    const hooks = {
      send: (port: 0 | 1, msg: DialerMsg) =>
        this.send(port === 0 ? [msg as NodeMessage, null] : [null, msg as NodeMessage]),
      clone: (msg: DialerMsg) => RED.util.cloneMessage(msg as NodeMessage) as DialerMsg,
      source: { id: this.id, type: 'ari-originate', name: this.name },
      debug: (text: string) => this.debug(text),
    };
    const { endpoint, agiContext, timeout, callerId, amd, amdNotSure } = config;
    // the calls it follows outlive a redeploy (same settings, same Asterisk connection)
    const { value: ctl } = keepAcrossDeploy(
      this,
      { endpoint, agiContext, timeout, callerId, amd, amdNotSure, service: serviceId(asterisk.service) },
      () => new AriOriginateController(config, asterisk.service, this, t, hooks, dialerEnv(RED)),
      (c) => c.close(),
      { attach: (c) => c.attach(this, hooks) },
    );
    onInput(this, (msg) => ctl.handle(msg));
  }
  registerNode<OriginateDef>(RED, 'ari-originate', AriOriginate);
};
