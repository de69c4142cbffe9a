/**
 * The campaign queue engine (no Node-RED here). One `CampaignManager` per worker (a campaign-queue
 * node); it runs any number of campaigns, each through a `CampaignRunner` that:
 *  - keeps at most `max_concurrent` calls in flight: per worker here, and per campaign across every
 *    runtime inside claim_contacts (slots released on every outcome, including originate failures),
 *  - paces with database token buckets: the campaign's calls per second and a global cap shared by
 *    every worker on the database (env GLOBAL_CPS),
 *  - claims eligible contacts in batches through `claimContacts` (all compliance in SQL),
 *  - emits `call` (one per call to place) and `event` (call_started, call_ended, campaign_progress).
 * Campaign status lives in the database, so a pause in one runtime pauses the claims of all.
 */
import { EventEmitter } from 'events';
import type { Db } from '../store/db';
import { claimContacts, type ClaimedContact } from '../store/claim';
import {
  addToDnc,
  campaignHasWork,
  campaignProgress,
  getCampaign,
  parseCampaignId,
  reconcileOpenCalls,
  recordOutcome,
  releaseClaims,
  setCampaignStatus,
  validateCampaignForStart,
  type CampaignProgress,
  type CampaignRow,
  type OutcomeResult,
  type ReconcileOptions,
} from '../store/campaigns';
import { campaignBucket, ensureBuckets, GLOBAL_BUCKET, refundTokens, takeTokens } from '../store/pacing';
import { DialerError, errorMessage } from '../util/errors';
import { newCallToken, storeCallTokens } from '../agi/call-token';

/** msg.call for a call to place (docs/reference/msg.md). */
export interface PlaceCall {
  id: number;
  phone: string;
  callerId: string;
  campaignId: number;
  contactId: number;
  contact: { id: number; name: string | null; phone: string; timezone: string; fields: Record<string, unknown> };
  attempt: number;
  amdEnabled: boolean;
  /** The call's FastAGI token (CALL_TOKEN at originate; its hash is in the call row). Never in events. */
  token?: string;
}

export interface CampaignEvent {
  type: 'call_started' | 'call_ended' | 'campaign_progress';
  campaignId: number;
  call?: Record<string, unknown>;
  progress?: CampaignProgress;
}

export interface ManagerOptions {
  db: Db;
  /** Worker name stored on claims (unique per runtime; used to reconcile after a restart). */
  worker: string;
  /** Tick of the dial loop in ms (default 50). */
  tickMs?: number;
  /** Global calls-per-second cap shared by every worker on the database (default env GLOBAL_CPS; none when unset). */
  globalCps?: number;
  /** Poll interval while nothing is due (default 1000 ms). */
  idleMs?: number;
  /** Most contacts claimed per statement (default 50). */
  maxBatch?: number;
  /** Minimum ms between two campaign_progress events of a campaign (default 500). */
  progressIntervalMs?: number;
  /** Reload the campaign's settings this often (default 5000 ms). */
  settingsRefreshMs?: number;
  /** Crash reconciliation on start (see reconcileOpenCalls). */
  reconcile?: Omit<ReconcileOptions, 'campaignId' | 'worker'>;
  /** Where add_to_dnc puts the number: the global list (default) or the campaign's own. */
  dncScope?: 'global' | 'campaign';
  /** Override the campaign's max_concurrent for this worker. */
  maxConcurrent?: number;
  /** Reconcile open calls of running campaigns this often (default 5 min; 0: only on start). */
  reconcileEveryMs?: number;
  /** Retry interval for outcomes the store could not take (default 2000 ms). */
  retryMs?: number;
}

export interface RunnerStatus {
  campaignId: number;
  state: 'running' | 'paused' | 'stopped' | 'completed';
  inFlight: number;
  maxConcurrent: number;
  callsPerSecond: number;
  placed: number;
  dncSkipped: number;
  progress?: CampaignProgress & { state?: string };
  lastError?: string;
}

