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
    const asterisk = asteriskNode(RED, config.asterisk);
    if (!asterisk) {
      this.status(status.error(t('status.noConfig')));
      onInput(this, () => {
        throw new Error(t('status.noConfig'));
      });
      return;
    }
    const ctl = new AriOriginateController(
      config,
      asterisk.service,
      this,
      t,
      {
        send: (port, msg) => this.send(port === 0 ? [msg as NodeMessage, null] : [null, msg as NodeMessage]),
        clone: (msg) => RED.util.cloneMessage(msg as NodeMessage) as DialerMsg,
        source: { id: this.id, type: 'ari-originate', name: this.name },
        debug: (text) => this.debug(text),
      },
      dialerEnv(RED),
    );
    onInput(this, (msg) => ctl.handle(msg));
    onClose(this, () => ctl.close());
  }
  registerNode<OriginateDef>(RED, 'ari-originate', AriOriginate);
};
