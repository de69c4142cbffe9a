/**
 * campaign-queue: runs campaigns (CampaignManager) over the store. Output 1: one msg per call to
 * place; output 2: campaign events and progress. Input: start/stop/pause/resume/status commands,
 * call outcomes, and the reply actions that concern the campaign (schedule_callback, add_to_dnc).
 * Supervisor commands from the control bus and the node's auto-start list drive it too.
 */
import os from 'os';
import { recordingsDir } from '../agi/recording';
import { loadGateFor } from '../campaign/load-gate';
import { CampaignManager, type CampaignEvent, type PlaceCall, type RunnerStatus } from '../campaign/manager';
import { registerCampaignManager, unregisterCampaignManager } from '../campaign/control';
import { controlBus, type CampaignControl } from '../events/control-bus';
import { requestCallback } from '../store/campaigns';
import type { Db } from '../store/db';
import { errorMessage } from '../util/errors';
import { parseNumber } from '../util/config';
import type { Translate } from '../util/i18n';
import type { DialerMsg, MsgCall } from '../types/msg';
import type { AsteriskView } from '../campaign/reconcile';
import { status, statusOf, type NodeView, type StatusLike } from './view';

export interface CampaignQueueConfig {
  worker?: string;
  tickMs?: string;
  globalCps?: string;
  staleAfter?: string;
  dncScope?: 'global' | 'campaign';
  autoStart?: string;
}

export interface CampaignQueueDeps {
  getDb(): Promise<Db>;
  /** Send `msg` on output `port` (0: a call to place, 1: a campaign event). */
  send(port: 0 | 1, msg: DialerMsg): void;
  /** The node's id: the default worker name is `<host>:<id>`. */
  nodeId: string;
  /**
   * Asterisk (ARI) to reconcile open calls against (take-over, every ARI (re)connection, periodically),
   * when one is set: src/campaign/reconcile.ts `ariView`.
   */
  asterisk?: AsteriskView & { close(): void };
  /** The runtime's environment (RECORDINGS_DIR / DATA_DIR for the recording retention sweep). */
  env?: NodeJS.ProcessEnv;
}

export const CAMPAIGN_ACTIONS = ['start', 'stop', 'pause', 'resume', 'status'] as const;
export type CampaignAction = (typeof CAMPAIGN_ACTIONS)[number];

/** A positive setting, else undefined (the manager's default). */
const positive = (v: unknown): number | undefined => {
  const n = parseNumber(v);
  return n !== undefined && n > 0 ? n : undefined;
};

/** The type of msg.reply.action (a string or `{type}`). */
export function replyActionType(msg: DialerMsg): string | undefined {
  const action = msg.reply?.action as { type?: string } | string | undefined;
  return typeof action === 'string' ? action : action?.type;
}

/** The campaign id of a command msg: msg.campaignId, msg.payload.campaignId or msg.payload. */
export function commandCampaignId(msg: DialerMsg): unknown {
  const p = msg.payload as Record<string, unknown> | number | string | undefined;
  return msg.campaignId ?? (p && typeof p === 'object' ? p.campaignId : p);
}

/** The status line for the runners' states. */
export function queueStatus(
  runs: RunnerStatus[] | { state: string; inFlight: { size: number }; lastError?: string }[],
  progress: (RunnerStatus['progress'] & { state?: string }) | undefined,
  t: Translate,
): StatusLike {
  const running = runs.filter((r) => r.state === 'running');
  const inFlight = runs.reduce((a, r) => a + (r.inFlight as { size: number }).size, 0);
  if (!runs.length) return status.idle(t('status.idle'));
  const err = runs.find((r) => r.lastError)?.lastError;
  if (err) return statusOf('red', 'dot', String(err));
  const text = progress
    ? t('status.progress', {
        state: progress.state ?? '',
        percent: progress.percent,
        active: inFlight,
        queued: progress.queued,
        done: progress.completed,
        failed: progress.failed,
      })
    : t('status.running', { n: running.length, active: inFlight });
  return running.length ? status.ok(text) : status.warn(text);
}