/** The moment this process started: open calls of this worker older than that are orphans. */
const PROCESS_STARTED = new Date(Date.now() - Math.round(process.uptime() * 1000));

function envGlobalCps(): number | undefined {
  const v = Number(process.env.GLOBAL_CPS);
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

export class CampaignRunner {
  state: RunnerStatus['state'] = 'running';
  readonly inFlight = new Set<number>();
  placed = 0;
  dncSkipped = 0;
  lastError?: string;
  progress?: CampaignProgress;
  private campaign: CampaignRow;
  private timer?: NodeJS.Timeout;
  private busy?: Promise<void>;
  private settingsAt = Date.now();
  private progressTimer?: NodeJS.Timeout;
  private progressAt = 0;
  private progressDirty = true;
  private progressBusy = false;
  private progressCostMs = 0;
  private watchTimer?: NodeJS.Timeout;
  private watching = false;
  private closed = false;

  constructor(
    private readonly m: CampaignManager,
    campaign: CampaignRow,
  ) {
    this.campaign = campaign;
  }

  get id(): number {
    return this.campaign.id;
  }
  get maxConcurrent(): number {
    return this.m.opts.maxConcurrent ?? this.campaign.max_concurrent;
  }
  get bucketKeys(): string[] {
    return this.m.globalCps ? [campaignBucket(this.id), GLOBAL_BUCKET] : [campaignBucket(this.id)];
  }

  async prepare(): Promise<void> {
    await ensureBuckets(this.m.db, [{ key: campaignBucket(this.id), rate: this.campaign.calls_per_second }]);
  }

  status(): RunnerStatus {
    return {
      campaignId: this.id,
      state: this.state,
      inFlight: this.inFlight.size,
      maxConcurrent: this.maxConcurrent,
      callsPerSecond: this.campaign.calls_per_second,
      placed: this.placed,
      dncSkipped: this.dncSkipped,
      progress: this.progress,
      lastError: this.lastError,
    };
  }

  /** Ask for a dial pass soon (after an outcome freed a slot, on resume). */
  kick(delayMs = 0): void {
    if (this.closed || this.state !== 'running') return;
    if (this.timer) {
      if (delayMs > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.busy) return void this.busy.then(() => this.kick());
      this.busy = this.pass().finally(() => (this.busy = undefined));
    }, delayMs);
  }

  private async pass(): Promise<void> {
    if (this.closed || this.state !== 'running') return;
    const db = this.m.db;
    let next = this.m.tickMs;
    try {
      if (Date.now() - this.settingsAt > this.m.settingsRefreshMs) await this.refreshSettings();
      if (this.state !== 'running') return;
      const free = this.maxConcurrent - this.inFlight.size;
      if (free <= 0) return; // an outcome kicks us
      const want = Math.min(free, this.m.maxBatch);
      const keys = this.bucketKeys;
      const t = await takeTokens(db, keys, want);
      if (t.granted <= 0) {
        next = Math.max(1, Math.min(this.m.tickMs * 4, Math.ceil(t.waitSeconds * 1000)));
        return;
      }
      const r = await claimContacts(db, { campaignId: this.id, limit: t.granted, worker: this.m.worker });
      if (r.claimed.length < t.granted) await refundTokens(db, keys, t.granted - r.claimed.length);
      if (r.dncSkipped) {
        this.dncSkipped += r.dncSkipped;
        this.progressDirty = true;
      }
      if (this.closed || this.state !== 'running') {
        // paused, stopped or closed while the claim ran: these were never sent
        await releaseClaims(
          db,
          r.claimed.map((c) => c.callId),
        );
        return;
      }
      // Per-call AGI tokens, hashed into the call rows before anyone can dial (src/agi/call-token.ts).
      const tokens = r.claimed.map((c) => ({ callId: c.callId, token: newCallToken() }));
      await storeCallTokens(db, tokens).catch((err: unknown) =>
        // ari-originate still checks them in this process; only another runtime could not
        this.m.emit('warn', new DialerError('campaign_call_tokens', `call tokens not stored: ${errorMessage(err)}`)),
      );
      r.claimed.forEach((c, i) => this.send(c, tokens[i].token));
      if (r.claimed.length) {
        this.progressDirty = true;
        this.lastError = undefined;
        next = 0; // more may be due right away
      } else if (r.dncSkipped) {
        next = 0;
      } else {
        next = this.m.idleMs; // nothing due now (window closed, retries later): poll slowly; outcomes kick
        if (this.inFlight.size === 0 && !(await campaignHasWork(db, this.id))) {
          await this.complete();
          return;
        }
      }
    } catch (err) {
      this.lastError = errorMessage(err);
      this.m.emit(
        'warn',
        new DialerError('campaign_dial_pass', `campaign ${this.id}: ${this.lastError}`, { cause: err }),
      );
      next = Math.max(1000, this.m.tickMs);
    } finally {
      this.scheduleProgress();
      if (!this.closed && this.state === 'running' && this.inFlight.size < this.maxConcurrent) this.kick(next);
    }
  }

  private send(c: ClaimedContact, token: string): void {
    this.inFlight.add(c.callId);
    this.placed++;
    const call: PlaceCall = {
      id: c.callId,
      phone: c.phone,
      callerId: c.callerId,
      campaignId: c.campaignId,
      contactId: c.contactId,
      contact: { id: c.contactId, name: c.name, phone: c.phone, timezone: c.effectiveTimezone, fields: c.fields ?? {} },
      attempt: c.attempt,
      amdEnabled: !!c.amdEnabled,
    };
    this.m.emit('call', { ...call, token });
    this.m.emit('event', { type: 'call_started', campaignId: this.id, call: { ...call } } satisfies CampaignEvent);
  }

  private async refreshSettings(): Promise<void> {
    this.settingsAt = Date.now();
    const c = await getCampaign(this.m.db, this.id);
    if (!c) {
      this.state = 'stopped';
      this.lastError = `campaign ${this.id} was deleted`;
      return;
    }
    const rateChanged = c.calls_per_second !== this.campaign.calls_per_second;
    this.campaign = c;
    if (rateChanged) await this.prepare();
    // another runtime (or the API) changed the status in the database
    if (c.status === 'paused' || c.status === 'stopped' || c.status === 'completed') this.setState(c.status);
  }

  private async complete(): Promise<void> {
    await setCampaignStatus(this.m.db, this.id, 'completed');
    this.setState('completed');
    this.progressDirty = true;
    this.m.emit('completed', this.id);
  }

  /** An outcome for one of our calls arrived: free the slot. */
  release(callId: number): boolean {
    const had = this.inFlight.delete(callId);
    this.progressDirty = true;
    if (had) this.kick();
    this.scheduleProgress();
    return had;
  }

  markDirty(): void {
    this.progressDirty = true;
    this.scheduleProgress();
  }

  scheduleProgress(force = false): void {
    if (this.closed || this.progressTimer || (!this.progressDirty && !force)) return;
    // at most every progressIntervalMs, and never more than ~10% of the time spent counting (big campaigns)
    const wait = Math.max(
      0,
      this.progressAt + Math.max(this.m.progressIntervalMs, this.progressCostMs * 10) - Date.now(),
    );
    this.progressTimer = setTimeout(() => {
      this.progressTimer = undefined;
      void this.emitProgress();
    }, wait);
  }

  async emitProgress(): Promise<CampaignProgress | undefined> {
    if (this.progressBusy) return this.progress;
    this.progressBusy = true;
    this.progressDirty = false;
    this.progressAt = Date.now();
    try {
      const t0 = Date.now();
      const p = { ...(await campaignProgress(this.m.db, this.id)), state: this.state };
      this.progressCostMs = Date.now() - t0;
      this.progress = p;
      if (!this.closed)
        this.m.emit('event', { type: 'campaign_progress', campaignId: this.id, progress: p } satisfies CampaignEvent);
      return p;
    } catch (err) {
      this.m.emit(
        'warn',
        new DialerError('campaign_progress', `campaign ${this.id}: progress: ${errorMessage(err)}`, { cause: err }),
      );
      return this.progress;
    } finally {
      this.progressBusy = false;
      if (this.progressDirty) this.scheduleProgress();
    }
  }

  setState(s: RunnerStatus['state']): void {
    this.state = s;
    if (s === 'running') {
      if (this.watchTimer) clearInterval(this.watchTimer);
      this.watchTimer = undefined;
      this.kick();
    } else {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.watch();
    }
    this.markDirty();
  }

  /** While not running here, follow the database: another runtime (or the API) may start it again. */
  private watch(): void {
    if (this.closed || this.watchTimer) return;
    this.watchTimer = setInterval(() => {
      if (this.closed || this.state === 'running' || this.watching) return;
      this.watching = true;
      getCampaign(this.m.db, this.id)
        .then(async (c) => {
          if (!c || c.status !== 'running' || this.closed || this.state === 'running') return;
          this.campaign = c;
          await this.prepare();
          this.setState('running');
        })
        .catch(() => undefined)
        .finally(() => (this.watching = false));
    }, this.m.settingsRefreshMs);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.watchTimer) clearInterval(this.watchTimer);
    if (this.progressTimer) clearTimeout(this.progressTimer);
    this.timer = this.progressTimer = undefined;
    await this.busy?.catch(() => undefined);
  }
}

