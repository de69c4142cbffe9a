import type { NodeAPI, Node, NodeDef } from 'node-red';
import { AgiHangupController, type AgiHangupConfig } from '../../src/controllers/agi-hangup';
import { dialerEnv, onInput, registerNode, translator } from '../lib/kit';
import { callRecords } from '../lib/config-nodes';

type HangupDef = NodeDef & AgiHangupConfig & { store?: string };

export = function (RED: NodeAPI): void {
  const t = translator(RED, 'agi-hangup');
  function AgiHangup(this: Node, config: HangupDef) {
    RED.nodes.createNode(this, config);
    const records = callRecords(RED, config.store, this);
    const ctl = new AgiHangupController(config, this, t, records, dialerEnv(RED));
    onInput(this, (msg) => ctl.handle(msg), { onFailure: (err) => ctl.failed(err) });
  }
  registerNode<HangupDef>(RED, 'agi-hangup', AgiHangup);
};
