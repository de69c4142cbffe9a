/**
 * The contact claim: the one place that decides who may be dialed now.
 *
 * Every eligibility rule lives inside this single SQL statement, so no code path can skip one:
 *  - the campaign is `running`;
 *  - the contact is `pending` (not already in a call, not closed), `attempts < max_attempts`,
 *    `next_attempt_at <= now`, all checked in the zone scan itself (a contact out of attempts or not yet
 *    due never stands in front of eligible ones);
 *  - the local time in the contact's zone (`coalesce(contact.timezone, campaign.timezone)`) is inside
 *    the campaign's calling window [window_start, window_end) (a window may wrap midnight). The open
 *    zones are computed once per statement over the campaign's distinct zones (`campaign_zones`,
 *    kept by a trigger on contacts), not per row, with `now at time zone tz` (DST correct). Only the
 *    open zones' slices of the due contacts' queue are read (`contact_queue`, migration 33: one row per
 *    pending contact, kept by triggers on contacts whoever writes; its index `contact_queue_due` has
 *    attempts among its keys so a contact out of attempts is passed over on the index entry), in random
 *    order, each from its head (oldest due first within a zone) until the batch is full. The head is the zone's
 *    low-water mark (migration 34, `contact_queue_head`): no row of the zone with attempts left is due before
 *    it, so the entries earlier claims left behind (deleted rows, contacts out of attempts) are never read
 *    again and a claim costs the same after a million claims on one zone as after ten; rows entering the
 *    queue below the mark lower it, a claim raises it (see the migration for why that is safe), so contacts
 *    waiting in closed zones cost nothing and a claim reads the contacts it takes plus the ones other
 *    claimers hold. The queue is an index, not the truth: every rule is checked again on the contact row
 *    the claim locks. No index on contacts names a column the claim changes, so its update of the
 *    contact is HOT (no index entry written; contacts keeps 20 % of each page free for it);
 *  - the number is on no do-not-call list (global: dnc.campaign_id null, or the campaign's own). Since
 *    migration 30 this is an invariant of the table, not a probe: no contact is `pending` while its
 *    number is listed in its scope (triggers sweep it to `dnc` on a list addition, on insert, and when
 *    it would become `pending` again, whoever writes; the migration explains the races), so the claim
 *    reads no do-not-call table and `dncSkipped` is always 0;
 *  - the contact has no open call (initiated / ringing / in_progress): a channel for it may still be up
 *    in Asterisk (migration 9: a trigger drops such a contact from the claim's update);
 *  - the campaign has at least one active caller-ID number;
 *  - fewer than `max_concurrent` calls of the campaign are open, across every runtime (migration 18:
 *    a maintained counter, never a count: 16 slot rows per campaign (`campaign_slots`) each holding a
 *    share of max_concurrent, kept exact by triggers on calls whoever writes the call; a claim locks
 *    only the slot rows it takes room from, with SKIP LOCKED, so claimers do not queue behind each
 *    other's commit and the cost of a claim does not grow with open calls;
 *    `settings.concurrency_scope = 'worker'` leaves the cap to each worker).
 * The queue rows and then the contacts are taken with `FOR UPDATE SKIP LOCKED`, so concurrent workers (in
 * one process or many) never get the same contact and a claim never waits for a lock; the same statement creates the call record (status `initiated`,
 * attempt number, caller ID, worker) and marks the contact `in_call`. Up to `limit` contacts are
 * claimed in one round trip (a worker with N free slots asks for N).
 */
import { namedStatement, type Queryable } from './db';

export interface ClaimOptions {
  campaignId: number;
  /** Most contacts to claim in this statement (>= 1). */
  limit?: number;
  /** Worker name stored on the contact and the call (reconciliation after a crash uses it). */
  worker?: string;
  /** The clock used for eligibility (tests); default the database's now(). */
  now?: Date;
  /**
   * How many workers may claim this campaign at the same time (default 4). Kept for the function's
   * signature; since migration 31 the claim reads past rows other workers hold (SKIP LOCKED) instead.
   */
  concurrency?: number;
}

export interface ClaimedContact {
  callId: number;
  contactId: number;
  campaignId: number;
  phone: string;
  name: string | null;
  timezone: string | null;
  /** The zone the window was checked in (contact's, else the campaign's). */
  effectiveTimezone: string;
  fields: Record<string, unknown>;
  attempt: number;
  callerId: string;
  callerIdNumberId: number;
  amdEnabled: boolean;
}

export interface ClaimResult {
  claimed: ClaimedContact[];
  /** Candidates found on a do-not-call list: always 0 since migration 30 (listed contacts are never pending). */
  dncSkipped: number;
  /**
   * How many contacts the campaign's free slots let this claim take (at most `limit`). 0: no free slot (every
   * slot full in the database, counting other runtimes' calls and outcomes not written yet), or the campaign is
   * not running or has no active caller ID. Fewer claimed than `room`: no more contact was due.
   */
  room: number;
}

/**
 * The statement itself is the function `claim_contacts(campaign, limit, now, worker, slack)`, created by
 * src/store/migrations/067-claim-call-seq-once.sql (version 36's with `o_room` added by 066, and the calls' id
 * sequence looked up once per claim): plpgsql caches its plans per connection and
 * the function runs with `plan_cache_mode = force_generic_plan`, so the big CTE is planned once per
 * connection instead of on every claim; on PostgreSQL the call itself is a named prepared statement. It
 * returns one row (dnc_skipped, inserted, claimed json, room). To change the claim, append a migration with
 * `create or replace function claim_contacts`.
 */
export const CLAIM_SQL = namedStatement(
  'claim_contacts',
  'select o_dnc_skipped as dnc_skipped, o_inserted as inserted, o_claimed as claimed, o_room as room from claim_contacts($1::int, $2::int, $3::timestamptz, $4::text, $5::int)',
);

/** Claim up to `limit` eligible contacts of a campaign (see the module comment for the rules). */
export async function claimContacts(q: Queryable, o: ClaimOptions): Promise<ClaimResult> {
  const limit = Math.max(1, Math.min(1000, Math.floor(o.limit ?? 1)));
  const r = await q.query<{ dnc_skipped: number; inserted: number; claimed: ClaimedContact[] | string; room: number }>(
    CLAIM_SQL,
    [
      o.campaignId,
      limit,
      o.now ?? null,
      o.worker ?? null,
      Math.max(2, Math.min(64, Math.floor(o.concurrency ?? 4) + 1)),
    ],
  );
  const row = r.rows[0];
  if (!row) return { claimed: [], dncSkipped: 0, room: 0 };
  const claimed = (typeof row.claimed === 'string' ? JSON.parse(row.claimed) : row.claimed) as ClaimedContact[];
  for (const c of claimed) {
    c.callId = Number(c.callId);
    c.fields = c.fields ?? {};
  }
  return { claimed, dncSkipped: Number(row.dnc_skipped), room: Number(row.room) };
}
