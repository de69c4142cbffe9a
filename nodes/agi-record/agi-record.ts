import type { NodeAPI, Node, NodeDef } from 'node-red';
import { recordingsDir } from '../../src/agi/recording';
import { AgiRecordController, type AgiRecordConfig } from '../../src/controllers/agi-record';
import { dialerEnv, onInput, registerNode, translator } from '../lib/kit';

type AgiRecordDef = NodeDef & AgiRecordConfig & { dir?: string };

export = function (RED: NodeAPI): void {
  const t = translator(RED, 'agi-record');
  function AgiRecord(this: Node, config: AgiRecordDef) {
    RED.nodes.createNode(this, config);
    const ctl = new AgiRecordController(config, recordingsDir(config.dir, dialerEnv(RED)), this, t);
    onInput(this, (msg) => ctl.handle(msg), { onFailure: (err) => ctl.failed(err) });
    this.on('close', () => this.status({}));
  }
  registerNode<AgiRecordDef>(RED, 'agi-record', AgiRecord);
};
