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
import { randomUUID } from 'crypto';
import type { Db } from '../store/db';
import { claimContacts, type ClaimedContact } from '../store/claim';
import {
  campaignHasWork,
  campaignProgress,
  getCampaign,
  parseCampaignId,
  reconcileOpenCalls,
  releaseClaims,
  setCampaignStatus,
  validateCampaignForStart,
  type CampaignProgress,
  type CampaignRow,
  type OutcomeResult,
  type ReconcileOptions,
} from '../store/campaigns';
import { campaignBucket, ensureBuckets, GLOBAL_BUCKET, refundTokens, takeTokens } from '../store/pacing';
import {
  acquireLease,
  campaignLeases,
  heartbeatLeases,
  leaseInfo,
  leaseTtlMs,
  releaseLease,
  stalledCampaigns,
  type LeaseInfo,
} from '../store/leases';
import { reconcileAgainstAsterisk, type AsteriskView, type OpenCall, type ReconcileReport } from './reconcile';
import { DialerError, errorMessage } from '../util/errors';
import { isStoreUnavailable, outboxFor } from '../store/outbox';
import { storeDnc, writeWaitMs } from '../store/turns';

const waitMs = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
import { takeRefusal } from '../agi/refusals';
import { amdArgs, parseAmdSettings, parseRecordingSettings, settingOr } from './call-settings';
import { setRecordingPath, sweepRecordings } from '../calls/call-recordings';
import { newCallToken, storeCallTokens } from '../agi/call-token';
import { HOLD_MS, type LoadGate } from './load-gate';
import { callCampaign, forgetCallContext, rememberCallContext } from '../llm/context';

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
  /** AMD()'s arguments from the campaign's settings.amd (when AMD is on). */
  amdParams?: string;
  /** Record the whole call (the campaign's settings.recording.enabled). */
  record?: boolean;
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
  /** Unused: outcomes the store could not take are retried by the outbox (src/store/outbox.ts). */
  retryMs?: number;
  /** Asterisk (ARI) to reconcile open calls against (take-over, ARI reconnect, periodic sweep). */
  asterisk?: AsteriskView;
  /** A lease without a heartbeat for this long is expired (default env LEASE_TTL seconds, else 20 s). */
  leaseTtlMs?: number;
  /** Pick up running campaigns nobody holds (on start and every pickupMs). Default false (the node turns it on). */
  autoPickup?: boolean;
  /**
   * Where whole-call recordings are (RECORDINGS_DIR): files of calls older than their campaign's
   * settings.recording.retentionDays are deleted every `recordingSweepMs` (default 1 h). Absent: no sweep.
   */
  recordingsDir?: string;
  recordingSweepMs?: number;
  /** How often to look for stalled campaigns (default half the lease TTL). */
  pickupMs?: number;
  /**
   * Live calls first (src/campaign/load-gate.ts): while it reads the runtime as busy, a dial pass places at
   * most one call and the next comes a little later. Absent: dial at the campaign's pace whatever the load.
   */
  loadGate?: LoadGate;
}

export interface RunnerStatus {
  campaignId: number;
  state: 'running' | 'paused' | 'stopped' | 'completed' | 'stalled' | 'draining';
  /** The live lease holders of the campaign (all runtimes), and the freshest heartbeat's age. */
  owner?: string | null;
  heartbeatAgeMs?: number | null;
  owners?: LeaseInfo['owners'];
  inFlight: number;
  maxConcurrent: number;
  callsPerSecond: number;
  placed: number;
  dncSkipped: number;
  progress?: CampaignProgress & { state?: string };
  lastError?: string;
  /** Dial passes held back because the runtime was busy (live calls first), and why the last one was. */
  heldBack?: number;
  holdReason?: string;
}

/** The moment this process started: open calls of this worker older than that are orphans. */
const PROCESS_STARTED = new Date(Date.now() - Math.round(process.uptime() * 1000));

