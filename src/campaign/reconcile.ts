/**
 * Reconcile open calls against Asterisk, never by assumption. Used when a runtime takes over a
 * campaign whose owner died (or restarted), after every ARI reconnect and on a slow periodic sweep:
 *
 * 1. GET /channels; each channel is matched to a call by its CALL_ID (the `channelvars` Asterisk adds
 *    when ari.conf lists CALL_ID) or by the channel id ari-originate gives (`aid-<call id>-<hex>`, the
 *    Local channel's other half is `<id>;2`).
 * 2. An orphan call whose channel a CallTracker of this process still follows is adopted (left to run);
 *    any other channel of an orphan call is hung up, and we wait until Asterisk no longer lists it.
 * 3. Only then the call is closed with its true outcome: it was answered (channel Up, or answered_at)
 *    -> completed when the conversation reached its end, else failed; never answered -> cancelled (retried by the
 *    policy). A contact is therefore never released (pending) while a channel for it may still be up.
 * 4. A channel carrying the CALL_ID of a call the database already closed, that nobody in this process
 *    follows and that nothing drives (ringing, or parked in Stasis / AGI), is hung up too.
 * If Asterisk cannot be asked, nothing is closed (the contacts stay in_call; the next sweep retries).
 */
import type { Db } from '../store/db';
import { recordOutcome, type OutcomeResult } from '../store/campaigns';
import { errorMessage } from '../util/errors';

export interface AsteriskChannel {
  id: string;
  name?: string;
  state?: string;
  dialplan?: { context?: string; exten?: string; app_name?: string };
  channelvars?: Record<string, string>;
}

/** What the reconciler needs from Asterisk (an AriConnection fits). */
export interface AsteriskView {
  listChannels(): Promise<AsteriskChannel[]>;
  hangup(channelId: string, reason?: string): Promise<void>;
  /** True while a CallTracker of this process follows the channel (the call is live here). */
  isTracked?(channelId: string): boolean;
}

export interface OpenCall {
  id: number;
  campaignId: number | null;
  worker: string | null;
  status: string;
  channelId: string | null;
  answered: boolean;
  turns: number;
  /** The conversation reached its end: finalised, or a closing action (end_call, add_to_dnc, ...) stored. */
  ended?: boolean;
}

export interface ReconcileReport {
  closed: Array<{ id: number; outcome: string; result?: OutcomeResult }>;
  adopted: number[];
  /** Channels hung up (orphans and strays). */
  hungUp: string[];
  /** Calls left open this time (channel would not go away, or Asterisk could not be asked). */
  left: number[];
  error?: string;
}

const CHANNEL_ID_RE = /^aid-(\d{1,15})-[0-9a-f]+(?:;\d+)?$/;
/** Apps a channel sits in when nothing of ours drives it any more. */
const UNDRIVEN_APPS = new Set(['', 'Stasis', 'AGI', 'AppDial2']);

/** The call id a channel belongs to, if it is one of ours. */
export function callIdOfChannel(ch: AsteriskChannel): number | undefined {
  const v = ch.channelvars?.CALL_ID;
  if (v !== undefined && /^\d{1,15}$/.test(v)) return Number(v);
  const m = CHANNEL_ID_RE.exec(ch.id);
  return m ? Number(m[1]) : undefined;
}

/** The channel to hang up for a group of one call's channels: the first half of a Local pair. */
function primaryIds(chans: AsteriskChannel[]): string[] {
  const ids = chans.map((c) => c.id);
  return ids.filter((id) => !(/;2$/.test(id) && ids.includes(id.replace(/;2$/, ''))));
}

export async function openCallsOf(db: Db, campaignId: number | null): Promise<OpenCall[]> {
  const r = await db.query<{
    id: number;
    campaign_id: number | null;
    worker: string | null;
    status: string;
    channel_id: string | null;
    answered: boolean;
    turns: number;
    ended: boolean;
  }>(
    `select c.id, c.campaign_id, c.worker, c.status, c.channel_id, c.answered_at is not null as answered,
            (select count(*)::int from call_turns t where t.call_id = c.id) as turns,
            (c.transcript is not null
              or exists (select 1 from call_turns t where t.call_id = c.id and t.action is not null)) as ended
       from calls c
      where c.status in ('initiated','ringing','in_progress') and c.direction = 'outbound'
        and ($1::int is null or c.campaign_id = $1)
      order by c.id`,
    [campaignId],
  );
  return r.rows.map((x) => ({
    id: Number(x.id),
    campaignId: x.campaign_id,
    worker: x.worker,
    status: x.status,
    channelId: x.channel_id,
    answered: !!x.answered,
    turns: Number(x.turns),
    ended: !!x.ended,
  }));
}

export interface ReconcileOptions {
  /** Only this campaign's calls (null: every campaign). */
  campaignId: number | null;
  /** Which open calls are orphans (nobody live follows them). */
  isOrphan(call: OpenCall): boolean;
  /** Longest wait for hung-up channels to disappear, ms (default 5000). */
  goneTimeoutMs?: number;
  /** Why, for the reason stored on the call. */
  why: string;
  /** Also hang up stray channels of calls already closed (default true). */
  strays?: boolean;
  /** Hang up even channels a tracker of this process follows (shutdown: nothing is adopted). */
  ignoreTracking?: boolean;
}

