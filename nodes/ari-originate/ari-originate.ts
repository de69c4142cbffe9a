import type { NodeAPI, Node, NodeDef, NodeMessageInFlow, NodeMessage } from 'node-red';
import { CallTracker, type CallOutcome, type CallRequest } from '../../src/ari/calls';
import { dialEndpoint } from '../../src/ari/service';
import { registerHealthProbe } from '../../src/runtime/health';
import type { AriService } from '../../src/ari/service';
import type { AriConnection, ConnectionState } from '../../src/ari/client';
import { errorMessage } from '../../src/util/errors';

interface OriginateDef extends NodeDef {
  asterisk: string;
  endpoint: string;
  agiContext: string;
  timeout: string;
  callerId: string;
  amd: 'msg' | 'always' | 'never';
  amdNotSure: 'human' | 'machine';
}

interface AsteriskConfig extends Node {
  service: AriService;
  connect(): Promise<AriConnection>;
}

type CallMsg = NodeMessageInFlow & { call?: Record<string, unknown> & { id?: string | number; phone?: string } };

// English messages, used when the runtime has no catalogue for this node (e.g. loaded directly in tests).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const EN = (
  require('./locales/en-US/ari-originate.json') as { 'ari-originate': Record<string, Record<string, string>> }
)['ari-originate'];