export class CampaignManager extends EventEmitter {
  readonly opts: ManagerOptions;
  readonly db: Db;
  readonly worker: string;
  readonly tickMs: number;
  readonly maxBatch: number;
  readonly idleMs: number;
  readonly progressIntervalMs: number;
  readonly settingsRefreshMs: number;
  readonly globalCps?: number;
  private readonly runners = new Map<number, CampaignRunner>();
  private closed = false;
  private globalReady?: Promise<void>;

  constructor(opts: ManagerOptions) {
    super();
    this.opts = opts;
    this.db = opts.db;
    this.worker = opts.worker;
    this.tickMs = Math.max(1, opts.tickMs ?? 50);
    this.maxBatch = Math.max(1, Math.min(1000, opts.maxBatch ?? 50));
    this.idleMs = Math.max(this.tickMs, opts.idleMs ?? 1000);
    this.progressIntervalMs = Math.max(50, opts.progressIntervalMs ?? 500);
    this.settingsRefreshMs = opts.settingsRefreshMs ?? 5000;
    this.globalCps = opts.globalCps ?? envGlobalCps();
    // a warn with no listener must not crash the runtime
    this.on('warn', () => undefined);
  }

  private ensureGlobal(): Promise<void> {
    if (!this.globalCps) return Promise.resolve();
    this.globalReady ??= ensureBuckets(this.db, [{ key: GLOBAL_BUCKET, rate: this.globalCps }]).catch((err) => {
      this.globalReady = undefined;
      throw err;
    });
    return this.globalReady;
  }

