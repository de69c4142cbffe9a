/**
 * Originate calls and follow each one to exactly one final outcome (after an optional `answered`).
 *
 * - The channel id is ours (given at originate), so events that arrive before the originate answer
 *   are matched.
 * - On StasisStart of the channel once it is Up (never on early media) the call is handed to the
 *   AGI dialplan context with continueInDialplan.
 * - The outcome comes from src/ari/outcome.ts: dialstatus first, cause second.
 * - After an events reconnect, and on a slow periodic sweep, calls we believe live are checked
 *   against GET /channels: a vanished channel gets its outcome, so nothing stays in progress forever.
 * - Every path ends in exactly one 'outcome' event with a final outcome, including refused
 *   originates and invalid numbers, so the campaign's concurrency slot is always released.
 */
import { EventEmitter } from 'events';
import { randomHex } from '../util/random';
import type { AriConnection, AriEvent } from './client';
import { AriError } from './client';
import { finalOutcome, causeText, type Outcome, type FinalOutcome } from './outcome';
import { errorMessage } from '../util/errors';
import { forgetCallToken, newCallToken, rememberCallToken } from '../agi/call-token';

export interface CallRequest {
  id: string | number;
  phone: string;
  callerId?: string;
  campaignId?: string | number | null;
  contactId?: string | number | null;
  /** Contact custom fields; become channel variables CONTACT_<NAME> (sanitised). */
  fields?: Record<string, unknown>;
  /** Run AMD() in the dialplan before AGI. */
  amd?: boolean;
  /** Where AMD NOTSURE (incl. TOOLONG) goes: 'human' (default) or 'machine'. */
  amdNotSure?: 'human' | 'machine';
  /** AMD()'s nine arguments (src/campaign/call-settings.ts `amdArgs`); absent: the dialplan's defaults. */
  amdParams?: string;
  /** Record the whole call (MixMonitor in the dialplan, RECORD_CALL=1). */
  record?: boolean;
  /** Ring timeout, seconds. */
  timeoutSec?: number;
  /** Endpoint template override for this call. */
  endpoint?: string;
  /**
   * The call's secret for its FastAGI session (channel variable CALL_TOKEN; src/agi/call-token.ts). The
   * campaign queue gives one it stored hashed in the call row; absent, the tracker makes one.
   */
  token?: string;
}

export interface CallOutcome {
  callId: string | number;
  outcome: Outcome;
  phone: string;
  channelId: string;
  channel?: string;
  campaignId?: string | number | null;
  hangupCause?: number;
  hangupCauseText?: string;
  dialStatus?: string;
  /** From originate to answer (or to the end, when never answered). */
  ringMs: number;
  /** From answer to the end; 0 when never answered. */
  talkMs: number;
  /** Human-readable why (for failed and reconciled outcomes). */
  reason?: string;
  /** The typed error for failed originates. */
  error?: AriError;
}

export interface TrackerOptions {
  /** e.g. `PJSIP/{phone}@trunk` or `Local/{phone}@from-internal`. */
  endpointTemplate: string;
  /** Dialplan location that runs AGI (asterisk-config/extensions-agi.conf). */
  agiContext?: string;
  agiExtension?: string;
  agiPriority?: number;
  defaultTimeoutSec?: number;
  defaultCallerId?: string;
  /** Periodic reconciliation against GET /channels, ms (0 disables). */
  sweepMs?: number;
  /** How long a channel may be missing from the list before we give up waiting for its events, ms. */
  graceMs?: number;
  /** Maximum custom fields turned into channel variables. */
  maxFields?: number;
  /**
   * `host:port` where Asterisk reaches THIS runtime's FastAGI (env AGI_ADVERTISE): sent as the channel
   * variable AGI_TARGET, so the shipped dialplan runs the answered call's AGI on the runtime that placed
   * it (several runtimes on one Asterisk). Unset: the dialplan's own target.
   */
  agiTarget?: string;
}

