import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import { FastAgiInController, type FastAgiInConfig } from '../../src/controllers/fastagi-in';
import { dialerEnv, onClose, registerNode, translator } from '../lib/kit';
import { callRecords } from '../lib/config-nodes';

type FastAgiInDef = NodeDef & FastAgiInConfig & { store?: string };
interface Creds {
  secret?: string;
}

export = function (RED: NodeAPI): void {
  const t = translator(RED, 'fastagi-in');
  function FastAgiIn(this: Node<Creds> & { port?: number }, config: FastAgiInDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const ctl = new FastAgiInController(
      { ...config, secret: node.credentials?.secret },
      node,
      t,
      {
        send: (port, msg) => node.send(port === 0 ? [msg as NodeMessage, null] : [null, msg as NodeMessage]),
        listening: (a) => {
          node.port = a.port;
          node.emit('listening', a);
        },
      },
      callRecords(RED, config.store, node),
      dialerEnv(RED),
    );
    void ctl.listen();
    onClose(node, () => ctl.close());
  }
  registerNode<FastAgiInDef, Creds>(RED, 'fastagi-in', FastAgiIn, {
    credentials: { secret: { type: 'password' } },
  });
};
