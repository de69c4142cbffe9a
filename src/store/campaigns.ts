/**
 * Campaign repository: validation before start, status, outcomes and retries, the do-not-call list,
 * release of unsent claims, crash reconciliation and progress counters. The claim itself is in
 * `claim.ts`; pacing buckets in `pacing.ts`.
 */
import { namedStatement, type Db, type Queryable } from './db';
import { FINAL_STATUSES, TRANSCRIPT_SQL, markAnsweredIn, type CallStatus } from './calls';
import { DialerError } from '../util/errors';

export type CampaignStatus = 'draft' | 'running' | 'paused' | 'stopped' | 'completed';
export type CallerIdStrategy = 'round_robin' | 'least_recently_used' | 'local_presence';

export interface CampaignRow {
  id: number;
  name: string;
  status: CampaignStatus;
  default_country: string;
  timezone: string;
  window_start: string;
  window_end: string;
  max_concurrent: number;
  calls_per_second: number;
  max_attempts: number;
  retry_policy: Record<string, number>;
  caller_id_strategy: CallerIdStrategy;
  amd_enabled: boolean;
  settings: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
}

/** Outcomes a call can end with (msg.call.outcome), and 'answered' which is not final. */
export type Outcome =
  'answered' | 'completed' | 'busy' | 'no_answer' | 'congestion' | 'failed' | 'cancelled' | 'machine';
const FINAL_OUTCOMES = new Set(['completed', 'busy', 'no_answer', 'congestion', 'failed', 'cancelled', 'machine']);

/** Retry delays (seconds) used when the campaign's policy lacks an outcome. */
export const DEFAULT_RETRY_POLICY: Record<string, number> = {
  busy: 600,
  no_answer: 3600,
  failed: 1800,
  congestion: 600,
  cancelled: 0,
  /** an answering machine (voicemail left or not): try again in 4 hours */
  machine: 14400,
};

export function parseCampaignId(id: unknown): number {
  const n = typeof id === 'number' ? id : typeof id === 'string' && /^\s*\d{1,10}\s*$/.test(id) ? Number(id) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0 || n > 2147483647) {
    throw new DialerError('campaign_bad_id', `campaign id must be a positive integer (got ${JSON.stringify(id)})`);
  }
  return n;
}

export async function getCampaign(q: Queryable, id: number): Promise<CampaignRow | undefined> {
  const r = await q.query<CampaignRow>('select * from campaigns where id = $1', [id]);
  return r.rows[0] ? normaliseCampaignRow(r.rows[0]) : undefined;
}

/** `time` columns as 'HH:MM:SS' text and the rate as a number, the same on both drivers. */
export function normaliseCampaignRow<T extends CampaignRow>(r: T): T {
  return {
    ...r,
    window_start: String(r.window_start),
    window_end: String(r.window_end),
    calls_per_second: Number(r.calls_per_second),
  };
}

/** Check that a campaign can start; throws a DialerError with one clear sentence when not. */
export async function validateCampaignForStart(q: Queryable, id: number): Promise<CampaignRow> {
  const c = await getCampaign(q, id);
  if (!c) throw new DialerError('campaign_not_found', `campaign ${id} does not exist`);
  const r = await q.query<{ numbers: number; contacts: boolean }>(
    `select (select count(*) from phone_numbers where campaign_id = $1 and active)::int as numbers,
            exists (select 1 from contacts where campaign_id = $1) as contacts`,
    [id],
  );
  if (!r.rows[0].numbers)
    throw new DialerError(
      'campaign_no_caller_id',
      `campaign ${id} (${c.name}) has no active caller-ID numbers: add one before starting`,
    );
  if (!r.rows[0].contacts)
    throw new DialerError(
      'campaign_no_contacts',
      `campaign ${id} (${c.name}) has no contacts: import some before starting`,
    );
  const tz = await q.query<{ ok: boolean }>('select exists (select 1 from pg_timezone_names where name = $1) as ok', [
    c.timezone,
  ]);
  if (!tz.rows[0]?.ok)
    throw new DialerError(
      'campaign_bad_timezone',
      `campaign ${id} (${c.name}) has an unknown time zone ${JSON.stringify(c.timezone)}: use an IANA name such as America/New_York`,
    );
  return c;
}

export async function setCampaignStatus(q: Queryable, id: number, status: CampaignStatus): Promise<void> {
  await q.query('update campaigns set status = $2, updated_at = now() where id = $1', [id, status]);
}

