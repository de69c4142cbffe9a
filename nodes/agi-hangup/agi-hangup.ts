import type { NodeAPI, Node, NodeDef, NodeMessageInFlow } from 'node-red';
import { getSession } from '../../src/agi/registry';
import { DEFAULT_TRANSFER_CONTEXT, parseTransferTarget, transferCall } from '../../src/agi/transfer';
import { storeFinalisation } from '../../src/store/turns';
import type { Db } from '../../src/store/db';
import { errorMessage } from '../../src/util/errors';

interface HangupDef extends NodeDef {
  store?: string;
  transferContext?: string;
}
interface HangupMsg extends NodeMessageInFlow {
  call?: { id?: number | string; sessionId?: string; direction?: string; [k: string]: unknown };
  reply?: { action?: { type?: string; destination?: unknown } };
}
interface StoreNode extends Node {
  getDb?: () => Promise<Db>;
}

export = function (RED: NodeAPI): void {
  function AgiHangup(this: Node, config: HangupDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const store = config.store ? (RED.nodes.getNode(config.store) as StoreNode | null) : null;

    /** With a store: the transcript is aggregated; an inbound call (no ARI side to close it) is completed. */
    const finalise = async (msg: HangupMsg): Promise<void> => {
      const id = msg.call?.id;
      if (!store || typeof store.getDb !== 'function' || typeof id !== 'number') return;
      try {
        const db = await store.getDb();
        const w = await storeFinalisation(db, {
          id,
          campaignId: Number(msg.call!.campaignId) || null,
          inbound: msg.call!.direction === 'inbound',
        });
        if (w.stored) msg.call!.transcript = w.result;
        else msg.call!.writePending = true; // the transcript is stored once the database is back
      } catch (err) {
        // The call is over either way; the record can be fixed later, the msg must go on.
        node.warn(`could not finalise call ${id}: ${errorMessage(err)}`);
      }
    };

    node.on('input', (raw, send, done) => {
      const msg = raw as HangupMsg;
      const id = msg.call?.sessionId;
      const session = id ? getSession(id) : undefined;
      const wasUp = !!session && !session.hungUp;
      const action = msg.reply?.action;
      if (action?.type === 'transfer' && session && wasUp) {
        // the call leaves the AI for a human: the dialplan continues at the destination
        let target;
        try {
          target = parseTransferTarget(
            action.destination,
            config.transferContext || process.env.TRANSFER_CONTEXT || DEFAULT_TRANSFER_CONTEXT,
          );
        } catch (err) {
          done(err as Error);
          return;
        }
        transferCall(session, target)
          .then(async () => {
            msg.call = { ...(msg.call ?? {}), transferredTo: `${target.extension}@${target.context}` };
            await finalise(msg);
            node.status({ fill: 'blue', shape: 'dot', text: `transferred to ${target.extension}@${target.context}` });
            send(msg);
            done();
          })
          .catch((err: unknown) => {
            session.close();
            node.status({ fill: 'red', shape: 'ring', text: errorMessage(err).slice(0, 60) });
            done(err as Error);
          });
        return;
      }
      const ended = session
        ? session.hangup().then(
            () => session.close(),
            (err: unknown) => {
              session.close();
              throw err;
            },
          )
        : Promise.resolve(); // already gone (the caller hung up, or a second hangup): not an error
      ended
        .then(async () => {
          if (msg.call) {
            msg.call.hungUp = true;
            if (session) msg.call.hungUpBy = wasUp ? 'agi' : 'caller';
          }
          await finalise(msg);
          node.status({
            fill: wasUp ? 'green' : 'grey',
            shape: wasUp ? 'dot' : 'ring',
            text: RED._(wasUp ? 'agi-hangup.status.done' : 'agi-hangup.status.gone'),
          });
          send(msg);
          done();
        })
        .catch((err: unknown) => {
          node.status({ fill: 'red', shape: 'ring', text: errorMessage(err).slice(0, 60) });
          done(err as Error);
        });
    });
  }
  RED.nodes.registerType('agi-hangup', AgiHangup as unknown as Parameters<NodeAPI['nodes']['registerType']>[1]);
};