interface Tracked {
  req: CallRequest;
  channelId: string;
  channelName?: string;
  startedAt: number;
  answeredAt?: number;
  dialStatus?: string;
  cause?: number;
  hangupRequestCause?: number;
  inStasis: boolean;
  continued: boolean;
  cancelled: boolean;
  /** The originate request is still in flight. */
  pending: boolean;
  finished: boolean;
}

const PHONE_RE = /^\+?[0-9*#]{2,32}$/;

/** Channel ids every tracker on a connection follows, so an unowned `aid-` channel is recognised as an orphan. */
const owned = new WeakMap<AriConnection, Set<string>>();
const orphansSeen = new WeakMap<AriConnection, Set<string>>();
function ownedBy(conn: AriConnection): Set<string> {
  let s = owned.get(conn);
  if (!s) owned.set(conn, (s = new Set()));
  return s;
}

/** True while a CallTracker on this connection follows the channel (a live call of this process). */
export function isTrackedChannel(conn: AriConnection, channelId: string): boolean {
  return ownedBy(conn).has(channelId);
}

/** Strip formatting from a phone number; undefined when it is not a dialable number. */
export function cleanPhone(phone: unknown): string | undefined {
  if (typeof phone !== 'string' && typeof phone !== 'number') return undefined;
  const s = String(phone).replace(/[\s().-]/g, '');
  return PHONE_RE.test(s) ? s : undefined;
}

/** Channel variable name for a contact field: CONTACT_ + upper-case letters, digits, underscores. */
export function fieldVariableName(name: string): string | undefined {
  const s = name
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toUpperCase()
    .slice(0, 48);
  return s ? `CONTACT_${s}` : undefined;
}

/** A channel variable value: a string without control characters, at most 512 characters. */
export function variableValue(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'object') return undefined;
  return String(v)
    .replace(/[\u0000-\u001f\u007f]+/g, ' ')
    .slice(0, 512);
}

/** The endpoint for a number: the template's {phone} replaced. */
export function endpointFor(template: string, phone: string): string {
  if (!template.includes('{phone}'))
    throw new AriError('not_configured', `dial endpoint template must contain {phone}: ${template}`);
  return template.split('{phone}').join(phone);
}

/** The channel variables an originate carries (CALL_ID, CONTACT_PHONE, CAMPAIGN_ID, CONTACT_*, AMD_*). */
export function channelVariables(req: CallRequest, phone: string, maxFields = 50): Record<string, string> {
  const vars: Record<string, string> = {};
  let n = 0;
  for (const [k, v] of Object.entries(req.fields ?? {})) {
    if (n >= maxFields) break;
    const name = fieldVariableName(k);
    const value = variableValue(v);
    if (!name || value === undefined || name === 'CONTACT_PHONE' || name === 'CONTACT_ID') continue;
    vars[name] = value;
    n++;
  }
  vars.CALL_ID = String(req.id);
  if (req.token) vars.CALL_TOKEN = req.token;
  vars.CONTACT_PHONE = phone;
  if (req.campaignId !== undefined && req.campaignId !== null) vars.CAMPAIGN_ID = String(req.campaignId);
  if (req.contactId !== undefined && req.contactId !== null) vars.CONTACT_ID = String(req.contactId);
  vars.AMD_ENABLED = req.amd ? '1' : '0';
  if (req.amd) vars.AMD_NOTSURE = req.amdNotSure === 'machine' ? 'machine' : 'human';
  // nine integers only: the value becomes AMD()'s argument list in the dialplan
  if (req.amd && req.amdParams && /^\d{1,5}(,\d{1,5}){8}$/.test(req.amdParams)) vars.AMD_PARAMS = req.amdParams;
  if (req.record) vars.RECORD_CALL = '1';
  return vars;
}

/**
 * AGI_ADVERTISE as a channel variable value: `host:port` (a name, IPv4 or [IPv6]); a bare `host` takes
 * `agiPort` (AGI_PORT: under `npm start` the FastAGI port bound, also when AGI_PORT=0); anything else is refused.
 */
