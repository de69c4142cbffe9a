import type { NodeAPI, Node, NodeDef, NodeMessageInFlow } from 'node-red';
import { getSession } from '../../src/agi/registry';
import { errorMessage } from '../../src/util/errors';

interface HangupMsg extends NodeMessageInFlow {
  call?: { sessionId?: string; [k: string]: unknown };
}

export = function (RED: NodeAPI): void {
  function AgiHangup(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    node.on('input', (raw, send, done) => {
      const msg = raw as HangupMsg;
      const id = msg.call?.sessionId;
      const session = id ? getSession(id) : undefined;
      if (!session) {
        // Already gone (the caller hung up, or a second hangup): nothing to do, the msg goes on.
        node.status({ fill: 'grey', shape: 'ring', text: RED._('agi-hangup.status.gone') });
        if (msg.call) msg.call.hungUp = true;
        send(msg);
        done();
        return;
      }
      const wasUp = !session.hungUp;
      session
        .hangup()
        .then(() => {
          session.close();
          if (msg.call) {
            msg.call.hungUp = true;
            msg.call.hungUpBy = wasUp ? 'agi' : 'caller';
          }
          node.status({ fill: 'green', shape: 'dot', text: RED._(wasUp ? 'agi-hangup.status.done' : 'agi-hangup.status.gone') });
          send(msg);
          done();
        })
        .catch((err: unknown) => {
          session.close();
          node.status({ fill: 'red', shape: 'ring', text: errorMessage(err).slice(0, 60) });
          done(err as Error);
        });
    });
  }
  RED.nodes.registerType('agi-hangup', AgiHangup as unknown as Parameters<NodeAPI['nodes']['registerType']>[1]);
};
