import type { Node, NodeAPI, NodeDef } from 'node-red';
import { StoreController } from '../../src/controllers/config-nodes';
import type { StoreMode } from '../../src/store/options';
import { dialerEnv, onClose, registerNode, translator } from '../lib/kit';
import type { StoreConfigNode } from '../lib/config-nodes';

interface StoreDef extends NodeDef {
  mode: StoreMode;
  dataDir: string;
}
interface StoreCreds {
  url?: string;
}

export = function (RED: NodeAPI): void {
  const t = translator(RED, 'ai-dialer-store');
  function AiDialerStore(this: StoreConfigNode & Node<StoreCreds>, config: StoreDef) {
    RED.nodes.createNode(this, config);
    const ctl = new StoreController(
      { mode: config.mode, dataDir: config.dataDir, url: this.credentials?.url },
      this,
      t,
      dialerEnv(RED),
    );
    this.description = ctl.description;
    this.getDb = () => ctl.getDb();
    onClose(this, () => ctl.close());
  }
  registerNode<StoreDef, StoreCreds, StoreConfigNode & Node<StoreCreds>>(RED, 'ai-dialer-store', AiDialerStore, {
    credentials: { url: { type: 'password' } },
  });
};
