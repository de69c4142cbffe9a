import type { NodeAPI, Node, NodeDef } from 'node-red';
import { CallBroadcastController, type CallBroadcastConfig } from '../../src/controllers/call-broadcast';
import { onInput, registerNode, translator } from '../lib/kit';
import { busNode } from '../lib/config-nodes';

type BroadcastDef = NodeDef & CallBroadcastConfig & { bus?: string };

export = function (RED: NodeAPI): void {
  const t = translator(RED, 'call-broadcast');
  function CallBroadcast(this: Node, config: BroadcastDef) {
    RED.nodes.createNode(this, config);
    const bus = busNode(RED, config.bus);
    const ctl = new CallBroadcastController(config, this, t, bus && (() => bus.getPublisher()));
    onInput(this, (msg) => ctl.handle(msg));
    this.on('close', () => ctl.close());
  }
  registerNode<BroadcastDef>(RED, 'call-broadcast', CallBroadcast);
};
