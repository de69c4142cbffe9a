/**
 * The call-record service: every write a node makes to a call's record goes through here (nodes
 * never issue SQL). A call record is bookkeeping: the conversation goes on when the store fails,
 * so each method reports problems as a warning text instead of throwing.
 */
import type { Db } from '../store/db';
import { storeFinalisation, storeSpokenTurn, turnInputOf, type SpokenTurn, type WriteOutcome } from '../store/turns';
import { storeUnderstoodDnc } from '../campaign/dnc';
import type { TurnInput } from '../store/calls';
import type { AgiCall } from '../agi/call';
import { admitCall, type AdmitResult } from '../agi/admit';
import type { MsgCall, MsgTransfer, MsgTurn } from '../types/msg';
import { errorMessage } from '../util/errors';

/** Where warnings go (a node's warn). */
import { recordRefusal } from '../campaign/refusals';

export type Warn = (text: string) => void;

/** Texts of the warnings (translated by the node; English defaults). */
export interface RecordTexts {
  turnFailed(error: string): string;
  dncFailed(error: string): string;
  finaliseFailed(id: number, error: string): string;
}

export const ENGLISH_RECORD_TEXTS: RecordTexts = {
  turnFailed: (e) => `could not record the turn: ${e}`,
  dncFailed: (e) => `could not store the do-not-call request now (campaign-queue stores it when the call ends): ${e}`,
  finaliseFailed: (id, e) => `could not finalise call ${id}: ${e}`,
};

/**
 * May this AGI session drive `call` (src/agi/admit.ts)? An inbound call (no id) gets its record here;
 * without a store (`records` undefined) only the token checks that need none apply.
 */
export async function admitSession(
  records: CallRecords | undefined,
  sessionId: string,
  call: AgiCall,
  token: string | undefined,
): Promise<AdmitResult> {
  let db: Db | undefined;
  let storeDown = false;
  if (records) {
    try {
      db = await records.db();
    } catch {
      storeDown = true;
    }
  }
  return admitCall({
    db,
    storeDown,
    sessionId,
    callId: call.id,
    token,
    inbound: { phone: call.phone || null, callerId: call.callerId ?? null, campaignId: call.campaignId },
    channel: call.channel ?? null,
    uniqueid: call.uniqueid ?? null,
    amdStatus: call.amd?.status ?? null,
    amdCause: call.amd?.cause ?? null,
  });
}

/**
 * Calls finalised by this process lately (the write, stored or pending in the outbox), per database (a
 * call id means one call only within its database): the default flow reaches agi-hangup twice for a
 * call (the conversation's end, then fastagi-in's "caller gone" when the session closes), and the second
 * finalisation would read and write the same transcript again. A turn stored after it forgets it.
 */
type Finalised = Map<number, { w: Promise<WriteOutcome<string>>; at: number }>;
const finalisedByDb = new WeakMap<object, Finalised>();
const FINALISED_KEEP_MS = 120_000;

function finalisedIn(db: object): Finalised {
  let m = finalisedByDb.get(db);
  if (!m) finalisedByDb.set(db, (m = new Map()));
  return m;
}

function rememberFinalised(finalised: Finalised, id: number, w: Promise<WriteOutcome<string>>): void {
  const now = Date.now();
  finalised.delete(id);
  finalised.set(id, { w, at: now });
  // oldest first (insertion order): drop what is too old, and never keep more than 20,000
  for (const [k, v] of finalised) {
    if (now - v.at < FINALISED_KEEP_MS && finalised.size <= 20_000) break;
    finalised.delete(k);
  }
}

/** msg.turn as a row to store. */
export const rowOf = (turn: MsgTurn): TurnInput => turnInputOf(turn as Parameters<typeof turnInputOf>[0]);

export class CallRecords {
  constructor(
    private readonly getDb: () => Promise<Db>,
    private readonly warn: Warn,
    private readonly texts: RecordTexts = ENGLISH_RECORD_TEXTS,
  ) {}

