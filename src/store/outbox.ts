/**
 * The one durable write path of a call: turns, do-not-call requests, finalisation (transcript) and
 * outcomes go through here, never straight to the database.
 *
 *  - ordered per call: one queue per call id, written one after the other;
 *  - survives outages: a write that fails because the database cannot be reached stays at the head
 *    of its queue; one probe (`select 1`, exponential backoff) decides when the database is back, then
 *    every queue goes on. A write that fails for any other reason (bad data) is counted `failed` and
 *    given up, so one bad row never blocks a call;
 *  - bounded memory: at most `maxPending` writes wait; past that the oldest write that is not a
 *    do-not-call request is dropped (counted `dropped`);
 *  - survives a crash during an outage: a write that could not be stored at once is appended to a
 *    journal file (fsync) and replayed by the next process that opens the same database;
 *  - few round trips: plain turns (most of a call's writes) that wait at the same moment, across calls,
 *    go to the database as one statement (TurnBatcher: sent at once while one of its connections is
 *    free, only what arrives while all are busy gathers behind them), so under load the database sees a
 *    few large writes instead of hundreds of small ones;
 *  - observable: `stats()` feeds `/health` (`writes`), and `on('call', ...)` says when a call has
 *    writes pending and when they are stored (the bus turns it into `status` events with `writePending`).
 *
 * Every operation is idempotent (turns upsert by (call, seq), DNC inserts ignore duplicates, a call is
 * closed once), so replaying one that was in fact stored changes nothing.
 */
import crypto from 'crypto';
import { EventEmitter } from 'events';
import fs from 'fs';
import path from 'path';
import type { Db, Queryable } from './db';
import { appendTurn, appendTurns, closeCall, finaliseTranscript, type TurnInput, type TurnRow } from './calls';
import { DialerError } from '../util/errors';
import { applyDnc, recordOutcome, type OutcomeResult, type OutcomeUpdate } from './campaigns';

export interface DncRequest {
  phone: string;
  /** null: the global list. */
  campaignId: number | null;
  reason?: string | null;
  source?: string | null;
}

/** What can be written; plain data, so it can be journalled and replayed. */
export type WriteOp =
  | { kind: 'turn'; callId: number; campaignId?: number | null; turn: TurnInput; dnc?: DncRequest }
  | { kind: 'dnc'; callId?: number | null; campaignId?: number | null; dnc: DncRequest }
  | { kind: 'finalise'; callId: number; campaignId?: number | null; closeInbound?: boolean }
  | { kind: 'outcome'; callId: number; campaignId?: number | null; update: Omit<OutcomeUpdate, 'now'> };

export interface OutboxStats {
  /** Writes waiting (queued or being retried). */
  pending: number;
  /** Writes of those that could not be stored at the first attempt. */
  retrying: number;
  /** Failed attempts retried because the database was unreachable (a counter). */
  retried: number;
  /** Writes given up: the memory bound was hit (never a do-not-call request). */
  dropped: number;
  /** Writes the database refused for good (bad data; logged). */
  failed: number;
  /** Writes stored. */
  written: number;
  /** Writes read back from the journal of a previous process. */
  replayed: number;
  /** Calls with writes pending. */
  calls: number;
  /** Age of the oldest pending write, ms (0 when none). */
  oldestMs: number;
  /** 1 while the database is unreachable. */
  down: number;
}