export = function (RED: NodeAPI): void {
  /** RED._ with the English text as fallback. */
  const t = (key: string, vars: Record<string, string | number> = {}): string => {
    const full = `ari-originate.${key}`;
    const s = RED._(full, vars);
    if (s && s !== full) return s;
    const [group, name] = key.split('.');
    return (EN[group]?.[name] ?? key).replace(/__(\w+)__/g, (_m, v: string) => String(vars[v] ?? ''));
  };
  function AriOriginate(this: Node, config: OriginateDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const asterisk = RED.nodes.getNode(config.asterisk) as AsteriskConfig | null;
    if (!asterisk || !asterisk.service) {
      node.status({ fill: 'red', shape: 'ring', text: t('status.noConfig') });
      node.on('input', (_msg, _send, done) => done(new Error(t('status.noConfig'))));
      return;
    }
    const service = asterisk.service;
    const timeout = Number(config.timeout);
    const template = dialEndpoint(config.endpoint);
    const pendingMsgs = new Map<string, CallMsg>();
    let tracker: CallTracker | undefined;
    let trackerError: Error | undefined;
    let closing = false;
    const unprobe = registerHealthProbe(`ariCalls:${node.id}`, () => tracker?.live ?? 0);

    const status = (): void => {
      if (closing) return;
      const live = tracker?.live ?? 0;
      const s = service.state as ConnectionState | 'error';
      const n = t('status.live', { n: live });
      switch (s) {
        case 'connected':
          node.status({ fill: 'green', shape: 'dot', text: `${t('status.connected')} · ${n}` });
          break;
        case 'connecting':
        case 'reconnecting':
        case 'idle':
          node.status({
            fill: 'yellow',
            shape: 'ring',
            text: `${t(`status.${s === 'idle' ? 'connecting' : s}`)} · ${n}`,
          });
          break;
        case 'unauthorized': {
          const secs = Math.round((service.retryInMs ?? 30_000) / 1000);
          node.status({ fill: 'red', shape: 'ring', text: t('status.unauthorized', { s: secs }) });
          break;
        }
        case 'unreachable':
          node.status({ fill: 'red', shape: 'ring', text: `${t('status.unreachable')} · ${n}` });
          break;
        case 'closed':
          node.status({});
          break;
        default:
          node.status({
            fill: 'red',
            shape: 'dot',
            text: service.lastError?.message ?? trackerError?.message ?? 'error',
          });
      }
    };
    // Live-count changes come per call: refresh the status at most every 250 ms.
    let statusTimer: NodeJS.Timeout | undefined;
    const statusSoon = (): void => {
      if (statusTimer || closing) return;
      statusTimer = setTimeout(() => {
        statusTimer = undefined;
        status();
      }, 250);
    };
    const onState = (): void => status();
    service.on('state', onState);
    status();

    const ready: Promise<CallTracker> = service.connect().then((conn) => {
      tracker = new CallTracker(conn, {
        endpointTemplate: template,
        agiContext: config.agiContext || 'ai-dialer-agi',
        defaultTimeoutSec: Number.isFinite(timeout) && timeout > 0 ? timeout : 30,
        defaultCallerId: config.callerId || undefined,
      });
      tracker.on('count', statusSoon);
      tracker.on('warning', (w: string) => node.warn(w));
      tracker.on('outcome', (o: CallOutcome) => deliver(o));
      status();
      return tracker;
    });
    ready.catch((err: Error) => {
      trackerError = err;
      node.error(err.message);
      status();
    });

    function deliver(o: CallOutcome): void {
      const key = String(o.callId);
      const orig = pendingMsgs.get(key);
      const final = o.outcome !== 'answered';
      if (final) pendingMsgs.delete(key);
      const msg = (orig ? RED.util.cloneMessage(orig) : {}) as CallMsg;
      const { token: _secret, ...call } = msg.call ?? { id: o.callId, phone: o.phone }; // the AGI token stays here
      msg.call = {
        ...call,
        outcome: o.outcome,
        channelId: o.channelId,
        ringMs: o.ringMs,
        talkMs: o.talkMs,
      };
      if (o.channel) msg.call.channel = o.channel;
      if (o.dialStatus) msg.call.dialStatus = o.dialStatus;
      if (o.hangupCause !== undefined) {
        msg.call.hangupCause = o.hangupCause;
        msg.call.hangupCauseText = o.hangupCauseText;
      }
      if (o.reason) msg.call.reason = o.reason;
      if (o.error)
        msg.error = {
          message: o.error.message,
          source: { id: node.id, type: 'ari-originate', name: node.name },
          code: o.error.code,
          kind: o.error.kind,
          status: o.error.status,
        } as unknown as NodeMessage['error'];
      msg.topic = final ? 'outcome' : 'answered';
      (msg as Record<string, unknown>).event = final ? 'call_ended' : 'call_answered';
      if (final) node.send([null, msg]);
      else node.send([msg, null]);
    }

    node.on('input', (msg: CallMsg, _send, done) => {
      if (msg.topic === 'cancel') {
        const id = msg.call?.id;
        ready.then(
          (tr) => {
            const n = tr.cancel(id === undefined || id === null || id === '' ? undefined : id);
            if (id !== undefined && n === 0) node.debug?.(`cancel: call ${String(id)} is not live`);
            done();
          },
          (err: Error) => done(err),
        );
        return;
      }
      const call = msg.call;
      if (!call || typeof call !== 'object' || call.id === undefined || call.id === null || call.id === '') {
        done(new Error(t('error.noCall')));
        return;
      }
      const c = call as Record<string, unknown>;
      const contact = (c.contact ?? {}) as { fields?: Record<string, unknown>; id?: number };
      const amdWanted =
        config.amd === 'always'
          ? true
          : config.amd === 'never'
            ? false
            : c.amd === true ||
              c.amdEnabled === true ||
              (typeof c.amd === 'object' && c.amd !== null && (c.amd as { requested?: boolean }).requested === true);
      const req: CallRequest = {
        id: call.id,
        phone: String(call.phone ?? ''),
        callerId: typeof c.callerId === 'string' ? c.callerId : undefined,
        campaignId: (c.campaignId as number | string | null | undefined) ?? undefined,
        contactId: (c.contactId as number | string | null | undefined) ?? contact.id ?? undefined,
        fields: contact.fields,
        amd: amdWanted,
        amdNotSure: config.amdNotSure === 'machine' ? 'machine' : 'human',
        timeoutSec: typeof c.ringTimeout === 'number' && c.ringTimeout > 0 ? c.ringTimeout : undefined,
        token: typeof c.token === 'string' ? c.token : undefined,
      };
      ready.then(
        (tr) => {
          const key = String(call.id);
          if (tr.isLive(key)) {
            done(new Error(t('error.duplicate', { id: key })));
            return;
          }
          pendingMsgs.set(key, msg);
          let failure: Error | undefined;
          const onOutcome = (o: CallOutcome): void => {
            if (String(o.callId) === key && o.outcome === 'failed' && o.error) failure = o.error;
          };
          tr.on('outcome', onOutcome);
          tr.originate(req).then(
            (r) => {
              tr.off('outcome', onOutcome);
              done(r.accepted ? undefined : failure);
            },
            (err: Error) => {
              tr.off('outcome', onOutcome);
              pendingMsgs.delete(key);
              done(err);
            },
          );
        },
        (err: Error) => {
          // The connection can never be made (not configured): the call still ends, as failed.
          const m = RED.util.cloneMessage(msg) as CallMsg;
          m.call = { ...call, outcome: 'failed', reason: errorMessage(err), ringMs: 0, talkMs: 0 };
          m.topic = 'outcome';
          (m as Record<string, unknown>).event = 'call_ended';
          node.send([null, m]);
          done(err);
        },
      );
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      closing = true;
      unprobe();
      if (statusTimer) clearTimeout(statusTimer);
      service.off('state', onState);
      const t = tracker;
      pendingMsgs.clear();
      node.status({});
      if (!t) return done();
      t.close({ hangup: true })
        .catch(() => undefined)
        .finally(done);
    });
  }
  RED.nodes.registerType('ari-originate', AriOriginate as unknown as Parameters<NodeAPI['nodes']['registerType']>[1]);
};
