/**
 * ari-originate: msg.call -> an ARI originate, followed to its outcome. Output 1: answered (the
 * call goes on in the AGI dialplan); output 2: the final outcome (busy, no answer, failed, ended
 * with its hangup cause). A msg with topic `cancel` hangs up one call (msg.call.id) or all.
 */
import { CallTracker, agiTargetValue, type CallOutcome, type CallRequest } from '../ari/calls';
import { AriSettingMissing, dialEndpoint, type AriService } from '../ari/service';
import type { ConnectionState } from '../ari/client';
import { registerHealthProbe } from '../health/probes';
import { sessionsByCallId } from '../agi/registry';
import { endPolitelyAndWait } from '../calls/goodbye';
import { errorMessage } from '../util/errors';
import { parseDurationMs } from '../util/config';
import type { Translate } from '../util/i18n';
import type { DialerMsg, MsgCall } from '../types/msg';
import { status, statusOf, throttled, type NodeView, type StatusLike } from './view';

export interface AriOriginateConfig {
  endpoint?: string;
  agiContext?: string;
  timeout?: string;
  callerId?: string;
  amd?: 'msg' | 'always' | 'never';
  amdNotSure?: 'human' | 'machine';
}

export interface AriOriginateHooks {
  /** Send `msg` on output `port` (0: answered, 1: outcome). */
  send(port: 0 | 1, msg: DialerMsg): void;
  /** A deep copy of a msg (Node-RED's cloneMessage). */
  clone(msg: DialerMsg): DialerMsg;
  /** Who the node is, for msg.error.source. */
  source: { id: string; type: string; name?: string };
  debug?(text: string): void;
  /** How long close() waits for the goodbyes of the calls it follows, ms (tests; default POLITE_CLOSE_MS). */
  politeCloseMs?: number;
}

/** The status line for the ARI connection's state and the number of live calls. */
export function originateStatus(
  s: ConnectionState | 'error',
  live: number,
  t: Translate,
  info: { retryInMs?: number; error?: string; missing?: string } = {},
): StatusLike {
  const n = t('status.live', { n: live });
  switch (s) {
    case 'connected':
      return status.ok(`${t('status.connected')} · ${n}`);
    case 'connecting':
    case 'reconnecting':
    case 'idle':
      return status.warn(`${t(`status.${s === 'idle' ? 'connecting' : s}`)} · ${n}`);
    case 'unauthorized':
      return status.error(t('status.unauthorized', { s: Math.round((info.retryInMs ?? 30_000) / 1000) }));
    case 'unreachable':
      return status.error(`${t('status.unreachable')} · ${n}`);
    case 'closed':
      return {};
    default:
      // a setting the connection cannot do without: its name here, how to set it in the log
      if (info.missing) return statusOf('red', 'dot', t('status.notSet', { name: info.missing }));
      return statusOf('red', 'dot', info.error ?? 'error');
  }
}

/** The msg for a call's outcome: the original msg (a copy) with msg.call's outcome fields, topic and event. */
export function outcomeMsg(
  orig: DialerMsg | undefined,
  o: CallOutcome,
  source: AriOriginateHooks['source'],
): DialerMsg {
  const final = o.outcome !== 'answered';
  const msg: DialerMsg = orig ?? {};
  const { token: _secret, ...kept } = msg.call ?? { id: o.callId, phone: o.phone }; // the AGI token stays here
  const call: MsgCall = {
    ...kept,
    outcome: o.outcome,
    channelId: o.channelId,
    ringMs: o.ringMs,
    talkMs: o.talkMs,
  };
  if (o.channel) call.channel = o.channel;
  if (o.dialStatus) call.dialStatus = o.dialStatus;
  if (o.hangupCause !== undefined) {
    call.hangupCause = o.hangupCause;
    call.hangupCauseText = o.hangupCauseText;
  }
  if (o.reason) call.reason = o.reason;
  msg.call = call;
  if (o.error)
    (msg as Record<string, unknown>).error = {
      message: o.error.message,
      source,
      code: o.error.code,
      kind: o.error.kind,
      status: o.error.status,
    };
  msg.topic = final ? 'outcome' : 'answered';
  msg.event = final ? 'call_ended' : 'call_answered';
  return msg;
}