export interface OutcomeUpdate {
  callId: number;
  outcome: string;
  reason?: string | null;
  hangupCause?: number | null;
  dialStatus?: string | null;
  /** Clock for the retry schedule (tests); default the database's now(). */
  now?: Date;
}

export interface OutcomeResult {
  /** The call was closed by this outcome (false: already final, or 'answered'). */
  closed: boolean;
  status: CallStatus | 'answered';
  /** The call's campaign (set for 'answered', which has no `call`). */
  campaignId?: number | null;
  call?: {
    id: number;
    campaignId: number | null;
    contactId: number | null;
    phone: string | null;
    callerId: string | null;
    attempt: number;
    durationMs: number | null;
    hangupCause: number | null;
    /** The whole transcript (set when this outcome closed the call). */
    transcript?: Array<{ seq: number; userText: string | null; botText: string | null }>;
  };
  contact?: { id: number; status: string; attempts: number; nextAttemptAt: Date | null };
}

/** Map an outcome name to the call's final status; unknown names are failures. */
export function outcomeStatus(outcome: string): Exclude<CallStatus, 'initiated' | 'ringing' | 'in_progress'> {
  return (FINAL_OUTCOMES.has(outcome) ? outcome : 'failed') as Exclude<
    CallStatus,
    'initiated' | 'ringing' | 'in_progress'
  >;
}

/**
 * Apply one call outcome: close the call once (as `closeCall` does), then close or reschedule its contact:
 * completed -> done; busy / no_answer / failed / congestion / cancelled -> pending again at
 * now + retry_policy[outcome] seconds while attempts < max_attempts, else failed. A duplicate or late
 * outcome changes nothing. 'answered' only marks the call answered.
 */
export async function recordOutcome(db: Db, o: OutcomeUpdate): Promise<OutcomeResult> {
  if (o.outcome === 'answered') {
    // marked answered and, for the campaign's progress (this call moves from dialing to active), its campaign:
    // one round trip
    const r = await markAnsweredIn(db, o.callId);
    return { closed: false, status: 'answered', campaignId: r };
  }
  const status = outcomeStatus(o.outcome);
  const reason =
    o.reason ?? (FINAL_OUTCOMES.has(o.outcome) ? null : `unknown outcome ${JSON.stringify(o.outcome).slice(0, 60)}`);
  // One statement (one round trip, the campaign's open-call slot row locked for that statement only): close
  // the call once, with its transcript; then close or reschedule its contact by the call's final status.
  // The call's transcript is every turn stored when it closes, whoever closes it (the outcome of the call, a
  // reconcile after a crash, a drain): turns go through the outbox before the outcome of the same call
  // (src/store/outbox.ts), and no turn is stored on a closed call after this.
  // A callback the callee asked for (requestCallback) reschedules a completed call at that time and does
  // not count as an attempt.
  const r = await db.query<{
    id: number;
    campaign_id: number | null;
    contact_id: number | null;
    phone: string | null;
    caller_id: string | null;
    attempt: number;
    status: CallStatus;
    duration_ms: number | null;
    hangup_cause: number | null;
    closed: boolean;
    turns: Array<{ seq: number; userText: string | null; botText: string | null }> | null;
    k_id: number | null;
    k_status: string | null;
    k_attempts: number | null;
    k_next: Date | null;
  }>(OUTCOME_SQL, [
    o.callId,
    status,
    FINAL_OUTCOMES.has(o.outcome) ? o.outcome : 'failed',
    reason,
    o.hangupCause ?? null,
    o.dialStatus ?? null,
    o.now ?? null,
    JSON.stringify(DEFAULT_RETRY_POLICY),
    [...FINAL_OUTCOMES],
  ]);
  const row = r.rows[0];
  if (!row) return { closed: false, status };
  const closed = row.closed === true;
  const call = {
    id: row.id,
    campaignId: row.campaign_id,
    contactId: row.contact_id,
    phone: row.phone,
    callerId: row.caller_id,
    attempt: row.attempt,
    durationMs: row.duration_ms,
    hangupCause: row.hangup_cause,
    ...(closed ? { transcript: (row.turns ?? []).map((t) => ({ ...t, seq: Number(t.seq) })) } : {}),
  };
  return {
    closed,
    status: row.status,
    call,
    contact:
      row.k_id !== null
        ? { id: row.k_id, status: String(row.k_status), attempts: Number(row.k_attempts), nextAttemptAt: row.k_next }
        : undefined,
  };
}

const FINAL_STATUS_LIST = FINAL_STATUSES.map((x) => `'${x}'`).join(',');