function envGlobalCps(): number | undefined {
  const v = Number(process.env.GLOBAL_CPS);
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

type RunnerState = 'running' | 'paused' | 'stopped' | 'completed';

export class CampaignRunner {
  state: RunnerState = 'running';
  /** Another runtime took the lease while this one could not renew it: not dialing until it is free again. */
  leaseLost = false;
  readonly inFlight = new Set<number>();
  placed = 0;
  dncSkipped = 0;
  /** Dial passes held back by the load gate, and why the last one was. */
  heldBack = 0;
  holdReason?: string;
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
  /**
   * The last dial pass found room in the campaign's slots and no contact due (all claimed, retries later, window
   * closed): a slot freed by an outcome changes nothing then, so it does not ask for a pass of its own (tokens, a
   * claim of none, a refund) while the idle poll (`idleMs`) is set to look again; the last call's outcome still
   * asks at once (the campaign may be complete). A claim that found every slot full (`room` 0: another runtime's
   * calls, `max_concurrent` lowered) or a pass that did not claim leaves it false: the next outcome looks again at
   * once. At the end of a campaign every call's outcome used to run a claim that found nothing (issue #17).
   */
  private nothingDue = false;

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
  /**
   * The slots this runtime fills: all of them alone; with other runtimes holding the campaign, its share
   * (`max_concurrent` / runtimes, rounded up), so that the one that started first does not refill every slot it
   * frees before the others' idle poll sees it free (they would never get one).
   */
  get ourSlots(): number {
    const owners = this.m.liveOwners(this.id);
    // `concurrency_scope: worker`: the cap is each runtime's own, nothing to share
    const shared = (this.campaign.settings as Record<string, unknown> | null)?.concurrency_scope !== 'worker';
    return owners > 1 && shared ? Math.ceil(this.maxConcurrent / owners) : this.maxConcurrent;
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
      state: this.m.draining && this.state === 'running' ? 'draining' : this.state,
      inFlight: this.inFlight.size,
      maxConcurrent: this.maxConcurrent,
      callsPerSecond: this.campaign.calls_per_second,
      placed: this.placed,
      dncSkipped: this.dncSkipped,
      progress: this.progress,
      lastError: this.lastError,
      ...(this.heldBack ? { heldBack: this.heldBack, holdReason: this.holdReason } : {}),
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
    if (this.closed || this.state !== 'running' || this.m.draining) return;
    const db = this.m.db;
    let next = this.m.tickMs;
    try {
      if (Date.now() - this.settingsAt > this.m.settingsRefreshMs) await this.refreshSettings();
      if (this.state !== 'running') return;
      const free = this.ourSlots - this.inFlight.size;
      if (free <= 0) {
        this.nothingDue = false; // no poll is set now: the next outcome must look
        return; // an outcome kicks us
      }
      // live calls first: a busy runtime places one call this pass (never none) and looks again a little later
      const load = this.m.opts.loadGate?.read();
      if (load?.busy) {
        this.heldBack++;
        this.holdReason = load.reason;
      }
      const want = load?.busy ? 1 : Math.min(free, this.m.maxBatch);
      const keys = this.bucketKeys;
      const t = await takeTokens(db, keys, want);
      if (t.granted <= 0) {
        next = Math.max(1, Math.min(this.m.tickMs * 4, Math.ceil(t.waitSeconds * 1000)));
        return;
      }
      this.m.claiming++;
      let r: Awaited<ReturnType<typeof claimContacts>>;
      try {
        r = await claimContacts(db, { campaignId: this.id, limit: t.granted, worker: this.m.worker });
        for (const c of r.claimed) this.inFlight.add(c.callId); // followed from now (reconcile must not see orphans)
        this.nothingDue = r.claimed.length === 0 && r.room > 0 && !r.dncSkipped;
      } finally {
        this.m.claiming--;
      }
      if (r.claimed.length < t.granted) await refundTokens(db, keys, t.granted - r.claimed.length);
      if (r.dncSkipped) {
        this.dncSkipped += r.dncSkipped;
        this.progressDirty = true;
      }
      if (this.closed || this.state !== 'running' || this.m.draining) {
        // paused, stopped, draining or closed while the claim ran: these were never sent
        for (const c of r.claimed) this.inFlight.delete(c.callId);
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
        next = load?.busy ? HOLD_MS : 0; // more may be due right away
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
      if (!this.closed && !this.m.draining && this.state === 'running' && this.inFlight.size < this.ourSlots)
        this.kick(next);
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
    // the greeting's context, without a read when the answered session comes back here (src/llm/context.ts)
    rememberCallContext(c.callId, {
      contact: { id: c.contactId, name: c.name, phone: c.phone, timezone: c.timezone, fields: c.fields ?? {} },
      campaign: callCampaign(this.campaign),
    });
    const settings = (this.campaign.settings ?? {}) as Record<string, unknown>;
    if (call.amdEnabled) call.amdParams = amdArgs(settingOr(parseAmdSettings, settings.amd));
    if (settingOr(parseRecordingSettings, settings.recording).enabled) {
      call.record = true;
      // the call row names its file (RECORDINGS_DIR/calls/call-<id>.wav) for the API and retention
      setRecordingPath(this.m.db, c.callId).catch((err) =>
        this.m.emit(
          'warn',
          new DialerError('recording_path', `call ${c.callId}: ${errorMessage(err)}`, { cause: err }),
        ),
      );
    }
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
    if (c.status === 'paused' || c.status === 'stopped' || c.status === 'completed') {
      this.setState(c.status);
      await this.m.dropLease(this.id);
    }
  }

  private async complete(): Promise<void> {
    await setCampaignStatus(this.m.db, this.id, 'completed');
    this.setState('completed');
    await this.m.dropLease(this.id);
    this.progressDirty = true;
    this.m.emit('completed', this.id);
  }

  /** An outcome for one of our calls arrived: free the slot (the next pass comes once it is stored: `stored`). */
  release(callId: number): boolean {
    const had = this.inFlight.delete(callId);
    forgetCallContext(callId);
    this.progressDirty = true;
    this.scheduleProgress();
    return had;
  }

  /**
   * The outcome of a call this runner released is stored (or given up): the campaign's slot is free in the
   * database too, so a dial pass now finds it (before, its claim would still count the call). Not while nothing
   * is due and the idle poll is set (see `nothingDue`); the last call's always (the campaign may be complete).
   */
  stored(): void {
    if (!this.nothingDue || this.inFlight.size === 0 || (!this.timer && !this.busy)) this.kick();
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

  setState(s: RunnerState): void {
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
          if (!c || c.status !== 'running' || this.closed || this.state === 'running' || this.m.draining) return;
          // started again elsewhere: join (a lost lease is only taken back once nobody else holds it)
          if (!(await this.m.holdLease(this.id, this.leaseLost ? 'takeover' : 'join'))) return;
          this.leaseLost = false;
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
  readonly leaseTtlMs: number;
  /** This manager object (a lease of the same worker with another instance is a previous process's). */
  readonly instance = randomUUID();
  private readonly startedAt = new Date();
  private readonly runners = new Map<number, CampaignRunner>();
  private closed = false;
  /** Stop claiming (shutdown / redeploy): live calls finish, nothing new is dialed. */
  draining = false;
  private globalReady?: Promise<void>;
  private heartbeatTimer?: NodeJS.Timeout;
  private pickupTimer?: NodeJS.Timeout;
  private recordingTimer?: NodeJS.Timeout;
  private pickupBusy?: Promise<void>;
  private readonly reconciling = new Map<number, Promise<ReconcileReport | undefined>>();

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
    this.leaseTtlMs = Math.max(200, opts.leaseTtlMs ?? leaseTtlMs());
    // a warn with no listener must not crash the runtime
    this.on('warn', () => undefined);
    if (opts.autoPickup) {
      const every = Math.max(50, opts.pickupMs ?? Math.round(this.leaseTtlMs / 2));
      this.pickupTimer = setInterval(() => void this.pickup(), every);
      setImmediate(() => void this.pickup());
    }
    const dir = opts.recordingsDir;
    if (dir) {
      const sweep = (): void =>
        void sweepRecordings(this.db, dir).then(
          (r) => r.deleted && this.emit('recordings', r),
          (err) => this.warn('recordings_sweep', `recording retention sweep failed: ${errorMessage(err)}`, err),
        );
      this.recordingTimer = setInterval(sweep, Math.max(1000, opts.recordingSweepMs ?? 3_600_000));
      this.recordingTimer.unref();
      setImmediate(sweep);
    }
  }

  private warn(code: string, message: string, cause?: unknown): void {
    this.emit('warn', new DialerError(code, message, { cause }));
  }

  /** Take (or keep) this manager's lease on a campaign; false when another runtime holds it (takeover mode). */
  async holdLease(id: number, mode: 'join' | 'takeover'): Promise<boolean> {
    const r = await acquireLease(this.db, {
      campaignId: id,
      owner: this.worker,
      instance: this.instance,
      ttlMs: this.leaseTtlMs,
      mode,
    });
    if (!r.acquired) return false;
    this.owners.set(id, 1 + r.liveOthers.length);
    this.startHeartbeat();
    if (r.deadOwners.length) this.emit('takeover', { campaignId: id, from: r.deadOwners });
    return true;
  }

  /** Give the lease up (paused, stopped, completed, shut down). */
  async dropLease(id: number): Promise<void> {
    await releaseLease(this.db, id, this.worker, this.instance).catch((err) =>
      this.warn('campaign_lease', `campaign ${id}: releasing the lease: ${errorMessage(err)}`, err),
    );
  }

  private startHeartbeat(): void {
    if (this.heartbeatTimer || this.closed) return;
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), Math.max(50, Math.round(this.leaseTtlMs / 3)));
  }

  /** Runtimes holding a live lease on each campaign, this one included (from the lease and every heartbeat). */
  private readonly owners = new Map<number, number>();
  liveOwners(campaignId: number): number {
    return this.owners.get(campaignId) ?? 1;
  }

  private heartbeatBusy = false;
  private async heartbeat(): Promise<void> {
    if (this.heartbeatBusy || this.closed) return;
    this.heartbeatBusy = true;
    try {
      const held = await heartbeatLeases(this.db, this.worker, this.instance, this.leaseTtlMs);
      for (const [id, n] of held) this.owners.set(id, n);
      for (const r of this.runners.values()) {
        if (r.state !== 'running' || held.has(r.id) || this.closed) continue;
        // our lease expired and was removed (this runtime stalled): take it back only if nobody else did
        // a database error here is not a refusal: keep dialing state and try again at the next heartbeat
        // (marking the lease lost on an outage would stop this runtime's own campaign)
        const took = await this.holdLease(r.id, 'takeover').then(
          (ok) => (ok ? 'held' : 'refused'),
          (err: unknown) => (isStoreUnavailable(err) ? 'retry' : 'refused'),
        );
        if (took !== 'refused') continue;
        r.leaseLost = true;
        r.lastError = `campaign ${r.id}: another runtime took the campaign over (this one missed its heartbeats)`;
        r.setState('stopped');
        this.warn('campaign_lease_lost', r.lastError);
      }
    } catch (err) {
      this.warn('campaign_heartbeat', `lease heartbeat failed: ${errorMessage(err)}`, err);
    } finally {
      this.heartbeatBusy = false;
    }
  }

  /** Pick up running campaigns nobody holds (status running, no live lease). Runs on start and periodically. */
  pickup(): Promise<void> {
    if (this.closed || this.draining) return Promise.resolve();
    this.pickupBusy ??= this.pickupOnce().finally(() => (this.pickupBusy = undefined));
    return this.pickupBusy;
  }

  private lastSweep = 0;
  private async pickupOnce(): Promise<void> {
    try {
      const ids = await stalledCampaigns(this.db, {
        owner: this.worker,
        instance: this.instance,
        ttlMs: this.leaseTtlMs,
      });
      for (const id of ids) {
        if (this.closed || this.draining) return;
        const r = this.runners.get(id);
        if (r && r.state === 'running' && !r.leaseLost) continue;
        await this.takeover(id).catch((err) =>
          this.warn('campaign_takeover', `campaign ${id}: take-over failed: ${errorMessage(err)}`, err),
        );
      }
      // the slow sweep: calls of dead co-owners, calls whose outcome was lost
      const every = this.opts.reconcileEveryMs ?? 60_000;
      if (every > 0 && Date.now() - this.lastSweep > every) {
        this.lastSweep = Date.now();
        await this.reconcileAll('periodic check');
      }
    } catch (err) {
      this.warn('campaign_pickup', `looking for stalled campaigns failed: ${errorMessage(err)}`, err);
    }
  }

  /** Take over a running campaign whose owners are gone: lease, reconcile their calls, dial. */
  async takeover(id: number): Promise<RunnerStatus | undefined> {
    this.live();
    if (!(await this.holdLease(id, 'takeover'))) return undefined;
    const c = await getCampaign(this.db, id);
    if (!c || c.status !== 'running') {
      await this.dropLease(id);
      return undefined;
    }
    await this.reconcileCampaign(id, 'take-over of a campaign nobody held');
    await this.ensureGlobal();
    let r = this.runners.get(id);
    if (!r) {
      r = new CampaignRunner(this, c);
      this.runners.set(id, r);
    }
    r.leaseLost = false;
    r.lastError = undefined;
    await r.prepare();
    r.setState('running');
    this.emit('pickup', id);
    return r.status();
  }

  private isMine(callId: number): boolean {
    if (outboxFor(this.db).pendingFor(callId) > 0) return true;
    for (const r of this.runners.values()) if (r.inFlight.has(callId)) return true;
    return false;
  }

  /**
   * Close the campaign's orphan calls: those of owners without a live lease, and this worker's own that
   * no runner of this manager follows (a previous process, a previous deploy). Against Asterisk when
   * there is one; without, the old rules (own calls of a previous process, calls stale for 15 min).
   */
  reconcileCampaign(id: number | null, why: string): Promise<ReconcileReport | undefined> {
    const key = id ?? 0;
    const busy = this.reconciling.get(key);
    if (busy) return busy;
    const p = this.reconcileNow(id, why).finally(() => this.reconciling.delete(key));
    this.reconciling.set(key, p);
    return p;
  }

  private async reconcileNow(id: number | null, why: string): Promise<ReconcileReport | undefined> {
    if (!this.opts.asterisk) {
      if (id === null) return undefined;
      const r = await reconcileOpenCalls(this.db, {
        ...this.opts.reconcile,
        campaignId: id,
        worker: this.worker,
        ownBefore: PROCESS_STARTED,
      });
      return { closed: r.closed.map((x) => ({ id: x, outcome: 'failed' })), adopted: [], hungUp: [], left: [] };
    }
    const liveOwners = new Map<number, Set<string>>();
    const ownersOf = async (cid: number): Promise<Set<string>> => {
      let s = liveOwners.get(cid);
      if (!s) {
        s = new Set((await campaignLeases(this.db, cid, this.leaseTtlMs)).filter((l) => l.live).map((l) => l.owner));
        liveOwners.set(cid, s);
      }
      return s;
    };
    // who is alive, per campaign, before deciding who is an orphan
    const cids =
      id !== null
        ? [id]
        : (
            await this.db.query<{ cid: number }>(
              `select distinct campaign_id as cid from calls where status in ('initiated','ringing','in_progress') and campaign_id is not null`,
            )
          ).rows.map((x) => Number(x.cid));
    for (const cid of cids) await ownersOf(cid);
    const isOrphan = (c: OpenCall): boolean => {
      if (c.campaignId === null) return false;
      const owners = liveOwners.get(c.campaignId) ?? new Set<string>();
      if (c.worker === this.worker) return !this.isMine(c.id) && !this.claimingNow;
      // a call without a worker was not placed by a campaign queue: not ours to judge
      return !!c.worker && !owners.has(c.worker);
    };
    const rep = await reconcileAgainstAsterisk(this.db, this.opts.asterisk, { campaignId: id, isOrphan, why });
    if (rep.error)
      this.warn('campaign_reconcile', `reconcile (${why}): ${rep.error}; calls left open until Asterisk answers`);
    if (rep.adopted.length) {
      for (const callId of rep.adopted) {
        const row = await this.db.query<{ campaign_id: number | null }>('select campaign_id from calls where id = $1', [
          callId,
        ]);
        const cid = row.rows[0]?.campaign_id;
        if (cid) this.runners.get(cid)?.inFlight.add(callId);
      }
    }
    // call_ended for each: dashboards drop the ghost calls
    for (const c of rep.closed) if (c.result) this.announce(c.result);
    if (rep.closed.length) for (const r of this.runners.values()) r.markDirty();
    if (rep.closed.length || rep.hungUp.length) this.emit('reconciled', { campaignId: id, why, ...rep });
    return rep;
  }

  /** Reconcile every running campaign of this manager (after an ARI reconnect, periodically). */
  async reconcileAll(why: string): Promise<void> {
    if (this.closed || !this.opts.asterisk) return;
    await this.reconcileCampaign(null, why).catch((err) =>
      this.warn('campaign_reconcile', `reconcile (${why}): ${errorMessage(err)}`, err),
    );
  }

  /** Asterisk's events connection came back: what happened while we were blind is checked now. */
  onAsteriskReconnect(): void {
    void this.reconcileAll('after reconnecting to Asterisk');
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

  /** Claim passes between the claim and the send (their calls are not in inFlight yet). */
  claiming = 0;
  get claimingNow(): boolean {
    return this.claiming > 0;
  }

  /** Validate, take a lease, reconcile what a crash left open, mark running and start dialing. */
  async start(idIn: unknown): Promise<RunnerStatus> {
    this.live();
    if (this.draining) throw new DialerError('campaign_draining', 'the campaign queue is shutting down (draining)');
    const id = parseCampaignId(idIn);
    const c = await validateCampaignForStart(this.db, id);
    await this.holdLease(id, 'join');
    await this.reconcileCampaign(id, 'start');
    await this.ensureGlobal();
    await setCampaignStatus(this.db, id, 'running');
    let r = this.runners.get(id);
    if (!r) {
      r = new CampaignRunner(this, { ...c, status: 'running' });
      this.runners.set(id, r);
    }
    r.leaseLost = false;
    await r.prepare();
    r.setState('running');
    if (!this.opts.asterisk) this.startReconcileLoop();
    return this.withLease(r.status());
  }

  private async withLease(st: RunnerStatus): Promise<RunnerStatus> {
    try {
      const c = await getCampaign(this.db, st.campaignId);
      const info = await leaseInfo(this.db, st.campaignId, c?.status ?? 'unknown', this.leaseTtlMs);
      const state = info.state === 'stalled' && st.state !== 'draining' ? 'stalled' : st.state;
      return { ...st, state, owner: info.owner, heartbeatAgeMs: info.heartbeatAgeMs, owners: info.owners };
    } catch {
      return st;
    }
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
    await this.dropLease(id);
    return this.withLease(r.status());
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
      return this.withLease({ ...r.status(), progress });
    }
    const c = await getCampaign(this.db, id);
    if (!c) throw new DialerError('campaign_not_found', `campaign ${id} does not exist`);
    const progress = await campaignProgress(this.db, id);
    return this.withLease({
      campaignId: id,
      state: c.status === 'draft' ? 'stopped' : c.status,
      inFlight: 0,
      maxConcurrent: c.max_concurrent,
      callsPerSecond: c.calls_per_second,
      placed: 0,
      dncSkipped: 0,
      progress,
    });
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
    let outcome = typeof call.outcome === 'string' && call.outcome ? call.outcome : 'failed';
    // an answered call whose AGI session was refused (or could not start) had no conversation
    const refused = outcome !== 'answered' && outcome !== 'failed' ? takeRefusal(callId) : undefined;
    if (refused) outcome = 'failed';
    const update = {
      callId,
      outcome,
      reason: refused ?? (typeof call.reason === 'string' ? call.reason : null),
      hangupCause:
        Number.isFinite(Number(call.hangupCause)) && call.hangupCause !== null && call.hangupCause !== undefined
          ? Number(call.hangupCause)
          : null,
      dialStatus: typeof call.dialStatus === 'string' ? call.dialStatus : null,
    };
    // the slot is freed at once, even while the store is down: a stuck slot would stall the campaign
    const freed = outcome === 'answered' ? undefined : [...this.runners.values()].find((r) => r.release(callId));
    // the one durable write path: ordered after the call's turns, retried until the database is back
    const cid = Number(call.campaignId);
    const written = outboxFor(this.db).write({
      kind: 'outcome',
      callId,
      campaignId: Number.isSafeInteger(cid) && cid > 0 ? cid : null,
      update,
    }) as Promise<OutcomeResult>;
    // the next dial pass once the database has freed the slot too
    if (freed)
      written.then(
        () => freed.stored(),
        () => freed.stored(),
      );
    const w = await Promise.race([written, waitMs(writeWaitMs()).then(() => undefined)]);
    if (!w) {
      // the store is down or busy: the outcome stays queued, call_ended follows once it is stored
      written.then(
        (r) => this.announce(r),
        () => undefined,
      );
      throw new DialerError(
        'campaign_outcome_store',
        `outcome ${outcome} of call ${callId} not stored yet (${outboxFor(this.db).waitReason()})`,
      );
    }
    const res = w;
    this.announce(res);
    if (outcome === 'answered') {
      // dialing -> active: recount the campaign's progress (the call row knows its campaign)
      const answeredIn = res.campaignId ?? res.call?.campaignId ?? (Number.isSafeInteger(cid) && cid > 0 ? cid : null);
      if (answeredIn !== null) this.runners.get(answeredIn)?.markDirty();
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

  /** Writes (outcomes, turns, do-not-call requests) waiting for the store: see src/store/outbox.ts. */
  get pendingOutcomes(): number {
    return outboxFor(this.db).stats().pending;
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
          transcript: res.call.transcript ?? [],
          contactStatus: res.contact?.status,
          nextAttemptAt: res.contact?.nextAttemptAt ? new Date(res.contact.nextAttemptAt).toISOString() : undefined,
        },
      } satisfies CampaignEvent);
    }
  }

  /** The caller asked not to be called again: add the number to the do-not-call list at once. */
  async addToDnc(
    phone: string,
    o: { campaignId?: number | null; reason?: string; source?: string; callId?: number | null } = {},
  ): Promise<number> {
    const scope = this.opts.dncScope === 'campaign' && o.campaignId ? o.campaignId : null;
    const n = await storeDnc(
      this.db,
      {
        phone,
        campaignId: scope,
        reason: o.reason ?? 'caller asked not to be called',
        source: o.source ?? 'conversation',
      },
      o.callId,
    );
    if (o.campaignId) this.runners.get(o.campaignId)?.markDirty();
    return n;
  }

  /** Calls this manager placed that have no final outcome yet. */
  get inFlight(): number {
    let n = 0;
    for (const r of this.runners.values()) n += r.inFlight.size;
    return n;
  }

  inFlightIds(): number[] {
    return [...this.runners.values()].flatMap((r) => [...r.inFlight]);
  }

  /**
   * Shutdown / redeploy: stop claiming, let live calls finish for up to `timeoutMs`, then end the rest
   * politely through `endCall` (goodbye + hangup by the conversation), give them `graceMs` to report,
   * and finally hang up and record whatever is still open (against Asterisk). Leases are released.
   * Returns how many calls ended by themselves, politely, and forcibly.
   */
  async drain(
    o: { timeoutMs: number; endCall?: (callId: number) => void; graceMs?: number } = { timeoutMs: 30_000 },
  ): Promise<{ finished: number; ended: number; forced: number }> {
    this.draining = true;
    if (this.pickupTimer) clearInterval(this.pickupTimer);
    const start = this.inFlight;
    const until = async (ms: number): Promise<void> => {
      const end = Date.now() + ms;
      while (this.inFlight > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    };
    await until(o.timeoutMs);
    const left = this.inFlightIds();
    let ended = 0;
    if (left.length && o.endCall) {
      for (const id of left) o.endCall(id);
      await until(o.graceMs ?? 5000);
      ended = left.length - this.inFlight;
    }
    let forced = 0;
    if (this.inFlight > 0) {
      const ids = new Set(this.inFlightIds());
      forced = ids.size;
      if (this.opts.asterisk) {
        await reconcileAgainstAsterisk(this.db, this.opts.asterisk, {
          campaignId: null,
          isOrphan: (c) => ids.has(c.id),
          why: 'shutdown: the drain timeout passed',
          strays: false,
          ignoreTracking: true,
        })
          .then((rep) => {
            for (const c of rep.closed) if (c.result) this.announce(c.result);
          })
          .catch((err) => this.warn('campaign_drain', `drain: ${errorMessage(err)}`, err));
      } else {
        for (const id of ids)
          await this.handleOutcome({ id, outcome: 'failed', reason: 'shutdown: the drain timeout passed' }).catch(
            () => undefined,
          );
      }
      for (const r of this.runners.values()) for (const id of ids) r.inFlight.delete(id);
    }
    return { finished: start - left.length, ended, forced };
  }

  /**
   * Stop timers and give up the leases; claims in flight that were never sent are released. Calls in
   * progress are left to finish. `keepLeases` leaves the lease rows as a crash would (tests).
   */
  async close(o: { keepLeases?: boolean } = {}): Promise<void> {
    this.closed = true;
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.pickupTimer) clearInterval(this.pickupTimer);
    if (this.recordingTimer) clearInterval(this.recordingTimer);
    this.opts.loadGate?.close();
    await this.pickupBusy?.catch(() => undefined);
    await Promise.all([...this.runners.values()].map((r) => r.close()));
    if (!o.keepLeases)
      await Promise.all(
        [...this.runners.values()].filter((r) => r.state === 'running').map((r) => this.dropLease(r.id)),
      );
    this.runners.clear();
  }
}