/** The originate request for msg.call (AMD as the node setting says, or as the call asks). */
export function callRequest(call: MsgCall, cfg: AriOriginateConfig): CallRequest {
  const contact = (call.contact ?? {}) as { fields?: Record<string, unknown>; id?: number };
  const amd = call.amd as unknown;
  const amdWanted =
    cfg.amd === 'always'
      ? true
      : cfg.amd === 'never'
        ? false
        : amd === true ||
          call.amdEnabled === true ||
          (typeof amd === 'object' && amd !== null && (amd as { requested?: boolean }).requested === true);
  return {
    id: call.id as string | number,
    phone: String(call.phone ?? ''),
    callerId: typeof call.callerId === 'string' ? call.callerId : undefined,
    campaignId: (call.campaignId as number | string | null | undefined) ?? undefined,
    contactId: (call.contactId as number | string | null | undefined) ?? contact.id ?? undefined,
    fields: contact.fields,
    amd: amdWanted,
    amdNotSure: cfg.amdNotSure === 'machine' ? 'machine' : 'human',
    amdParams: typeof call.amdParams === 'string' ? call.amdParams : undefined,
    record: call.record === true,
    timeoutSec: typeof call.ringTimeout === 'number' && call.ringTimeout > 0 ? call.ringTimeout : undefined,
    token: typeof call.token === 'string' ? call.token : undefined,
  };
}

/** The setting named by a "cannot connect without it" error (ARI_URL, ARI username...), if it is one. */
function missingSetting(err: Error | undefined): string | undefined {
  return err instanceof AriSettingMissing ? err.setting : undefined;
}

const hasId = (id: unknown): boolean => id !== undefined && id !== null && id !== '';

export class AriOriginateController {
  private readonly pending = new Map<string, DialerMsg>();
  private readonly ready: Promise<CallTracker>;
  private tracker?: CallTracker;
  private trackerError?: Error;
  private closing = false;
  private readonly unprobe: () => void;
  private readonly statusSoon = throttled(() => this.showStatus());
  private readonly onState = (): void => this.showStatus();

  constructor(
    private readonly cfg: AriOriginateConfig,
    readonly service: AriService,
    private view: NodeView,
    private readonly t: Translate,
    private hooks: AriOriginateHooks,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.unprobe = registerHealthProbe(`ariCalls:${hooks.source.id}`, () => this.tracker?.live ?? 0);
    service.on('state', this.onState);
    this.showStatus();
    this.ready = service.connect().then((conn) => {
      const tr = new CallTracker(conn, {
        endpointTemplate: dialEndpoint(cfg.endpoint, env),
        agiContext: cfg.agiContext || 'ai-dialer-agi',
        defaultTimeoutSec: parseDurationMs(cfg.timeout, 30_000) / 1000,
        defaultCallerId: cfg.callerId || undefined,
        agiTarget: agiTargetValue(env.AGI_ADVERTISE, env.AGI_PORT), // a bare host takes the FastAGI port
      });
      this.tracker = tr;
      tr.on('count', this.statusSoon);
      tr.on('warning', (w: string) => this.view.warn(w));
      tr.on('outcome', (o: CallOutcome) => this.deliver(o));
      this.showStatus();
      return tr;
    });
    this.ready.catch((err: Error) => {
      this.trackerError = err;
      this.view.error(err.message);
      this.showStatus();
    });
  }

  /**
   * A redeploy: the node's new instance takes over this controller (the calls it follows go on; their
   * outcomes leave through the new instance).
   */
  attach(view: NodeView, hooks: AriOriginateHooks): void {
    this.view = view;
    this.hooks = hooks;
    this.showStatus();
  }