/** recordOutcome's statement: $1 call, $2 status, $3 outcome, $4 reason, $5 hangup cause, $6 dial status,
 * $7 clock of the retry schedule (null: now()), $8 default retry policy (json), $9 the final outcomes. */
const OUTCOME_SQL = namedStatement(
  'aid_record_outcome',
  `with closed as (
     update calls set status = $2, outcome = coalesce($3, $2), reason = coalesce($4, reason),
         hangup_cause = coalesce($5::int, hangup_cause), dial_status = coalesce($6, dial_status), ended_at = now(),
         duration_ms = (extract(epoch from (now() - created_at)) * 1000)::integer,
         talk_ms = case when answered_at is not null then (extract(epoch from (now() - answered_at)) * 1000)::integer end,
         transcript = case when exists (select 1 from call_turns t where t.call_id = $1)
           then ${TRANSCRIPT_SQL}
           else transcript end
      where id = $1 and status not in (${FINAL_STATUS_LIST})
      returning id, campaign_id, contact_id, phone, caller_id, attempt, status, duration_ms, hangup_cause, metadata
   ),
   cur as (
     select id, campaign_id, contact_id, phone, caller_id, attempt, status, duration_ms, hangup_cause, metadata, true as closed
       from closed
     union all
     select id, campaign_id, contact_id, phone, caller_id, attempt, status, duration_ms, hangup_cause, metadata, false
       from calls where id = $1 and not exists (select 1 from closed)
   ),
   k as (
     update contacts c set
        status = case when cur.status = 'completed' and cb.at is not null then 'pending'
                      when cur.status = 'completed' then 'done' when c.attempts < k.max_attempts then 'pending' else 'failed' end,
        attempts = case when cur.status = 'completed' and cb.at is not null then greatest(0, c.attempts - 1) else c.attempts end,
        next_attempt_at = case when cur.status = 'completed' and cb.at is not null then cb.at
          when cur.status <> 'completed' and c.attempts < k.max_attempts
          then coalesce($7::timestamptz, now()) + make_interval(secs => coalesce((k.retry_policy ->> cur.status)::double precision,
                 ($8::jsonb ->> cur.status)::double precision, 1800))
          else c.next_attempt_at end,
        last_outcome = case when cur.status = 'completed' and cb.at is not null then 'callback' else cur.status end, updated_at = now()
      from campaigns k, cur, lateral (select (cur.metadata ->> 'callback_at')::timestamptz as at) cb
      where c.id = cur.contact_id and k.id = c.campaign_id and c.status = 'in_call' and c.last_call_id = $1
        and cur.status = any($9::text[])
      returning c.id, c.status, c.attempts, c.next_attempt_at
   )
   select cur.id, cur.campaign_id, cur.contact_id, cur.phone, cur.caller_id, cur.attempt, cur.status, cur.duration_ms,
          cur.hangup_cause, cur.closed,
          case when cur.closed then (select json_agg(json_build_object('seq', t.seq, 'userText', t.user_text, 'botText', t.bot_text)
                                            order by t.seq) from call_turns t where t.call_id = $1) end as turns,
          k.id as k_id, k.status as k_status, k.attempts as k_attempts, k.next_attempt_at as k_next
     from cur left join k on true`,
);

/**
 * The callee asked to be called back (llm-turn's schedule_callback): remember it on the call, so that
 * when the call completes its contact is scheduled at `at` (default: in 24 hours) instead of closed.
 */
export async function requestCallback(
  q: Queryable,
  callId: number,
  at?: Date | string | null,
  note?: string | null,
): Promise<Date> {
  let when = at ? new Date(at) : new Date(Date.now() + 24 * 3600_000);
  if (Number.isNaN(when.getTime()) || when.getTime() < Date.now()) when = new Date(Date.now() + 24 * 3600_000);
  const r = await q.query(
    `update calls set metadata = metadata || jsonb_build_object('callback_at', $2::text, 'callback_note', $3::text) where id = $1`,
    [callId, when.toISOString(), note ?? null],
  );
  if (!r.rowCount) throw new DialerError('campaign_bad_callback', `no call ${callId} to schedule a callback for`);
  // The call may already have completed (its outcome can overtake this request): reschedule its contact now.
  await q.query(
    `update contacts c set status = 'pending', attempts = greatest(0, c.attempts - 1), next_attempt_at = $2::timestamptz,
        last_outcome = 'callback', updated_at = now()
       from calls k where k.id = $1 and c.id = k.contact_id and c.last_call_id = k.id and k.status = 'completed' and c.status = 'done'`,
    [callId, when.toISOString()],
  );
  return when;
}

