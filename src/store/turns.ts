/**
 * The call-record writes of a conversation, all through the durable path (src/store/outbox.ts):
 * a turn, a turn that carries a do-not-call request (one transaction, before the goodbye is spoken),
 * the finalisation with the transcript, and a do-not-call request on its own.
 *
 * Each waits a short while for the database (OUTBOX_WAIT_MS, default 1000 ms) and then lets the call go
 * on: `stored: false` means the write is pending (it is retried until the database is back) and the
 * caller says so in its events (`writePending`).
 */
import type { Db } from './db';
import type { TurnInput } from './calls';
import { outboxFor, type DncRequest } from './outbox';
import { DialerError } from '../util/errors';

export interface CallRef {
  id: number;
  campaignId?: number | null;
}

export interface WriteOutcome<T = unknown> {
  /** true: in the database now; false: pending in the outbox (journalled if the database is down). */
  stored: boolean;
  result?: T;
}

export function writeWaitMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.OUTBOX_WAIT_MS);
  return Number.isFinite(v) && v >= 0 ? v : 1000;
}

async function settle<T>(p: Promise<{ stored: true; result: T } | { stored: false }>): Promise<WriteOutcome<T>> {
  const r = await p;
  return r.stored ? { stored: true, result: r.result } : { stored: false };
}

/** Store (upsert by seq) one turn of a call. */
export function storeTurn(db: Db, call: CallRef, turn: TurnInput, waitMs = writeWaitMs()): Promise<WriteOutcome> {
  return settle(
    outboxFor(db).writeWithin({ kind: 'turn', callId: call.id, campaignId: call.campaignId ?? null, turn }, waitMs),
  );
}

export interface SpokenTurn extends WriteOutcome {
  /**
   * The playback is over: store the turn again with its playback timing (queued in order, not awaited; in
   * the background: after the write-aheads other calls wait for).
   */
  played(turn: TurnInput): void;
}

/**
 * Write-ahead of a turn about to be spoken: stored before the callee hears it, so a crash during the
 * playback loses nothing the callee heard; `played()` adds the timing afterwards.
 */
export async function storeSpokenTurn(
  db: Db,
  call: CallRef,
  turn: TurnInput,
  waitMs = writeWaitMs(),
): Promise<SpokenTurn> {
  const w = await storeTurn(db, call, turn, waitMs);
  return {
    ...w,
    played: (t) => {
      outboxFor(db)
        .write({ kind: 'turn', callId: call.id, campaignId: call.campaignId ?? null, turn: t }, { background: true })
        .catch(() => undefined); // counted and logged by the outbox
    },
  };
}

/** A phone number fit for the list, or a DialerError. */
export function dncPhone(phone: unknown): string {
  const p = String(phone ?? '').trim();
  if (!/^\+?\d{3,20}$/.test(p))
    throw new DialerError(
      'dnc_bad_phone',
      `cannot add ${JSON.stringify(p).slice(0, 40)} to the do-not-call list: not a phone number`,
    );
  return p;
}

/**
 * The callee asked not to be called again: the turn that carries the request and the number on the list
 * (contacts in scope closed as `dnc`), in one transaction, journalled to disk before the first attempt.
 * Call this when the request is understood, before the goodbye is spoken.
 */
export function storeDncTurn(
  db: Db,
  call: CallRef,
  turn: TurnInput,
  dnc: DncRequest,
  waitMs = writeWaitMs(),
): Promise<WriteOutcome> {
  const req: DncRequest = { ...dnc, phone: dncPhone(dnc.phone) };
  return settle(
    outboxFor(db).writeWithin(
      { kind: 'turn', callId: call.id, campaignId: call.campaignId ?? null, turn, dnc: req },
      waitMs,
      { journal: true },
    ),
  );
}

/** A do-not-call request without a turn (campaign-queue's add_to_dnc input, the API). Resolves once stored. */
export async function storeDnc(db: Db, dnc: DncRequest, callId?: number | null): Promise<number> {
  const req: DncRequest = { ...dnc, phone: dncPhone(dnc.phone) };
  return (await outboxFor(db).write(
    { kind: 'dnc', callId: callId ?? null, campaignId: dnc.campaignId, dnc: req },
    { journal: true },
  )) as number;
}

/** The conversation ended: aggregate the transcript (and complete an inbound call, which has no ARI side). */
export function storeFinalisation(
  db: Db,
  call: CallRef & { inbound?: boolean },
  waitMs = writeWaitMs(),
): Promise<WriteOutcome<string>> {
  return settle(
    outboxFor(db).writeWithin<string>(
      { kind: 'finalise', callId: call.id, campaignId: call.campaignId ?? null, closeInbound: !!call.inbound },
      waitMs,
    ),
  );
}

/** msg.turn (the msg contract) as a row to store. */
export function turnInputOf(turn: {
  seq?: unknown;
  userText?: unknown;
  botText?: unknown;
  confidence?: unknown;
  action?: unknown;
  timing?: Record<string, number>;
  engines?: Record<string, unknown>;
  media?: unknown;
  interrupted?: unknown;
  playedText?: unknown;
}): TurnInput {
  return {
    seq: typeof turn.seq === 'number' ? turn.seq : 0,
    userText: typeof turn.userText === 'string' ? turn.userText : null,
    botText: typeof turn.botText === 'string' ? turn.botText : null,
    confidence: typeof turn.confidence === 'number' ? turn.confidence : null,
    action: typeof turn.action === 'string' ? turn.action : null,
    timing: turn.timing,
    engines: turn.engines,
    media: turn.media === 'stream' || turn.media === 'record' ? turn.media : null,
    interrupted: turn.interrupted === true,
    playedText: turn.interrupted === true && typeof turn.playedText === 'string' ? turn.playedText : null,
  };
}