export interface OutboxOptions {
  /** Most writes kept waiting (default env OUTBOX_MAX_PENDING, else 10000). */
  maxPending?: number;
  /** Journal file for writes that could not be stored at once (none: memory only). */
  journal?: string;
  /** First retry delay, ms (default 250), doubled up to maxDelayMs (default 5000). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  log?: (line: string) => void;
}

/** Per-call notice: writes are waiting for the database (pending > 0) or all stored (pending 0). */
export interface CallWriteState {
  callId: number;
  campaignId: number | null;
  pending: number;
  status:
    'in_progress' | 'completed' | 'failed' | 'no_answer' | 'busy' | 'congestion' | 'cancelled' | 'machine' | 'answered';
}

interface Item {
  id: string;
  op: WriteOp;
  at: number;
  attempts: number;
  journalled: boolean;
  /** Nobody waits for it (a turn's playback timing): stored after the writes someone waits for. */
  background: boolean;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

interface Queue {
  key: string;
  items: Item[];
  running: boolean;
  notified: boolean;
}

/** Errors meaning "the database cannot be reached right now", as opposed to "this write is wrong". */
export function isStoreUnavailable(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { code?: unknown; message?: unknown; cause?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  if (
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'EPIPE',
      'EHOSTUNREACH',
      'ENETUNREACH',
      'EAI_AGAIN',
      'store_unreachable',
      'store_busy',
    ].includes(code)
  )
    return true;
  // SQLSTATE: 08 connection exception, 57P01-03 shutdown / cannot connect now, 53300 too many connections,
  // 40001 / 40P01 serialization failure / deadlock (retry is the documented answer)
  if (/^(08...|57P0[123]|53300|40001|40P01)$/.test(code)) return true;
  const msg = typeof e.message === 'string' ? e.message : '';
  if (
    /Connection terminated|timeout exceeded when trying to connect|connection error|Connection refused|server closed the connection|terminating connection|the database system is (starting up|shutting down)|Client has encountered a connection error|read ECONNRESET|connect ECONNREFUSED/i.test(
      msg,
    )
  )
    return true;
  return e.cause !== undefined && e.cause !== err ? isStoreUnavailable(e.cause) : false;
}

/** A pool acquire timeout (src/store/db.ts `poolError`): the server is up, every connection is busy. */
export function isStoreBusy(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++)
    if (e.code === 'store_busy') return true;
  return false;
}

/** The status a `status` event should carry while this op waits. */
function statusOf(op: WriteOp): CallWriteState['status'] {
  if (op.kind !== 'outcome') return 'in_progress';
  const o = op.update.outcome;
  return (
    ['completed', 'failed', 'no_answer', 'busy', 'congestion', 'cancelled', 'machine', 'answered'].includes(o)
      ? o
      : 'failed'
  ) as CallWriteState['status'];
}

function keyOf(op: WriteOp): string {
  if (op.callId) return `call:${op.callId}`;
  return `dnc:${op.kind === 'dnc' ? op.dnc.phone : ''}`;
}

type TurnOp = Extract<WriteOp, { kind: 'turn' }>;

/** A turn write waiting in the TurnBatcher. */
interface TurnWaiter {
  op: TurnOp;
  resolve: (r: TurnRow) => void;
  reject: (e: unknown) => void;
  /** When a background rewrite came (ms; 0 for a write-ahead). */
  at: number;
}

/** Connections of the turn-write lane on PostgreSQL (Db.lane): statements in flight at once. */
export const TURN_LANE_SIZE = 4;

/**
 * How long a background rewrite (a turn's playback timing) waits on an idle lane for a write-ahead to ride
 * with before it goes alone, ms. A write-ahead comes every few ms while hundreds of calls talk, so most of
 * them ride along; the rewrite is in memory this much longer than its own statement would take anyway.
 */
export const BACKGROUND_HOLD_MS = 25;

/**
 * Plain turn writes (no do-not-call request) grouped into one appendTurns statement (group commit), on a
 * lane of connections of their own:
 *  - no delay when a connection is free: what was asked in the same turn of the event loop goes at once,
 *    as one statement (a lone turn waits for nothing but its own statement);
 *  - only what arrives while every connection is busy waits, and goes in the next statement (one commit,
 *    one WAL flush, for all of them);
 *  - urgent first: a spoken turn's write-ahead (the call waits for it before the reply plays) goes before
 *    the rewrites nobody waits for (a turn's playback timing); those ride along in urgent statements and
 *    go alone only when the lane is otherwise idle and none came for BACKGROUND_HOLD_MS, so they never hold
 *    up a reply and most of them add no statement of their own (one commit less per turn).
 * A statement the database refuses for anything but being unreachable is retried turn by turn, so one bad
 * turn fails alone.
 */
export class TurnBatcher {
  /** Where the statements go: a lane of `maxInFlight` connections of their own on PostgreSQL. */
  private readonly q: Queryable;
  private urgent: TurnWaiter[] = [];
  private background: TurnWaiter[] = [];
  private inFlight = 0;
  private scheduled = false;
  /** Sends the waiting background rewrites alone once the oldest has waited BACKGROUND_HOLD_MS. */
  private holdTimer?: NodeJS.Timeout;
  /** Statements sent and turns written through them (for tests and the bench). */
  readonly counts = { statements: 0, turns: 0 };