export function agiTargetValue(v: string | undefined, agiPort?: string | number): string | undefined {
  let s = (v ?? '').trim();
  if (!s) return undefined;
  const port = Number(agiPort);
  if (/^([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])$/.test(s) && Number.isInteger(port) && port > 0)
    s = `${s}:${port}`;
  const m = /^([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):(\d{1,5})$/.exec(s);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535)
    throw new AriError(
      'not_configured',
      `AGI_ADVERTISE must be host:port, or host with AGI_PORT set (as Asterisk reaches this runtime's FastAGI): ${s}`,
    );
  return s;
}

function withAgiTarget(vars: Record<string, string>, target: string | undefined): Record<string, string> {
  if (target) vars.AGI_TARGET = target;
  else delete vars.AGI_TARGET;
  return vars;
}

/**
 * Events: 'outcome' (CallOutcome) once with outcome 'answered' when answered, and exactly once
 * with a final outcome; 'warning' (message); 'count' (live calls) when it changes.
 */
export class CallTracker extends EventEmitter {
  private readonly conn: AriConnection;
  private readonly opts: Required<Omit<TrackerOptions, 'defaultCallerId' | 'agiTarget'>> & {
    defaultCallerId?: string;
    agiTarget?: string;
  };
  private readonly byChannel = new Map<string, Tracked>();
  private readonly byCall = new Map<string, Tracked>();
  private readonly onEvent = (ev: AriEvent): void => this.handle(ev);
  private readonly onConnected = (info: { reconnect: boolean }): void => {
    if (info.reconnect) void this.reconcile('after reconnecting to ARI');
  };
  private sweepTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(conn: AriConnection, opts: TrackerOptions) {
    super();
    // ari-originate listens for 'outcome' once per originate in flight (removed when it settles): as many
    // listeners as calls being placed at once, which is a campaign's concurrency, not a leak
    this.setMaxListeners(0);
    this.conn = conn;
    endpointFor(opts.endpointTemplate, '0'); // validate now
    this.opts = {
      endpointTemplate: opts.endpointTemplate,
      agiContext: opts.agiContext ?? 'ai-dialer-agi',
      agiExtension: opts.agiExtension ?? 's',
      agiPriority: opts.agiPriority ?? 1,
      defaultTimeoutSec: opts.defaultTimeoutSec ?? 30,
      // the trunk no longer forces a caller ID (pjsip.conf): the dialer's default is TRUNK_CALLER_ID
      defaultCallerId: opts.defaultCallerId || process.env.TRUNK_CALLER_ID?.trim() || undefined,
      sweepMs: opts.sweepMs ?? 60_000,
      graceMs: opts.graceMs ?? 2_000,
      maxFields: opts.maxFields ?? 50,
      agiTarget: agiTargetValue(opts.agiTarget),
    };
    conn.on('event', this.onEvent);
    conn.on('connected', this.onConnected);
    if (this.opts.sweepMs > 0) {
      this.sweepTimer = setInterval(() => void this.reconcile('periodic check'), this.opts.sweepMs);
      this.sweepTimer.unref?.();
    }
  }

  /** Calls not yet finished. */
  get live(): number {
    return this.byCall.size;
  }

  isLive(callId: string | number): boolean {
    return this.byCall.has(String(callId));
  }

  /** The ids of the calls not yet finished (as strings). */
  liveCallIds(): string[] {
    return [...this.byCall.keys()];
  }