export class CampaignQueueController {
  private readonly ready: Promise<CampaignManager>;
  manager?: CampaignManager;
  private closing = false;
  private lastProgress?: RunnerStatus['progress'] & { state?: string };
  private readonly onBus = (c: CampaignControl): void => this.command(c.action, c.campaignId);

  constructor(
    cfg: CampaignQueueConfig,
    private readonly view: NodeView,
    private readonly t: Translate,
    private readonly deps: CampaignQueueDeps,
  ) {
    this.ready = deps.getDb().then((db) => this.start(db, cfg));
    this.ready.catch((err: Error) => {
      if (this.closing) return;
      view.status(status.error(t('status.storeError')));
      view.error(t('error.store', { message: errorMessage(err) }));
    });
    // supervisor commands over MQTT (validated by the bus node) reach every deployed queue
    controlBus.on('campaign', this.onBus);
    for (const id of String(cfg.autoStart ?? '')
      .split(/[\s,]+/)
      .filter(Boolean))
      this.command('start', id);
  }

  private start(db: Db, cfg: CampaignQueueConfig): CampaignManager {
    const m = new CampaignManager({
      db,
      // WORKER_NAME tells apart runtimes on one host (same flow, same node ids): a lease of the same worker
      // name is taken for this runtime's previous process
      worker: (cfg.worker || '').trim() || `${process.env.WORKER_NAME?.trim() || os.hostname()}:${this.deps.nodeId}`,
      tickMs: positive(cfg.tickMs),
      globalCps: positive(cfg.globalCps),
      dncScope: cfg.dncScope === 'campaign' ? 'campaign' : 'global',
      reconcile: { staleAfterMs: (positive(cfg.staleAfter) ?? 900) * 1000 },
      asterisk: this.deps.asterisk,
      // running campaigns nobody holds are picked up on start, on deploy and periodically
      autoPickup: true,
      // whole-call recordings past their campaign's retention are deleted (src/calls/call-recordings.ts)
      recordingsDir: recordingsDir(undefined, this.deps.env ?? process.env),
      // live calls first: new calls wait while the runtime is busy (DIAL_HOLD_LAG_MS, 0: off)
      loadGate: loadGateFor(db, this.deps.env ?? process.env),
    });
    m.on('pickup', (id: number) => this.view.log(this.t('log.pickup', { id })));
    m.on('reconciled', (r: { why: string; closed: unknown[]; hungUp: unknown[] }) =>
      this.view.log(this.t('log.reconciled', { why: r.why, closed: r.closed.length, hungUp: r.hungUp.length })),
    );
    m.on('call', (call: PlaceCall) => {
      if (!this.closing) this.deps.send(0, { topic: 'call', call: call as unknown as MsgCall, payload: call.phone });
    });
    m.on('event', (e: CampaignEvent) => this.onEvent(e));
    m.on('warn', (err: Error) => {
      this.view.warn(err.message);
      this.showStatus();
    });
    m.on('completed', (id: number) => {
      this.view.log(this.t('log.completed', { id }));
      this.showStatus();
    });
    if (this.closing) {
      void m.close();
      throw new Error('closed');
    }
    this.manager = m;
    registerCampaignManager(m);
    this.showStatus();
    return m;
  }

  private onEvent(e: CampaignEvent): void {
    if (this.closing) return;
    const msg: DialerMsg = { topic: e.type, event: e.type, campaignId: e.campaignId };
    if (e.call) msg.call = e.call;
    if (e.progress) {
      msg.progress = e.progress;
      msg.payload = e.progress;
      this.lastProgress = e.progress;
    }
    this.deps.send(1, msg);
    this.showStatus();
  }

  private showStatus(): void {
    const m = this.manager;
    if (this.closing || !m) return;
    const runs = m
      .campaigns()
      .map((id) => m.runnerOf(id)!)
      .filter(Boolean);
    this.view.status(queueStatus(runs as unknown as RunnerStatus[], this.lastProgress, this.t));
  }