/**
 * Add a number to the do-not-call list at once (global when campaignId is null) and close every
 * contact with that number in scope as `dnc` (a later call outcome leaves it closed).
 * Returns the number of contacts closed.
 */
export async function addToDnc(
  db: Db,
  phone: string,
  o: { campaignId?: number | null; reason?: string; source?: string } = {},
): Promise<number> {
  const p = String(phone ?? '').trim();
  if (!/^\+?\d{3,20}$/.test(p))
    throw new DialerError(
      'dnc_bad_phone',
      `cannot add ${JSON.stringify(p).slice(0, 40)} to the do-not-call list: not a phone number`,
    );
  return db.tx((q) => applyDnc(q, { phone: p, campaignId: o.campaignId ?? null, reason: o.reason, source: o.source }));
}

/**
 * The do-not-call write itself, inside the caller's transaction (with the turn that carries the request,
 * see src/store/outbox.ts): the number on the list, every contact with it in scope closed as `dnc`.
 */
export async function applyDnc(
  q: Queryable,
  d: { phone: string; campaignId?: number | null; reason?: string | null; source?: string | null },
): Promise<number> {
  const cid = d.campaignId ?? null;
  // the contacts first (the count returned), then the list: its trigger (migration 30) sweeps any
  // contact that became pending meanwhile
  const r = await q.query(
    // every contact with the number is closed as dnc, also one whose call completed an instant before
    // (the call's outcome and the caller's request race; the request wins)
    `update contacts set status = 'dnc', last_outcome = coalesce(last_outcome, 'dnc'), updated_at = now()
      where phone = $1 and ($2::int is null or campaign_id = $2) and status <> 'dnc'`,
    [d.phone, cid],
  );
  await q.query(
    `insert into dnc (phone, campaign_id, reason, source) values ($1, $2, $3, $4) on conflict (phone, coalesce(campaign_id, 0)) do nothing`,
    [d.phone, cid, d.reason ?? null, d.source ?? null],
  );
  return r.rowCount;
}

/** Give back contacts that were claimed but never dialed: the call is cancelled, the attempt undone. */
export async function releaseClaims(db: Db, callIds: number[], reason = 'released before dialing'): Promise<number> {
  if (!callIds.length) return 0;
  return db.tx(async (q) => {
    const r = await q.query(
      `with c as (
         update calls set status = 'cancelled', outcome = 'cancelled', reason = $2, ended_at = now()
          where id = any($1::int[]) and status = 'initiated' returning id, contact_id)
       update contacts k set status = 'pending', attempts = greatest(0, k.attempts - 1), updated_at = now()
         from c where k.id = c.contact_id and k.status = 'in_call' and k.last_call_id = c.id`,
      [callIds, reason],
    );
    return r.rowCount;
  });
}

export interface ReconcileOptions {
  campaignId?: number;
  /** Open calls older than this are closed as failed (default 15 minutes). */
  staleAfterMs?: number;
  /** This worker's name: its calls created before `ownBefore` are orphans of a previous process. */
  worker?: string;
  ownBefore?: Date;
  /** When given: open calls older than `graceMs` that this says are not live are closed too. */
  isLive?: (call: { id: number; channelId: string | null; status: string }) => Promise<boolean>;
  graceMs?: number;
}

export interface ReconcileResult {
  closed: number[];
  rescheduled: number;
}

/**
 * Crash safety: close calls left `initiated` / `ringing` / `in_progress` by a crash or restart as
 * failed (with the reason) and reschedule or close their contacts by the retry policy. Nothing is
 * left stuck `in_call`, and a call that is still live is never touched.
 */
export async function reconcileOpenCalls(db: Db, o: ReconcileOptions = {}): Promise<ReconcileResult> {
  const stale = o.staleAfterMs ?? 15 * 60_000;
  const grace = o.graceMs ?? 60_000;
  const r = await db.query<{
    id: number;
    channel_id: string | null;
    status: string;
    stale: boolean;
    own: boolean;
    aged: boolean;
  }>(
    `select id, channel_id, status,
            created_at < now() - make_interval(secs => $2::double precision / 1000) as stale,
            ($3::text is not null and worker = $3 and created_at < $4::timestamptz) as own,
            created_at < now() - make_interval(secs => $5::double precision / 1000) as aged
       from calls
      where status in ('initiated','ringing','in_progress') and ($1::int is null or campaign_id = $1)
      order by id`,
    [o.campaignId ?? null, stale, o.worker ?? null, o.ownBefore ?? null, grace],
  );
  const out: ReconcileResult = { closed: [], rescheduled: 0 };
  for (const c of r.rows) {
    let why: string | undefined;
    if (c.own) why = 'reconciled: left open by a previous run of this worker';
    else if (c.stale) why = `reconciled: still ${c.status} after ${Math.round(stale / 1000)} s`;
    else if (o.isLive && c.aged) {
      let live = true;
      try {
        live = await o.isLive({ id: c.id, channelId: c.channel_id, status: c.status });
      } catch {
        live = true; // cannot tell: leave it
      }
      if (!live) why = 'reconciled: no live channel in Asterisk';
    }
    if (!why) continue;
    const res = await recordOutcome(db, { callId: c.id, outcome: 'failed', reason: why });
    if (res.closed) {
      out.closed.push(c.id);
      if (res.contact?.status === 'pending') out.rescheduled++;
    }
  }
  return out;
}

