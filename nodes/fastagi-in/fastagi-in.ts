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
    const ctl = new FastAgiInController(
      { ...config, secret: this.credentials?.secret },
      this,
      t,
      {
        send: (port, msg) => this.send(port === 0 ? [msg as NodeMessage, null] : [null, msg as NodeMessage]),
        listening: (a) => {
          this.port = a.port;
          this.emit('listening', a);
        },
      },
      callRecords(RED, config.store, this),
      dialerEnv(RED),
    );
    void ctl.listen();
    onClose(this, () => ctl.close());
  }
  registerNode<FastAgiInDef, Creds>(RED, 'fastagi-in', FastAgiIn, {
    credentials: { secret: { type: 'password' } },
  });
};