export async function reconcileAgainstAsterisk(
  db: Db,
  ari: AsteriskView,
  o: ReconcileOptions,
): Promise<ReconcileReport> {
  const out: ReconcileReport = { closed: [], adopted: [], hungUp: [], left: [] };
  const open = (await openCallsOf(db, o.campaignId)).filter((c) => o.isOrphan(c));
  let chans: AsteriskChannel[];
  try {
    chans = await ari.listChannels();
  } catch (err) {
    out.left = open.map((c) => c.id);
    out.error = `cannot list Asterisk channels: ${errorMessage(err)}`;
    return out;
  }
  const byCall = new Map<number, AsteriskChannel[]>();
  for (const ch of chans) {
    const id = callIdOfChannel(ch);
    if (id === undefined) continue;
    let l = byCall.get(id);
    if (!l) byCall.set(id, (l = []));
    l.push(ch);
  }
  const tracked = (id: string): boolean => !o.ignoreTracking && !!ari.isTracked?.(id.replace(/;2$/, ''));
  const toHangup = new Map<number, { call: OpenCall; chans: AsteriskChannel[] }>();
  const closeNow: OpenCall[] = [];
  for (const c of open) {
    const mine = [
      ...(byCall.get(c.id) ?? []),
      ...chans.filter((x) => x.id === c.channelId && callIdOfChannel(x) === undefined),
    ];
    if (!mine.length) closeNow.push(c);
    else if (mine.some((x) => tracked(x.id))) out.adopted.push(c.id);
    else toHangup.set(c.id, { call: c, chans: mine });
  }
  // strays: channels of calls the database has already closed
  if (o.strays !== false) {
    const openIds = new Set(open.map((c) => c.id));
    const candidates = [...byCall.keys()].filter((id) => !openIds.has(id));
    if (candidates.length) {
      const r = await db.query<{ id: number }>(
        `select id from calls where id = any($1::int[]) and status not in ('initiated','ringing','in_progress')`,
        [candidates],
      );
      for (const { id } of r.rows) {
        const list = (byCall.get(Number(id)) ?? []).filter((x) => !tracked(x.id));
        const undriven = list.filter((x) => x.state !== 'Up' || UNDRIVEN_APPS.has(x.dialplan?.app_name ?? ''));
        if (undriven.length === list.length && list.length) {
          for (const chId of primaryIds(list)) {
            await ari.hangup(chId, 'normal').catch(() => undefined);
            out.hungUp.push(chId);
          }
        }
      }
    }
  }
  // hang up the orphans' channels, then wait until Asterisk no longer lists them
  const wasUp = new Map<number, boolean>();
  for (const { call, chans: list } of toHangup.values()) {
    wasUp.set(
      call.id,
      list.some((x) => x.state === 'Up'),
    );
    for (const chId of primaryIds(list)) {
      await ari.hangup(chId, 'normal').catch(() => undefined); // 404: already gone
      out.hungUp.push(chId);
    }
  }
  if (toHangup.size) {
    const deadline = Date.now() + (o.goneTimeoutMs ?? 5000);
    let pending = new Set(toHangup.keys());
    for (;;) {
      let now: AsteriskChannel[];
      try {
        now = await ari.listChannels();
      } catch {
        break;
      }
      const still = new Set<number>();
      for (const ch of now) {
        const id = callIdOfChannel(ch);
        if (id !== undefined && pending.has(id)) still.add(id);
      }
      for (const id of pending) if (!still.has(id)) closeNow.push({ ...toHangup.get(id)!.call });
      pending = still;
      if (!pending.size || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    out.left.push(...pending);
  }
  for (const c of closeNow) {
    const answered = c.answered || !!wasUp.get(c.id);
    const hung = toHangup.has(c.id);
    // completed only when the conversation reached its end (finalised, or a closing action such as
    // end_call / add_to_dnc was stored); a conversation cut by the crash is failed, so its contact is
    // retried (a callee who was cut off while asking not to be called is asked again, never lost)
    const outcome = answered ? (c.ended ? 'completed' : 'failed') : hung ? 'cancelled' : 'failed';
    const reason = hung
      ? `reconciled (${o.why}): its channel was still ${answered ? 'up' : 'ringing'} with nobody following it; hung up`
      : `reconciled (${o.why}): no channel in Asterisk${answered ? ' (answered before)' : ''}`;
    const res = await recordOutcome(db, { callId: c.id, outcome, reason });
    if (res.closed) out.closed.push({ id: c.id, outcome, result: res });
  }
  return out;
}

/**
 * The view of one Asterisk for the reconciler and the campaign manager, from a lazy connection
 * (the ai-dialer-asterisk config node's connect()). `onConnected` runs on every (re)connection.
 */
export function ariView(
  connect: () => Promise<import('../ari/client').AriConnection>,
  onConnected?: (info: { reconnect: boolean }) => void,
): AsteriskView & { close(): void } {
  let conn: import('../ari/client').AriConnection | undefined;
  const get = async (): Promise<import('../ari/client').AriConnection> => {
    if (!conn) {
      conn = await connect();
      if (onConnected) conn.on('connected', onConnected);
    }
    return conn;
  };
  if (onConnected) void get().catch(() => undefined);
  return {
    close: () => {
      if (conn && onConnected) conn.off('connected', onConnected);
      conn = undefined;
    },
    listChannels: async () => (await get()).listChannels() as Promise<AsteriskChannel[]>,
    hangup: async (id, reason) => (await get()).hangup(id, reason),
    isTracked: (id) => {
      if (!conn) return false;
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { isTrackedChannel } = require('../ari/calls') as typeof import('../ari/calls');
      return isTrackedChannel(conn, id);
    },
  };
}