/**
 * Campaign progress, counted from the database only (the one source of truth for the status API, the
 * retained MQTT status and the dashboard). Every contact is in exactly one bucket, so the counters
 * (queued, retrying, dialing, active, completed, failed, no_answer, busy, dnc_skipped) add up to `total`.
 * `no_answer` and `busy` are contacts closed after their last attempt ended so; a contact that will be
 * tried again is `retrying` until `nextRetryAt` (the earliest of them), not a stuck percentage.
 */
export interface CampaignProgress {
  campaignId: number;
  status: CampaignStatus | 'unknown';
  total: number;
  queued: number;
  /** Contacts waiting for a retry (or a callback the callee asked for). */
  retrying: number;
  /** When the next of them is due (ISO), or null. */
  nextRetryAt: string | null;
  dialing: number;
  active: number;
  completed: number;
  failed: number;
  no_answer: number;
  busy: number;
  /** calls that reached an answering machine */
  machine: number;
  dnc_skipped: number;
  /** Share of contacts closed (completed, failed, no answer, busy, do-not-call). */
  percent: number;
}

/** Counters for campaign_progress events and the status API (see CampaignProgress). */
export async function campaignProgress(q: Queryable, id: number): Promise<CampaignProgress> {
  const r = await q.query<
    Omit<CampaignProgress, 'percent' | 'campaignId' | 'nextRetryAt'> & { closed: number; next_retry_at: Date | null }
  >(
    `select coalesce((select status from campaigns where id = $1), 'unknown') as status,
            count(*)::int as total,
            count(*) filter (where k.status = 'pending' and k.last_outcome is null)::int as queued,
            count(*) filter (where k.status = 'pending' and k.last_outcome is not null)::int as retrying,
            min(k.next_attempt_at) filter (where k.status = 'pending' and k.last_outcome is not null) as next_retry_at,
            count(*) filter (where k.status = 'in_call' and c.status is distinct from 'in_progress')::int as dialing,
            count(*) filter (where k.status = 'in_call' and c.status = 'in_progress')::int as active,
            count(*) filter (where k.status = 'done')::int as completed,
            count(*) filter (where k.status = 'failed' and k.last_outcome is distinct from 'no_answer'
                               and k.last_outcome is distinct from 'busy'
                               and k.last_outcome is distinct from 'machine')::int as failed,
            count(*) filter (where k.status = 'failed' and k.last_outcome = 'no_answer')::int as no_answer,
            count(*) filter (where k.status = 'failed' and k.last_outcome = 'busy')::int as busy,
            count(*) filter (where k.status = 'failed' and k.last_outcome = 'machine')::int as machine,
            count(*) filter (where k.status = 'dnc')::int as dnc_skipped,
            count(*) filter (where k.status in ('done','failed','dnc'))::int as closed
       from contacts k
       left join calls c on k.status = 'in_call' and c.id = k.last_call_id
      where k.campaign_id = $1`,
    [id],
  );
  const x = r.rows[0];
  const percent = x.total ? Math.round((x.closed / x.total) * 1000) / 10 : 0;
  const { closed: _closed, next_retry_at, ...rest } = x;
  return {
    campaignId: id,
    ...rest,
    nextRetryAt: next_retry_at ? new Date(next_retry_at).toISOString() : null,
    percent,
  };
}

/** True while the campaign has contacts that may still be dialed or are in a call. */
export async function campaignHasWork(q: Queryable, id: number): Promise<boolean> {
  const r = await q.query<{ w: boolean }>(
    `select exists (select 1 from contacts c join campaigns k on k.id = c.campaign_id
                     where c.campaign_id = $1 and (c.status = 'in_call' or (c.status = 'pending' and c.attempts < k.max_attempts))) as w`,
    [id],
  );
  return !!r.rows[0]?.w;
}