  /**
   * Place a call. Resolves with the channel id once Asterisk accepted the originate; a refused
   * originate or an invalid number resolves too, after emitting the 'failed' outcome (the error is
   * on the outcome). Rejects only for a duplicate call id (that call is already being followed).
   */
  async originate(req: CallRequest): Promise<{ channelId: string; accepted: boolean }> {
    if (this.closed) throw new AriError('not_configured', 'call tracker is closed');
    const key = String(req.id);
    if (req.id === undefined || req.id === null || key === '')
      throw new AriError('invalid_input', 'msg.call.id is required');
    if (this.byCall.has(key)) throw new AriError('invalid_input', `call ${key} is already in progress`);
    const safeId = key.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
    const channelId = `aid-${safeId}-${randomHex(4)}`;
    const t: Tracked = {
      req,
      channelId,
      startedAt: Date.now(),
      inStasis: false,
      continued: false,
      cancelled: false,
      pending: true,
      finished: false,
    };
    this.byCall.set(key, t);
    this.byChannel.set(channelId, t);
    ownedBy(this.conn).add(channelId);
    this.emit('count', this.live);
    const phone = cleanPhone(req.phone);
    if (!phone) {
      this.finish(t, {
        outcome: 'failed',
        reason: `invalid phone number ${JSON.stringify(req.phone)}`,
        error: new AriError('invalid_input', `invalid phone number ${JSON.stringify(req.phone)}`),
      });
      return { channelId, accepted: false };
    }
    let endpoint: string;
    try {
      endpoint = endpointFor(req.endpoint || this.opts.endpointTemplate, phone);
    } catch (err) {
      this.finish(t, { outcome: 'failed', reason: errorMessage(err), error: err as AriError });
      return { channelId, accepted: false };
    }
    const timeout = req.timeoutSec ?? this.opts.defaultTimeoutSec;
    // Only the session that presents this token may drive the call (fastagi-in checks it).
    const token =
      typeof req.token === 'string' && /^[A-Za-z0-9_-]{16,128}$/.test(req.token) ? req.token : newCallToken();
    rememberCallToken(key, token);
    try {
      const ch = await this.conn.originate({
        endpoint,
        app: this.conn.app,
        appArgs: 'dialed',
        callerId: variableValue(req.callerId ?? this.opts.defaultCallerId),
        timeout,
        channelId,
        // A Local channel originated without formats runs at slin192 (every frame resampled, about
        // -6 dB, seen on Asterisk 22); "slin" keeps it at 8 kHz like the trunk and our prompts.
        formats: endpoint.startsWith('Local/') ? 'slin' : undefined,
        variables: withAgiTarget(channelVariables({ ...req, token }, phone, this.opts.maxFields), this.opts.agiTarget),
      });
      t.pending = false;
      if (ch?.name) t.channelName = ch.name;
      if (t.cancelled && !t.finished) void this.hangupQuietly(t);
      return { channelId, accepted: true };
    } catch (err) {
      t.pending = false;
      const e = err instanceof AriError ? err : new AriError('internal', errorMessage(err), { cause: err });
      // A timeout (or a 409 for our own channel id after a resend) may hide an originate Asterisk
      // did accept: check before calling it failed.
      if (e.kind === 'timeout' || e.kind === 'network' || e.status === 409) {
        const there = await this.conn.getChannel(channelId).then(
          () => true,
          () => false,
        );
        if (there) return { channelId, accepted: true };
        // Not there (yet): make sure a late originate cannot ring on unfollowed.
        void this.conn.hangup(channelId).catch(() => undefined);
      }
      this.finish(t, { outcome: 'failed', reason: `originate refused: ${e.message}`, error: e });
      return { channelId, accepted: false };
    }
  }

  /** Hang up one call (by id) or all of ours; each gets outcome 'cancelled'. Returns how many. */
  cancel(callId?: string | number): number {
    const targets =
      callId === undefined
        ? [...this.byCall.values()]
        : [this.byCall.get(String(callId))].filter((x): x is Tracked => !!x);
    for (const t of targets) {
      if (t.finished) continue;
      t.cancelled = true;
      if (!t.pending) void this.hangupQuietly(t);
    }
    return targets.length;
  }