  constructor(
    db: Db,
    private readonly maxInFlight = db.lane ? TURN_LANE_SIZE : 2,
    private readonly maxBatch = 500,
  ) {
    this.q = db.lane?.('turns', maxInFlight) ?? db;
  }

  /** Store one turn; `urgent` (default): someone waits for it (a write-ahead), else a background rewrite. */
  write(op: TurnOp, urgent = true): Promise<TurnRow> {
    return new Promise((resolve, reject) => {
      if (urgent) this.urgent.push({ op, resolve, reject, at: 0 });
      else this.background.push({ op, resolve, reject, at: Date.now() });
      this.schedule();
    });
  }

  /**
   * A free connection: send at the end of this synchronous run (what it asks goes together); none free:
   * what waits goes in the next statement when one finishes (pump).
   */
  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /** A write of this call waits for the call's earlier turn rewrite: that one is urgent now. */
  promote(callId: number): void {
    if (!this.background.some((w) => w.op.callId === callId)) return;
    this.urgent.push(...this.background.filter((w) => w.op.callId === callId));
    this.background = this.background.filter((w) => w.op.callId !== callId);
    if (!this.background.length) this.releaseHold();
    this.schedule();
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight) {
      let batch: TurnWaiter[];
      if (this.urgent.length) {
        batch = this.urgent.splice(0, this.maxBatch);
        if (batch.length < this.maxBatch) batch.push(...this.background.splice(0, this.maxBatch - batch.length));
      } else if (this.background.length && this.inFlight === 0) {
        const wait = this.background[0].at + BACKGROUND_HOLD_MS - Date.now();
        if (wait > 0) return this.holdBackground(wait);
        batch = this.background.splice(0, this.maxBatch);
      } else return;
      if (this.background.length === 0) this.releaseHold();
      this.inFlight++;
      void this.send(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  /** Send the waiting rewrites alone in `ms` unless a write-ahead takes them along first. */
  private holdBackground(ms: number): void {
    if (this.holdTimer) return;
    this.holdTimer = setTimeout(() => {
      this.holdTimer = undefined;
      this.pump();
    }, ms);
  }

  private releaseHold(): void {
    if (!this.holdTimer) return;
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
  }

  private async send(batch: TurnWaiter[]): Promise<void> {
    this.counts.statements++;
    this.counts.turns += batch.length;
    if (batch.length === 1) {
      const [b] = batch;
      return appendTurn(this.q, b.op.callId, b.op.turn).then(b.resolve, b.reject);
    }
    let rows: Array<TurnRow | undefined>;
    try {
      rows = await appendTurns(
        this.q,
        batch.map((b) => ({ callId: b.op.callId, turn: b.op.turn })),
      );
    } catch (err) {
      if (isStoreUnavailable(err)) {
        for (const b of batch) b.reject(err);
        return;
      }
      // one bad turn (or a (call, seq) twice): each alone, so only it fails
      await Promise.all(batch.map((b) => appendTurn(this.q, b.op.callId, b.op.turn).then(b.resolve, b.reject)));
      return;
    }
    batch.forEach((b, i) => {
      const row = rows[i];
      if (row) b.resolve(row);
      else
        b.reject(
          new DialerError('call_closed', `call ${b.op.callId} is closed or unknown: turn ${b.op.turn.seq} not stored`),
        );
    });
  }
}

/** Run one operation against the database. */
export async function executeWrite(db: Db, op: WriteOp): Promise<unknown> {
  switch (op.kind) {
    case 'turn':
      if (!op.dnc) return appendTurn(db, op.callId, op.turn);
      // the request and the turn that carries it: one transaction
      return db.tx(async (q: Queryable) => {
        const t = await appendTurn(q, op.callId, op.turn);
        const closed = await applyDnc(q, op.dnc!);
        return { turn: t, contactsClosed: closed };
      });
    case 'dnc':
      return db.tx((q) => applyDnc(q, op.dnc));
    case 'finalise': {
      if (!op.closeInbound) return finaliseTranscript(db, op.callId);
      return db.tx(async (q) => {
        const t = await finaliseTranscript(q, op.callId);
        await closeCall(q, op.callId, { status: 'completed', outcome: 'completed' });
        return t;
      });
    }
    case 'outcome':
      return recordOutcome(db, op.update);
  }
}

export class Outbox extends EventEmitter {
  private readonly queues = new Map<string, Queue>();
  private readonly maxPending: number;
  private readonly baseDelay: number;
  private readonly maxDelay: number;
  private readonly log: (line: string) => void;
  private pending = 0;
  private retrying = 0;
  private counters = { retried: 0, dropped: 0, failed: 0, written: 0, replayed: 0 };
  private down = false;
  private downSince = 0;
  private gate?: Promise<void>;
  private openGate?: () => void;
  private probeTimer?: NodeJS.Timeout;
  private delay: number;
  private journalFd?: number;
  private journalOpen = 0;
  private seq = 0;
  private closed = false;
  /** Plain turn writes, grouped across calls. */
  readonly turns: TurnBatcher;

  constructor(
    readonly db: Db,
    private readonly opts: OutboxOptions = {},
  ) {
    super();
    const envMax = Number(process.env.OUTBOX_MAX_PENDING);
    this.maxPending = opts.maxPending ?? (Number.isInteger(envMax) && envMax > 0 ? envMax : 10000);
    this.baseDelay = opts.baseDelayMs ?? 250;
    this.maxDelay = opts.maxDelayMs ?? 5000;
    this.delay = this.baseDelay;
    this.log = opts.log ?? ((l) => console.warn(l));
    this.turns = new TurnBatcher(db);
  }

  /**
   * Queue a write behind the call's earlier ones. Resolves with its result once stored (after an
   * outage: once the database is back); rejects only when the database refused it for good or it
   * was dropped. `background`: nobody waits for it (a turn rewritten with its playback timing): it goes
   * after the turn writes a call waits for (in the same statement when there is room).
   */
  write(op: WriteOp, o: { journal?: boolean; background?: boolean } = {}): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const item: Item = {
        id: `${process.pid}.${Date.now().toString(36)}.${++this.seq}`,
        op,
        at: Date.now(),
        attempts: 0,
        journalled: false,
        background: o.background === true,
        resolve,
        reject,
      };
      // a do-not-call request goes to disk before the first attempt: durable even if the attempt hangs
      if (o.journal) this.journal(item);
      this.enqueue(item);
    });
  }

