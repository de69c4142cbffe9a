import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import { CampaignQueueController, type CampaignQueueConfig } from '../../src/controllers/campaign-queue';
import { ariView } from '../../src/campaign/reconcile';
import { dialerEnv, onClose, onInput, registerNode, status, translator } from '../lib/kit';
import { asteriskNode, storeNode } from '../lib/config-nodes';

type QueueDef = NodeDef & CampaignQueueConfig & { store?: string; asterisk?: string };

export = function (RED: NodeAPI): void {
  const t = translator(RED, 'campaign-queue');
  function CampaignQueue(this: Node, config: QueueDef) {
    RED.nodes.createNode(this, config);
    const store = storeNode(RED, config.store);
    if (!store) {
      this.status(status.error(t('status.noStore')));
      onInput(this, () => {
        throw new Error(t('status.noStore'));
      });
      return;
    }
    const asterisk = asteriskNode(RED, config.asterisk);
    // open calls are reconciled against Asterisk: on take-over, on every (re)connection, periodically
    const view =
      asterisk &&
      ariView(
        () => asterisk.connect(),
        () => ctl.manager?.onAsteriskReconnect(),
      );
    const ctl: CampaignQueueController = new CampaignQueueController(config, this, t, {
      getDb: () => store.getDb(),
      send: (port, msg) => this.send(port === 0 ? [msg as NodeMessage, null] : [null, msg as NodeMessage]),
      nodeId: this.id,
      asterisk: view,
      env: dialerEnv(RED),
    });
    onInput(this, (msg) => ctl.handle(msg).then((out) => out && [null, out]));
    onClose(this, () => ctl.close());
  }
  registerNode<QueueDef>(RED, 'campaign-queue', CampaignQueue);
};
