import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import { AriOriginateController, type AriOriginateConfig } from '../../src/controllers/ari-originate';
import type { DialerMsg } from '../../src/types/msg';
import { dialerEnv, onClose, onInput, registerNode, status, translator } from '../lib/kit';
import { asteriskNode } from '../lib/config-nodes';

type OriginateDef = NodeDef & AriOriginateConfig & { asterisk?: string };

export = function (RED: NodeAPI): void {
  const t = translator(RED, 'ari-originate');
  function AriOriginate(this: Node, config: OriginateDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const asterisk = asteriskNode(RED, config.asterisk);
    if (!asterisk) {
      node.status(status.error(t('status.noConfig')));
      onInput(node, () => {
        throw new Error(t('status.noConfig'));
      });
      return;
    }
    const ctl = new AriOriginateController(
      config,
      asterisk.service,
      node,
      t,
      {
        send: (port, msg) => node.send(port === 0 ? [msg as NodeMessage, null] : [null, msg as NodeMessage]),
        clone: (msg) => RED.util.cloneMessage(msg as NodeMessage) as DialerMsg,
        source: { id: node.id, type: 'ari-originate', name: node.name },
        debug: (text) => node.debug(text),
      },
      dialerEnv(RED),
    );
    onInput(node, (msg) => ctl.handle(msg));
    onClose(node, () => ctl.close());
  }
  registerNode<OriginateDef>(RED, 'ari-originate', AriOriginate);
};