  private live(): void {
    if (this.closed) throw new DialerError('campaign_closed', 'the campaign queue is shut down');
  }

  /** Validate, reconcile what a crash left open, mark running and start dialing. */
  async start(idIn: unknown): Promise<RunnerStatus> {
    this.live();
    const id = parseCampaignId(idIn);
    const c = await validateCampaignForStart(this.db, id);
    await reconcileOpenCalls(this.db, {
      ...this.opts.reconcile,
      campaignId: id,
      worker: this.worker,
      ownBefore: PROCESS_STARTED,
    });
    await this.ensureGlobal();
    await setCampaignStatus(this.db, id, 'running');
    let r = this.runners.get(id);
    if (!r) {
      r = new CampaignRunner(this, { ...c, status: 'running' });
      this.runners.set(id, r);
    }
    await r.prepare();
    r.setState('running');
    this.startReconcileLoop();
    return r.status();
  }

  async pause(idIn: unknown): Promise<RunnerStatus> {
    return this.setStatus(idIn, 'paused');
  }

  async stop(idIn: unknown): Promise<RunnerStatus> {
    return this.setStatus(idIn, 'stopped');
  }

  async resume(idIn: unknown): Promise<RunnerStatus> {
    this.live();
    const id = parseCampaignId(idIn);
    return this.start(id);
  }