  /** The store (for the admission of AGI sessions). */
  db(): Promise<Db> {
    return this.getDb();
  }

  /**
   * A refused or failed AGI session is not a conversation: its call is closed `failed` with the reason
   * (`agi_refused: <reason>`) and its contact retried by the policy (src/campaign/refusals.ts).
   */
  async refused(callId: number | undefined, reason: string): Promise<void> {
    if (callId === undefined) return;
    try {
      await recordRefusal(await this.getDb(), { callId, reason });
    } catch (err) {
      this.warn(`could not record the refused AGI session of call ${callId}: ${errorMessage(err)}`);
    }
  }

  /** A transfer to a human (msg.call.transfer): kept on the call row (`transfer`); a failure is warned. */
  async transferred(call: MsgCall | undefined, transfer: MsgTransfer): Promise<void> {
    const id = Number(call?.id);
    if (!call || !Number.isSafeInteger(id) || id <= 0) return;
    try {
      const db = await this.getDb();
      await db.query('update calls set transfer = $2::jsonb where id = $1', [id, JSON.stringify(transfer)]);
    } catch (err) {
      this.warn(`could not record the transfer of call ${id}: ${errorMessage(err)}`);
    }
  }

  /**
   * Store msg.turn as about to be spoken (before the callee hears it: a crash during playback loses
   * nothing said); `played()` on the result adds the playback timing. Marks `turn.writePending` when the
   * write waits for the database. Undefined without a stored call id (or when it fails: warned).
   */
  async spokenTurn(call: MsgCall | undefined, turn: MsgTurn, row: MsgTurn = turn): Promise<SpokenTurn | undefined> {
    const id = Number(call?.id);
    if (!Number.isInteger(id) || id <= 0) return undefined;
    try {
      const db = await this.getDb();
      finalisedIn(db).delete(id);
      const w = await storeSpokenTurn(db, { id, campaignId: Number(call?.campaignId) || null }, rowOf(row));
      // pending: stored once the database is back (and everything of this call before it, in order)
      if (w.stored) delete turn.writePending;
      else turn.writePending = true;
      return w;
    } catch (err) {
      this.warn(this.texts.turnFailed(errorMessage(err)));
      return undefined;
    }
  }

  /** A do-not-call request the LLM understood: stored with its turn now, before the goodbye is spoken. */
  async dncTurn(call: MsgCall | undefined, turn: MsgTurn): Promise<void> {
    try {
      const db = await this.getDb();
      finalisedIn(db).delete(Number(call?.id));
      const w = await storeUnderstoodDnc(db, call ?? { id: undefined }, rowOf(turn));
      if (!w.stored) turn.writePending = true;
    } catch (err) {
      this.warn(this.texts.dncFailed(errorMessage(err)));
    }
  }

  /**
   * The conversation ended: the transcript is aggregated onto `call.transcript`; an inbound call
   * (no ARI side to close it) is completed.
   */
  async finalise(call: MsgCall | undefined): Promise<void> {
    const id = call?.id;
    if (!call || typeof id !== 'number') return;
    try {
      const db = await this.getDb();
      const finalised = finalisedIn(db);
      const done = finalised.get(id);
      let w: WriteOutcome<string>;
      if (done && Date.now() - done.at < FINALISED_KEEP_MS)
        w = await done.w; // nothing stored since
      else {
        const p = storeFinalisation(db, {
          id,
          campaignId: Number(call.campaignId) || null,
          inbound: call.direction === 'inbound',
        });
        rememberFinalised(finalised, id, p);
        p.catch(() => finalised.delete(id));
        w = await p;
      }
      if (w.stored) call.transcript = w.result;
      else call.writePending = true; // the transcript is stored once the database is back
    } catch (err) {
      // The call is over either way; the record can be fixed later, the msg must go on.
      this.warn(this.texts.finaliseFailed(id, errorMessage(err)));
    }
  }
}