  /** `write`, but waits at most `ms`: then `{stored: false}` and the write goes on in the background. */
  async writeWithin<T = unknown>(
    op: WriteOp,
    ms: number,
    o: { journal?: boolean } = {},
  ): Promise<{ stored: true; result: T } | { stored: false }> {
    const p = this.write(op, o);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<{ stored: false }>((r) => {
      timer = setTimeout(() => r({ stored: false }), ms);
    });
    p.catch(() => undefined); // a late refusal is counted and logged; nobody waits for it
    try {
      return await Promise.race([p.then((result) => ({ stored: true as const, result: result as T })), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Writes of this call not stored yet. */
  pendingFor(callId: number): number {
    return this.queues.get(`call:${callId}`)?.items.length ?? 0;
  }

  stats(): OutboxStats {
    let oldest = 0;
    for (const q of this.queues.values())
      if (q.items.length) oldest = oldest ? Math.min(oldest, q.items[0].at) : q.items[0].at;
    return {
      pending: this.pending,
      retrying: this.retrying,
      ...this.counters,
      calls: this.queues.size,
      oldestMs: oldest ? Date.now() - oldest : 0,
      down: this.down ? 1 : 0,
    };
  }

  /** Wait until nothing is pending (or `ms` passed); returns what is still pending. */
  async drain(ms: number): Promise<number> {
    const until = Date.now() + ms;
    while (this.pending > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    return this.pending;
  }

  /** Replay the journal left by a previous process (writes it could not store before it ended). */
  replay(file: string): number {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      return 0;
    }
    const open = new Map<string, WriteOp>();
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as { add?: string; op?: WriteOp; done?: string };
        if (r.add && r.op) open.set(r.add, r.op);
        else if (r.done) open.delete(r.done);
      } catch {
        // a line cut by the crash: everything before it is intact
      }
    }
    if (open.size === 0) {
      fs.rmSync(file, { force: true });
      return 0;
    }
    // the same file goes on as this process's journal: the replayed writes stay on disk until stored
    if (file === this.opts.journal) {
      this.journalFd = fs.openSync(file, 'a', 0o600);
      fs.writeSync(this.journalFd, '\n'); // after a line the crash may have cut
    }
    for (const [id, op] of open) {
      this.counters.replayed++;
      const item: Item = {
        id,
        op,
        at: Date.now(),
        attempts: 0,
        journalled: file === this.opts.journal,
        background: false,
        resolve: () => undefined,
        reject: () => undefined,
      };
      if (item.journalled) this.journalOpen++;
      this.enqueue(item);
    }
    this.log(`ai-dialer: ${open.size} write(s) left by a previous run replayed from ${file}`);
    return open.size;
  }

  close(): void {
    this.closed = true;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.openGate?.();
    if (this.journalFd !== undefined) {
      try {
        fs.closeSync(this.journalFd);
      } catch {
        /* already closed */
      }
      this.journalFd = undefined;
    }
  }

  private enqueue(item: Item): void {
    const key = keyOf(item.op);
    let q = this.queues.get(key);
    if (!q) {
      q = { key, items: [], running: false, notified: false };
      this.queues.set(key, q);
    }
    if (this.pending >= this.maxPending) this.dropOne(item);
    if (!item.background && q.items.length) {
      // a write someone waits for, behind this call's background rewrites: those are urgent now
      for (const x of q.items) x.background = false;
      if (q.running && q.items[0].op.kind === 'turn') this.turns.promote(q.items[0].op.callId);
    }
    q.items.push(item);
    this.pending++;
    // the database is known to be down: keep it on disk at once
    if (this.down) this.journal(item);
    if (!q.running) void this.run(q);
  }

  /** Memory bound: drop the oldest waiting write that is not a do-not-call request (or this one). */
  private dropOne(incoming: Item): void {
    for (const q of this.queues.values()) {
      const i = q.items.findIndex((x, idx) => !(idx === 0 && q.running) && !isDnc(x.op));
      if (i >= 0) {
        const [x] = q.items.splice(i, 1);
        this.finish(x, q);
        this.counters.dropped++;
        this.log(
          `ai-dialer: write queue full (${this.maxPending}): dropped a ${x.op.kind} of call ${x.op.callId ?? '-'}`,
        );
        x.reject(new Error(`write dropped: more than ${this.maxPending} writes waiting for the database`));
        return;
      }
    }
    if (!isDnc(incoming.op)) this.counters.dropped++; // nothing else to drop: the new one still goes in (bounded by 1)
  }

  private async run(q: Queue): Promise<void> {
    q.running = true;
    try {
      while (q.items.length && !this.closed) {
        const item = q.items[0];
        if (this.gate) await this.gate;
        if (this.closed) break;
        item.attempts++;
        try {
          const op = item.op;
          const result = await (op.kind === 'turn' && !op.dnc
            ? this.turns.write(op, !item.background)
            : executeWrite(this.db, op));
          q.items.shift();
          this.finish(item, q);
          this.counters.written++;
          this.onStored();
          item.resolve(result);
        } catch (err) {
          if (isStoreBusy(err)) {
            // the server is up and every connection busy: this write waits its turn again (not an outage:
            // no gate, no journal, no probe)
            this.counters.retried++;
            if (item.attempts === 1) this.retrying++;
            this.notify(q, item);
            this.noteBusy(err);
            await new Promise((r) => setTimeout(r, this.baseDelay));
            continue;
          }
          if (isStoreUnavailable(err)) {
            this.counters.retried++;
            if (item.attempts === 1) this.retrying++;
            this.journal(item);
            this.notify(q, item);
            this.markDown(err);
            continue;
          }
          q.items.shift();
          this.finish(item, q);
          this.counters.failed++;
          this.log(
            `ai-dialer: the database refused a ${item.op.kind} of call ${item.op.callId ?? '-'}: ${(err as Error).message}`,
          );
          item.reject(err);
        }
      }
    } finally {
      q.running = false;
      if (!q.items.length && this.queues.get(q.key) === q) {
        this.queues.delete(q.key);
        if (q.notified) this.emitState(q, 0);
      }
    }
  }

  private finish(item: Item, q: Queue): void {
    this.pending--;
    if (item.attempts > 1) this.retrying = Math.max(0, this.retrying - 1);
    if (item.journalled) this.unjournal(item);
    if (q.items.length === 0 && this.queues.get(q.key) === q && !q.running) this.queues.delete(q.key);
  }

  private notify(q: Queue, item: Item): void {
    if (q.notified) return;
    q.notified = true;
    this.emitState(q, q.items.length, item.op);
  }

  private emitState(q: Queue, pending: number, op?: WriteOp): void {
    const m = /^call:(\d+)$/.exec(q.key);
    if (!m) return;
    const first = op ?? q.items[0]?.op;
    const st: CallWriteState = {
      callId: Number(m[1]),
      campaignId: first?.campaignId ?? null,
      pending,
      status: first ? statusOf(first) : 'in_progress',
    };
    this.emit('call', st);
  }

  private busyLoggedAt = 0;
  private busySince = 0;

  /** A write met a full, busy pool: logged at most every 10 s, as what it is. */
  private noteBusy(err: unknown): void {
    const now = Date.now();
    if (!this.busySince) this.busySince = now;
    if (now - this.busyLoggedAt < 10_000) return;
    this.busyLoggedAt = now;
    this.log(`ai-dialer: ${(err as Error).message}; writes wait their turn and are retried (the database is up)`);
  }

  /** Why a write is not stored yet, for messages: down, busy, or simply queued behind others. */
  waitReason(): string {
    if (this.down) return 'the database is unreachable: it is retried until the database is back';
    const load = this.db.poolLoad?.();
    const queued = `${this.pending} write(s) pending`;
    if (this.busySince || (load && load.waiting > 0))
      return `database busy (${load ? `${load.busy} of ${load.size} connections in use, ${load.waiting} queries waiting, ` : ''}${queued}): it is stored when its turn comes`;
    return `${queued}: it is stored when its turn comes`;
  }

  private markDown(err: unknown): void {
    if (this.down) return;
    this.down = true;
    this.downSince = Date.now();
    this.log(`ai-dialer: the database is unreachable (${(err as Error).message}); writes wait and are retried`);
    this.gate = new Promise<void>((r) => (this.openGate = r));
    // everything waiting goes to the journal now
    for (const q of this.queues.values()) for (const it of q.items) this.journal(it);
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.closed) return;
    const jitter = Math.round(this.delay * 0.2 * Math.random());
    this.probeTimer = setTimeout(() => void this.probe(), this.delay + jitter);
  }

  private async probe(): Promise<void> {
    this.probeTimer = undefined;
    try {
      await this.db.query('select 1');
    } catch {
      this.delay = Math.min(this.maxDelay, this.delay * 2);
      this.scheduleProbe();
      return;
    }
    this.onStored();
  }

  /** The database answered: open the gate for every queue. */
  private onStored(): void {
    this.delay = this.baseDelay;
    this.busySince = 0;
    if (!this.down) return;
    this.down = false;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    this.log(
      `ai-dialer: the database is back after ${Math.round((Date.now() - this.downSince) / 1000)} s; ${this.pending} write(s) go on`,
    );
    const open = this.openGate;
    this.gate = undefined;
    this.openGate = undefined;
    open?.();
  }

  private journal(item: Item): void {
    if (item.journalled || !this.opts.journal || this.closed) return;
    try {
      if (this.journalFd === undefined) {
        fs.mkdirSync(path.dirname(this.opts.journal), { recursive: true });
        this.journalFd = fs.openSync(this.opts.journal, 'a', 0o600);
      }
      fs.writeSync(this.journalFd, JSON.stringify({ add: item.id, op: item.op }) + '\n');
      fs.fsyncSync(this.journalFd);
      item.journalled = true;
      this.journalOpen++;
    } catch (err) {
      this.log(`ai-dialer: cannot write the outbox journal ${this.opts.journal}: ${(err as Error).message}`);
    }
  }

  private unjournal(item: Item): void {
    if (this.journalFd === undefined) return;
    try {
      this.journalOpen--;
      if (this.journalOpen <= 0) {
        // nothing left on disk that is not stored: start the file afresh
        this.journalOpen = 0;
        fs.ftruncateSync(this.journalFd, 0);
      } else fs.writeSync(this.journalFd, JSON.stringify({ done: item.id }) + '\n');
    } catch {
      /* the write is stored; a stale journal line is replayed idempotently */
    }
  }
}

function isDnc(op: WriteOp): boolean {
  return op.kind === 'dnc' || (op.kind === 'turn' && !!op.dnc);
}

// --- one outbox per database, process-wide ---

const outboxes = new WeakMap<Db, Outbox>();
const watchers = new EventEmitter();
watchers.setMaxListeners(0);

/** Where the journal of a database lives: OUTBOX_DIR, else DATA_DIR/outbox, else none. */
export function journalFileFor(db: Db, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dir = env.OUTBOX_DIR || (env.DATA_DIR ? path.join(env.DATA_DIR, 'outbox') : undefined);
  if (!dir) return undefined;
  const h = crypto.createHash('sha256').update(db.description).digest('hex').slice(0, 12);
  return path.resolve(dir, `${db.kind}-${h}.jsonl`);
}

/** The outbox of a database (created on first use; replays a journal a previous process left). */
export function outboxFor(db: Db): Outbox {
  let o = outboxes.get(db);
  if (!o) {
    const journal = journalFileFor(db);
    o = new Outbox(db, { journal });
    outboxes.set(db, o);
    o.on('call', (s: CallWriteState) => watchers.emit('call', s));
    const ob = o;
    live.add(ob);
    const close = db.close.bind(db);
    // the database closes last: what is pending gets a moment to be stored, the rest stays journalled
    (db as { close(): Promise<void> }).close = async () => {
      await ob.drain(Number(process.env.OUTBOX_CLOSE_WAIT_MS) || 3000);
      ob.close();
      live.delete(ob);
      outboxes.delete(db);
      await close();
    };
    if (journal) o.replay(journal);
  }
  return o;
}

const live = new Set<Outbox>();

/** `/api/v1/health` `writes`: every open outbox of this process, summed (oldestMs: the oldest). */
export function writeStats(): Record<string, number> {
  const out = { pending: 0, retrying: 0, retried: 0, dropped: 0, failed: 0, down: 0, oldestMs: 0 };
  for (const o of live) {
    const s = o.stats();
    for (const k of ['pending', 'retrying', 'retried', 'dropped', 'failed', 'down'] as const) out[k] += s[k];
    out.oldestMs = Math.max(out.oldestMs, s.oldestMs);
  }
  return out;
}

/** Be told when a call's writes go pending or are stored (every database's outbox). */
export function onCallWrites(fn: (s: CallWriteState) => void): () => void {
  watchers.on('call', fn);
  return () => watchers.off('call', fn);
}

/** Test hook: forget the outbox of a database. */
export function forgetOutbox(db: Db): void {
  const o = outboxes.get(db);
  o?.close();
  if (o) live.delete(o);
  outboxes.delete(db);
}

export type { OutcomeResult };