  private async setStatus(idIn: unknown, s: 'paused' | 'stopped'): Promise<RunnerStatus> {
    this.live();
    const id = parseCampaignId(idIn);
    const c = await getCampaign(this.db, id);
    if (!c) throw new DialerError('campaign_not_found', `campaign ${id} does not exist`);
    await setCampaignStatus(this.db, id, s);
    let r = this.runners.get(id);
    if (!r) {
      r = new CampaignRunner(this, { ...c, status: s });
      this.runners.set(id, r);
    }
    r.setState(s);
    return r.status();
  }

  /** Status of a campaign as this worker sees it, with fresh progress counters. */
  async status(idIn: unknown): Promise<RunnerStatus> {
    const id = parseCampaignId(idIn);
    const r = this.runners.get(id);
    if (r) {
      // emitProgress returns the last value when a computation is already running, and that is
      // undefined before the first one has finished: then count here
      const progress = (await r.emitProgress()) ?? {
        ...(await campaignProgress(this.db, id)),
        state: r.status().state,
      };
      return { ...r.status(), progress };
    }
    const c = await getCampaign(this.db, id);
    if (!c) throw new DialerError('campaign_not_found', `campaign ${id} does not exist`);
    const progress = await campaignProgress(this.db, id);
    return {
      campaignId: id,
      state: c.status === 'draft' ? 'stopped' : c.status,
      inFlight: 0,
      maxConcurrent: c.max_concurrent,
      callsPerSecond: c.calls_per_second,
      placed: 0,
      dncSkipped: 0,
      progress,
    };
  }

  runnerOf(id: number): CampaignRunner | undefined {
    return this.runners.get(id);
  }

  /** Campaign ids this worker has a runner for. */
  campaigns(): number[] {
    return [...this.runners.keys()];
  }

  /**
   * A call outcome (msg.call from ari-originate or the conversation). Closes the call once, updates
   * the contact (done / retry / failed), frees the slot, and emits call_ended when this closed it.
   */
  async handleOutcome(call: {
    id: unknown;
    outcome?: unknown;
    reason?: unknown;
    hangupCause?: unknown;
    dialStatus?: unknown;
    campaignId?: unknown;
  }): Promise<OutcomeResult> {
    const callId = Number(call.id);
    if (!Number.isSafeInteger(callId) || callId <= 0)
      throw new DialerError('campaign_bad_outcome', `outcome for an invalid call id ${JSON.stringify(call.id)}`);
    const outcome = typeof call.outcome === 'string' && call.outcome ? call.outcome : 'failed';
    const update = {
      callId,
      outcome,
      reason: typeof call.reason === 'string' ? call.reason : null,
      hangupCause:
        Number.isFinite(Number(call.hangupCause)) && call.hangupCause !== null && call.hangupCause !== undefined
          ? Number(call.hangupCause)
          : null,
      dialStatus: typeof call.dialStatus === 'string' ? call.dialStatus : null,
    };
    let res: OutcomeResult;
    try {
      res = await recordOutcome(this.db, update);
    } catch (err) {
      // the store is down: keep the outcome and retry, so no contact stays stuck in a call
      if (outcome !== 'answered') this.queueRetry(update);
      throw new DialerError(
        'campaign_outcome_store',
        `outcome ${outcome} of call ${callId} not stored yet (will retry): ${errorMessage(err)}`,
        { cause: err },
      );
    } finally {
      // the slot is freed even when the store failed: a stuck slot would stall the campaign
      if (outcome !== 'answered') for (const r of this.runners.values()) if (r.release(callId)) break;
    }
    this.announce(res);
    if (outcome === 'answered') {
      // dialing -> active: recount the campaign's progress
      const cid = Number(call.campaignId);
      if (Number.isSafeInteger(cid) && cid > 0) this.runners.get(cid)?.markDirty();
    }
    return res;
  }