  /** A campaign command; the runner's status after it. */
  async control(action: string, id: unknown): Promise<RunnerStatus> {
    const m = await this.ready;
    switch (action) {
      case 'start':
        return m.start(id);
      case 'stop':
        return m.stop(id);
      case 'pause':
        return m.pause(id);
      case 'resume':
        return m.resume(id);
      default:
        return m.status(id);
    }
  }

  /** A command from the bus or the auto-start list: failures are warnings. */
  private command(action: string, id: unknown): void {
    this.control(action, id)
      .then(() => this.showStatus())
      .catch(
        (err) =>
          !this.closing &&
          this.view.warn(this.t('error.control', { action, id: String(id), message: errorMessage(err) })),
      );
  }

  /** An input msg; returns the msg for output 2 (a `status` command's answer), if any. */
  async handle(msg: DialerMsg): Promise<DialerMsg | undefined> {
    try {
      return await this.dispatch(msg);
    } catch (err) {
      this.showStatus();
      throw err instanceof Error ? err : new Error(String(err));
    }
  }

  private async dispatch(msg: DialerMsg): Promise<DialerMsg | undefined> {
    const topic = typeof msg.topic === 'string' ? msg.topic.trim().toLowerCase() : '';
    if ((CAMPAIGN_ACTIONS as readonly string[]).includes(topic)) {
      const id = commandCampaignId(msg);
      if (id === undefined || id === null || id === '') throw new Error(this.t('error.noCampaign', { topic }));
      const st = await this.control(topic, id);
      this.showStatus();
      if (topic !== 'status') return undefined;
      return {
        topic: 'campaign_progress',
        event: 'campaign_progress',
        campaignId: st.campaignId,
        progress: { ...st.progress, state: st.state },
        payload: st,
      };
    }
    const m = await this.ready;
    const actionType = replyActionType(msg);
    if (actionType === 'schedule_callback' && !(await this.scheduleCallback(m, msg))) return undefined;
    if (actionType === 'add_to_dnc' && !(await this.addToDnc(m, msg))) return undefined;
    const call = msg.call;
    if (call && call.id !== undefined && call.outcome !== undefined) {
      await m.handleOutcome({
        id: call.id,
        outcome: call.outcome,
        reason: call.reason,
        hangupCause: call.hangupCause,
        dialStatus: call.dialStatus,
        campaignId: call.campaignId,
      } as Parameters<CampaignManager['handleOutcome']>[0]);
      return undefined;
    }
    throw new Error(this.t('error.unknownInput'));
  }

  /** The callee asked to be called back: stored on the call; true when the msg carries the outcome too. */
  private async scheduleCallback(m: CampaignManager, msg: DialerMsg): Promise<boolean> {
    const id = Number(msg.call?.id);
    if (!Number.isSafeInteger(id) || id <= 0) throw new Error(this.t('error.callbackNoCall'));
    const a = msg.reply?.action as { at?: string; time?: string };
    const when = await requestCallback(m.db, id, a.at ?? null, a.time ?? null);
    msg.call!.callbackAt = when.toISOString();
    return !!msg.call?.outcome; // else the contact is rescheduled when the call completes
  }

  /** The callee asked not to be called: the number goes on the do-not-call list. */
  private async addToDnc(m: CampaignManager, msg: DialerMsg): Promise<boolean> {
    const phone = msg.call?.phone;
    if (typeof phone !== 'string' || !phone) throw new Error(this.t('error.dncNoPhone'));
    const cid = Number(msg.call?.campaignId);
    await m.addToDnc(phone, { campaignId: Number.isSafeInteger(cid) && cid > 0 ? cid : null });
    return !!msg.call?.outcome; // else the call's own outcome follows later
  }

  async close(): Promise<void> {
    this.closing = true;
    controlBus.off('campaign', this.onBus);
    this.deps.asterisk?.close();
    const m = this.manager;
    if (!m) return;
    unregisterCampaignManager(m);
    await m.close().catch((err) => this.view.warn(errorMessage(err)));
  }
}
