/**
 * The call-record service: every write a node makes to a call's record goes through here (nodes
 * never issue SQL). A call record is bookkeeping: the conversation goes on when the store fails,
 * so each method reports problems as a warning text instead of throwing.
 */
import type { Db } from '../store/db';
import { appendTurn, closeCall, finaliseTranscript } from '../store/calls';
import type { AgiCall } from '../agi/call';
import { admitCall, type AdmitResult } from '../agi/admit';
import type { MsgCall, MsgTurn } from '../types/msg';
import { errorMessage } from '../util/errors';

/** Where warnings go (a node's warn). */
export type Warn = (text: string) => void;

/** Texts of the warnings (translated by the node; English defaults). */
export interface RecordTexts {
  turnFailed(error: string): string;
  finaliseFailed(id: number, error: string): string;
}

export const ENGLISH_RECORD_TEXTS: RecordTexts = {
  turnFailed: (e) => `could not record the turn: ${e}`,
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

  /** Store one conversation turn of the call `callId`; false when the id is not a stored call's. */
  async writeTurn(callId: unknown, turn: MsgTurn): Promise<boolean> {
    const id = typeof callId === 'number' || typeof callId === 'string' ? Number(callId) : NaN;
    if (!Number.isInteger(id) || id <= 0) return false;
    try {
      const db = await this.getDb();
      await appendTurn(db, id, {
        seq: typeof turn.seq === 'number' ? turn.seq : 0,
        userText: turn.userText ?? null,
        botText: turn.botText ?? null,
        confidence: typeof turn.confidence === 'number' ? turn.confidence : null,
        action: turn.action ?? null,
        timing: turn.timing,
        engines: turn.engines,
      });
      return true;
    } catch (err) {
      this.warn(this.texts.turnFailed(errorMessage(err)));
      return false;
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
      call.transcript = await finaliseTranscript(db, id);
      if (call.direction === 'inbound') await closeCall(db, id, { status: 'completed', outcome: 'completed' });
    } catch (err) {
      // The call is over either way; the record can be fixed later, the msg must go on.
      this.warn(this.texts.finaliseFailed(id, errorMessage(err)));
    }
  }
}