  private reconcileTimer?: NodeJS.Timeout;

  /** While campaigns run here, close calls a crashed runtime left open (by age / ARI) every few minutes. */
  private startReconcileLoop(): void {
    const every = this.opts.reconcileEveryMs ?? 5 * 60_000;
    if (this.reconcileTimer || every <= 0) return;
    this.reconcileTimer = setInterval(() => {
      for (const [id, r] of this.runners) {
        if (r.state !== 'running') continue;
        reconcileOpenCalls(this.db, { ...this.opts.reconcile, campaignId: id })
          .then((x) => x.closed.length && r.markDirty())
          .catch((err) =>
            this.emit(
              'warn',
              new DialerError('campaign_reconcile', `campaign ${id}: reconcile: ${errorMessage(err)}`, { cause: err }),
            ),
          );
      }
    }, every);
  }

  private readonly retries = new Map<number, Parameters<typeof recordOutcome>[1]>();
  private retryTimer?: NodeJS.Timeout;

  /** Outcomes waiting for the store (bounded: the oldest is dropped past 10,000; reconciliation covers it). */
  get pendingOutcomes(): number {
    return this.retries.size;
  }

  private queueRetry(u: Parameters<typeof recordOutcome>[1]): void {
    this.retries.set(u.callId, u);
    if (this.retries.size > 10000) this.retries.delete(this.retries.keys().next().value as number);
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => void this.flushRetries(), this.opts.retryMs ?? 2000);
  }

  private async flushRetries(): Promise<void> {
    this.retryTimer = undefined;
    for (const [id, u] of [...this.retries]) {
      if (this.closed) return;
      try {
        const res = await recordOutcome(this.db, u);
        this.retries.delete(id);
        this.announce(res);
      } catch {
        break; // still down
      }
    }
    if (this.retries.size && !this.closed)
      this.retryTimer = setTimeout(() => void this.flushRetries(), this.opts.retryMs ?? 2000);
  }

  private announce(res: OutcomeResult): void {
    const callId = res.call?.id;
    if (res.closed && res.call) {
      const cid = res.call.campaignId;
      if (cid !== null) this.runners.get(cid)?.markDirty();
      this.emit('event', {
        type: 'call_ended',
        campaignId: cid ?? 0,
        call: {
          id: callId,
          campaignId: cid,
          contactId: res.call.contactId,
          phone: res.call.phone,
          callerId: res.call.callerId,
          attempt: res.call.attempt,
          outcome: res.status,
          durationMs: res.call.durationMs ?? 0,
          hangupCause: res.call.hangupCause ?? undefined,
          contactStatus: res.contact?.status,
          nextAttemptAt: res.contact?.nextAttemptAt ? new Date(res.contact.nextAttemptAt).toISOString() : undefined,
        },
      } satisfies CampaignEvent);
    }
  }

  /** The caller asked not to be called again: add the number to the do-not-call list at once. */
  async addToDnc(
    phone: string,
    o: { campaignId?: number | null; reason?: string; source?: string } = {},
  ): Promise<number> {
    const scope = this.opts.dncScope === 'campaign' && o.campaignId ? o.campaignId : null;
    const n = await addToDnc(this.db, phone, {
      campaignId: scope,
      reason: o.reason ?? 'caller asked not to be called',
      source: o.source ?? 'conversation',
    });
    if (o.campaignId) this.runners.get(o.campaignId)?.markDirty();
    return n;
  }

  /** Stop timers; claims in flight that were never sent are released. Calls in progress are left to finish. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    await Promise.all([...this.runners.values()].map((r) => r.close()));
    this.runners.clear();
  }
}
