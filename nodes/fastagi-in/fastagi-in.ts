import type { NodeAPI, Node, NodeDef, NodeMessageInFlow } from 'node-red';
import { AgiServer, resolveServerOptions } from '../../src/agi/server';
import { readCall, readCallToken, type AgiCall } from '../../src/agi/call';
import { admitCall } from '../../src/agi/admit';
import { envArgs, parseNetworkScript } from '../../src/agi/protocol';
import { registerSession, sessionsByCallId } from '../../src/agi/registry';
import { controlBus, type CallControl } from '../../src/events/control-bus';
import type { FastAgiSession } from '../../src/agi/session';
import type { Db } from '../../src/store/db';
import { errorMessage } from '../../src/util/errors';

interface FastAgiInDef extends NodeDef {
  host: string;
  port: string;
  allow: string;
  maxSessions: string;
  envTimeout: string;
  commandTimeout: string;
  answer: boolean;
  store: string;
}
interface Creds {
  secret?: string;
}
interface StoreNode extends Node {
  getDb?: () => Promise<Db>;
}

function num(v: string | undefined, fallback: number): number {
  const n = Number(v);
  return v !== undefined && v !== '' && Number.isFinite(n) && n > 0 ? n : fallback;
}

export = function (RED: NodeAPI): void {
  function FastAgiIn(this: Node<Creds>, config: FastAgiInDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const store = config.store ? (RED.nodes.getNode(config.store) as StoreNode | null) : null;
    let server: AgiServer | undefined;
    let where = '';
    let statusTimer: NodeJS.Timeout | undefined;
    let active = 0;

    const showStatus = () => {
      statusTimer = undefined;
      node.status({
        fill: 'green',
        shape: active > 0 ? 'dot' : 'ring',
        text: RED._('fastagi-in.status.listening', { where, active }),
      });
    };
    // Many sessions start and end per second under load: redraw the status at most 4 times a second.
    const refresh = () => {
      if (!statusTimer) statusTimer = setTimeout(showStatus, 250);
    };

    let opts: ReturnType<typeof resolveServerOptions>;
    try {
      opts = resolveServerOptions({
        host: config.host,
        port: config.port,
        allow: config.allow,
        secret: node.credentials?.secret,
        maxSessions: config.maxSessions,
      });
    } catch (err) {
      node.status({ fill: 'red', shape: 'ring', text: RED._('fastagi-in.status.badConfig') });
      node.error(errorMessage(err));
      return;
    }

    server = new AgiServer({
      ...opts,
      envTimeoutMs: num(config.envTimeout, 5) * 1000,
      commandTimeoutMs: num(config.commandTimeout, 5) * 1000,
      log: { info: (m) => node.log(m), warn: (m) => node.warn(m) },
    });

    const onSession = async (s: FastAgiSession) => {
      let call: AgiCall | undefined;
      try {
        call = await readCall(s);
        // A session drives only a call it was given (src/agi/call-token.ts): refused ones never reach the flow.
        const token = call.id === undefined ? undefined : await readCallToken(s);
        let db: Db | undefined;
        let storeDown = false;
        if (store && typeof store.getDb === 'function') {
          try {
            db = await store.getDb();
          } catch {
            storeDown = true;
          }
        }
        const verdict = await admitCall({
          db,
          storeDown,
          sessionId: s.id,
          callId: call.id,
          token,
          inbound: { phone: call.phone || null, callerId: call.callerId ?? null, campaignId: call.campaignId },
          channel: call.channel ?? null,
          uniqueid: call.uniqueid ?? null,
          amdStatus: call.amd?.status ?? null,
          amdCause: call.amd?.cause ?? null,
        });
        if (!verdict.ok) {
          server?.refuseSession(s, verdict.reason, verdict.message);
          return;
        }
        if (verdict.warning) node.warn(verdict.warning);
        if (verdict.created) call.id = verdict.callId;
      } catch (err) {
        node.error(`AGI session could not start: ${errorMessage(err)}`, {
          call: call ?? { sessionId: s.id },
        } as unknown as NodeMessageInFlow);
        s.close();
        return;
      }
      active++;
      refresh();
      const ended = () => {
        active--;
        refresh();
        const reason = s.callerHungUp ? 'caller_hangup' : s.hangupRequested ? 'agi_hangup' : 'closed';
        node.send([
          null,
          {
            topic: 'agi_ended',
            payload: reason,
            call: call ?? { sessionId: s.id },
            agi: { sessionId: s.id, reason },
          } as unknown as NodeMessageInFlow,
        ]);
      };
      if (s.closed) return ended(); // the caller left while the session was admitted
      s.once('close', ended);
      try {
        if (call.id !== undefined) {
          s.callId = String(call.id);
          registerSession(s); // re-index by call id
        }
        if (config.answer) await s.answer();
        const script = parseNetworkScript(s.env.network_script);
        const msg = {
          topic: 'agi_session',
          payload: { script: script.path, args: envArgs(s.env) },
          call,
          agi: { sessionId: s.id, env: { ...s.env }, script: script.path, args: envArgs(s.env) },
        };
        node.send([msg as unknown as NodeMessageInFlow, null]);
      } catch (err) {
        // Plain English, like every error message in the package: Catch nodes and logs get the cause.
        node.error(`AGI session could not start: ${errorMessage(err)}`, {
          call: call ?? { sessionId: s.id },
        } as unknown as NodeMessageInFlow);
        s.close();
      }
    };

    server.on('session', (s: FastAgiSession) => void onSession(s));

    // A supervisor's "hangup" for a call (MQTT ai-dialer/v1/calls/<id>/control, checked by the bus node).
    const onControl = (c: CallControl): void => {
      if (c.action !== 'hangup') return;
      for (const sess of sessionsByCallId(String(c.callId))) {
        if (sess.hungUp) continue;
        node.log(`supervisor hangup of call ${c.callId}`);
        sess.hangup().then(
          () => sess.close(),
          () => sess.close(),
        );
      }
    };
    controlBus.on('call', onControl);
    server
      .listen()
      .then((a) => {
        where = `${a.host}:${a.port}`;
        (node as Node & { port?: number }).port = a.port;
        showStatus();
        node.emit('listening', a);
      })
      .catch((err: Error) => {
        node.status({ fill: 'red', shape: 'ring', text: RED._('fastagi-in.status.listenFailed') });
        node.error(err.message);
      });

    node.on('close', (_removed: boolean, done: () => void) => {
      if (statusTimer) clearTimeout(statusTimer);
      controlBus.off('call', onControl);
      const s = server;
      server = undefined;
      if (!s) return done();
      s.close().then(done, done);
    });
  }
  RED.nodes.registerType('fastagi-in', FastAgiIn as unknown as Parameters<NodeAPI['nodes']['registerType']>[1], {
    credentials: { secret: { type: 'password' } },
  });
};
