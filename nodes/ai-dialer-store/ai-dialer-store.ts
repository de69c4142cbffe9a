import type { Node, NodeAPI, NodeDef } from 'node-red';
import { StoreController } from '../../src/controllers/config-nodes';
import type { StoreMode } from '../../src/store/options';
import { dialerEnv, keepAcrossDeploy, registerNode, translator } from '../lib/kit';
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
    const settings = { mode: config.mode, dataDir: config.dataDir, url: this.credentials?.url };
    // the database outlives a redeploy (live calls of the old flows still store their turns)
    const { value: ctl } = keepAcrossDeploy(
      this,
      settings,
      () => new StoreController(settings, this, t, dialerEnv(RED)),
      (c) => c.close(),
    );
    this.description = ctl.description;
    this.getDb = () => ctl.getDb();
  }
  registerNode<StoreDef, StoreCreds, StoreConfigNode & Node<StoreCreds>>(RED, 'ai-dialer-store', AiDialerStore, {
    credentials: { url: { type: 'password' } },
  });
};