  private async hangupQuietly(t: Tracked): Promise<void> {
    try {
      await this.conn.hangup(t.channelId, 'normal');
    } catch (err) {
      if (err instanceof AriError && err.kind === 'not_found') {
        // Already gone and we missed its end: settle it now (exactly once).
        this.finish(t, { reason: 'channel already gone when hung up' });
        return;
      }
      this.emit('warning', `hangup of ${t.channelId} failed: ${errorMessage(err)}`);
    }
  }

  private handle(ev: AriEvent): void {
    const ch = ev.type === 'Dial' ? ev.peer : ev.channel;
    if (!ch) return;
    const t = this.byChannel.get(ch.id);
    if (!t) {
      if (ev.type === 'StasisStart') this.orphan(ch.id);
      return;
    }
    if (t.finished) return;
    if (ch.name) t.channelName = ch.name;
    switch (ev.type) {
      case 'Dial': {
        const ds = (ev.dialstatus ?? '').toUpperCase();
        if (ds && ds !== 'PROGRESS' && ds !== 'ANSWER') t.dialStatus = ds;
        else if (ds === 'ANSWER') t.dialStatus = 'ANSWER';
        break;
      }
      case 'ChannelStateChange':
        if (ch.state === 'Up') this.answered(t);
        break;
      case 'StasisStart':
        t.inStasis = true;
        if (ch.state === 'Up') this.answered(t);
        break;
      case 'StasisEnd':
        t.inStasis = false;
        break;
      case 'ChannelHangupRequest':
        if (typeof ev.cause === 'number') t.hangupRequestCause = ev.cause;
        break;
      case 'ChannelDestroyed':
        t.cause = typeof ev.cause === 'number' ? ev.cause : t.hangupRequestCause;
        this.finish(t, {});
        break;
      default:
        break;
    }
  }

  /**
   * An answered channel of ours (`aid-` id) that no tracker follows, e.g. dialled before Node-RED
   * restarted: nobody would ever continue it, so the callee would hear silence. Hang it up, once.
   */
  private orphan(channelId: string): void {
    if (!channelId.startsWith('aid-') || ownedBy(this.conn).has(channelId)) return;
    let seen = orphansSeen.get(this.conn);
    if (!seen) orphansSeen.set(this.conn, (seen = new Set()));
    if (seen.has(channelId)) return;
    seen.add(channelId);
    if (seen.size > 10_000) seen.clear();
    this.emit(
      'warning',
      `hanging up ${channelId}: answered in our Stasis app but no call follows it (dialled before a restart?)`,
    );
    this.conn.hangup(channelId).catch(() => undefined);
  }

  private answered(t: Tracked): void {
    if (t.answeredAt === undefined) {
      t.answeredAt = Date.now();
      this.emit('outcome', this.describe(t, 'answered', {}));
    }
    // Hand over to the AGI context once: only an Up channel inside our Stasis app.
    if (t.inStasis && !t.continued && !t.cancelled) {
      t.continued = true;
      this.conn
        .continueInDialplan(t.channelId, {
          context: this.opts.agiContext,
          extension: this.opts.agiExtension,
          priority: this.opts.agiPriority,
        })
        .catch((err: unknown) => {
          if (t.finished) return;
          if (err instanceof AriError && (err.kind === 'not_found' || err.kind === 'refused')) return; // gone or already left: its end will follow
          this.emit('warning', `continue in dialplan failed for ${t.channelId}: ${errorMessage(err)}; hanging up`);
          void this.hangupQuietly(t);
        });
    }
  }

  private describe(t: Tracked, outcome: Outcome, extra: { reason?: string; error?: AriError }): CallOutcome {
    const now = Date.now();
    const final = outcome !== 'answered';
    const out: CallOutcome = {
      callId: t.req.id,
      outcome,
      phone: String(t.req.phone),
      channelId: t.channelId,
      ringMs: (t.answeredAt ?? now) - t.startedAt,
      talkMs: final && t.answeredAt !== undefined ? now - t.answeredAt : 0,
    };
    if (t.channelName) out.channel = t.channelName;
    if (t.req.campaignId !== undefined) out.campaignId = t.req.campaignId;
    if (t.dialStatus) out.dialStatus = t.dialStatus;
    if (final && t.cause !== undefined) {
      out.hangupCause = t.cause;
      out.hangupCauseText = causeText(t.cause);
    }
    if (extra.reason) out.reason = extra.reason;
    if (extra.error) out.error = extra.error;
    return out;
  }