  private showStatus(): void {
    if (this.closing) return;
    this.view.status(
      originateStatus(this.service.state as ConnectionState | 'error', this.tracker?.live ?? 0, this.t, {
        retryInMs: this.service.retryInMs,
        error: this.service.lastError?.message ?? this.trackerError?.message,
        missing: missingSetting(this.service.lastError ?? this.trackerError),
      }),
    );
  }

  private deliver(o: CallOutcome): void {
    // closing: the calls' goodbyes are waited for, their outcomes no longer sent (the node is going;
    // the campaign queue records them, as it did those hung up at once)
    if (this.closing) return;
    const key = String(o.callId);
    const orig = this.pending.get(key);
    const final = o.outcome !== 'answered';
    if (final) this.pending.delete(key);
    const msg = outcomeMsg(orig ? this.hooks.clone(orig) : undefined, o, this.hooks.source);
    this.hooks.send(final ? 1 : 0, msg);
  }

  /** Originate msg.call (or cancel, for topic `cancel`); resolves when ARI accepted the originate. */
  async handle(msg: DialerMsg): Promise<void> {
    if (msg.topic === 'cancel') return this.cancel(msg.call?.id);
    const call = msg.call;
    if (!call || typeof call !== 'object' || !hasId(call.id)) throw new Error(this.t('error.noCall'));
    const req = callRequest(call, this.cfg);
    let tr: CallTracker;
    try {
      tr = await this.ready;
      // closed while the connection was being made (a Deploy, a stop): nothing is dialed from a node that is gone
      if (this.closing) throw new Error(this.t('error.closed', { id: String(call.id) }));
    } catch (err) {
      // The connection can never be made (not configured), or the node closed: the call still ends, as failed.
      const m = this.hooks.clone(msg);
      m.call = { ...call, outcome: 'failed', reason: errorMessage(err), ringMs: 0, talkMs: 0 };
      m.topic = 'outcome';
      m.event = 'call_ended';
      this.hooks.send(1, m);
      throw err;
    }
    const key = String(call.id);
    if (tr.isLive(key)) throw new Error(this.t('error.duplicate', { id: key }));
    this.pending.set(key, msg);
    let failure: Error | undefined;
    const onOutcome = (o: CallOutcome): void => {
      if (String(o.callId) === key && o.outcome === 'failed' && o.error) failure = o.error;
    };
    tr.on('outcome', onOutcome);
    try {
      const r = await tr.originate(req);
      if (!r.accepted && failure) throw failure;
    } catch (err) {
      if (err !== failure) this.pending.delete(key);
      throw err;
    } finally {
      tr.off('outcome', onOutcome);
    }
  }

  private async cancel(id: unknown): Promise<void> {
    const tr = await this.ready;
    const n = tr.cancel(hasId(id) ? (id as string | number) : undefined);
    if (hasId(id) && n === 0) this.hooks.debug?.(`cancel: call ${String(id)} is not live`);
  }

  async close(): Promise<void> {
    this.closing = true;
    this.unprobe();
    this.statusSoon.cancel();
    this.service.off('state', this.onState);
    this.pending.clear();
    this.view.status({});
    const tr = this.tracker;
    if (!tr) {
      // closed before the connection was ready: the tracker made then is closed at once (no call was placed)
      void this.ready.then(
        (late) => late.close({ hangup: true }),
        () => undefined,
      );
      return;
    }
    // the calls it follows are hung up: their conversations hear their goodbye first (a goodbye already
    // under way, e.g. fastagi-in's close or a drain ended them, is heard to its end), as fastagi-in does
    const sessions = tr.liveCallIds().flatMap((id) => sessionsByCallId(id));
    await endPolitelyAndWait(sessions, 'the ari-originate node was redeployed', this.hooks.politeCloseMs);
    await tr.close({ hangup: true }).catch(() => undefined);
  }
}