  /** Settle a call exactly once. */
  private finish(t: Tracked, extra: { outcome?: FinalOutcome; reason?: string; error?: AriError }): void {
    if (t.finished) return;
    t.finished = true;
    this.byChannel.delete(t.channelId);
    ownedBy(this.conn).delete(t.channelId);
    this.byCall.delete(String(t.req.id));
    forgetCallToken(t.req.id);
    let outcome = extra.outcome;
    let reason = extra.reason;
    if (!outcome) {
      const r = finalOutcome({
        answered: t.answeredAt !== undefined,
        cancelled: t.cancelled,
        dialStatus: t.dialStatus === 'ANSWER' ? undefined : t.dialStatus,
        cause: t.cause,
      });
      outcome = r.outcome;
      reason = reason ? `${reason}; ${r.reason}` : r.reason;
    }
    this.emit('outcome', this.describe(t, outcome, { reason, error: extra.error }));
    this.emit('count', this.live);
  }

  /**
   * Check the calls we believe live against Asterisk's channel list. A channel that is not there
   * (and whose end did not arrive within graceMs) gets its outcome now: completed when it was
   * answered, otherwise failed (cancelled when we had hung it up).
   */
  async reconcile(why: string): Promise<number> {
    if (this.closed || this.byChannel.size === 0) return 0;
    let list: Set<string>;
    let states: Map<string, string>;
    try {
      const chans = await this.conn.listChannels();
      list = new Set(chans.map((c) => c.id));
      states = new Map(chans.map((c) => [c.id, c.state]));
    } catch (err) {
      this.emit('warning', `could not reconcile calls (${why}): ${errorMessage(err)}`);
      return 0;
    }
    const missing: Tracked[] = [];
    for (const t of this.byChannel.values()) {
      if (t.pending || t.finished) continue;
      if (!list.has(t.channelId)) missing.push(t);
      else if (states.get(t.channelId) === 'Up' && t.answeredAt === undefined) {
        // We missed the answer while disconnected; it may be waiting in our Stasis app.
        t.inStasis = true;
        this.answered(t);
      }
    }
    if (!missing.length) return 0;
    await new Promise((r) => setTimeout(r, this.opts.graceMs).unref?.());
    let n = 0;
    for (const t of missing) {
      if (t.finished) continue;
      // Confirm one by one: the list may have been taken a moment before the channel appeared.
      const gone = await this.conn.getChannel(t.channelId).then(
        () => false,
        (err: unknown) => err instanceof AriError && err.kind === 'not_found',
      );
      if (!gone || t.finished) continue;
      n++;
      if (t.cancelled) this.finish(t, { outcome: 'cancelled', reason: `channel gone (${why})` });
      else if (t.answeredAt !== undefined)
        this.finish(t, { outcome: 'completed', reason: `channel gone, end not seen (${why})` });
      else this.finish(t, { outcome: 'failed', reason: `channel gone before an outcome was seen (${why})` });
    }
    return n;
  }

  /** Stop following; with hangup (default) our live calls are hung up first. */
  async close(opts: { hangup?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.conn.off('event', this.onEvent);
    this.conn.off('connected', this.onConnected);
    if (opts.hangup !== false) {
      await Promise.all(
        [...this.byCall.values()]
          .filter((t) => !t.pending && !t.finished)
          .map((t) => this.conn.hangup(t.channelId).catch(() => undefined)),
      );
    }
    for (const id of this.byChannel.keys()) ownedBy(this.conn).delete(id);
    this.byCall.clear();
    this.byChannel.clear();
  }
}
