/**
 * One FastAGI connection: reads the environment block, then runs commands one at a time in FIFO
 * order, each with its own timeout, and surfaces Asterisk's asynchronous `HANGUP` line.
 *
 * Failure semantics (all typed StageErrors with stage 'agi'):
 * - `invalid_input`: an argument held CR/LF/NUL (refused before anything is written).
 * - `hangup`: the caller hung up (`HANGUP` line seen, or a `511` reply); queued and later commands
 *   fail fast without being written. `hangup()` itself is tolerant and resolves.
 * - `timeout`: no reply in time. The session stays usable: the late reply, when it comes, is
 *   recognised as the timed-out command's and dropped, so later commands never get a shifted reply.
 * - `network`: the socket closed or failed with a command pending.
 * - `bad_response`: `510` (unknown command), `520` (usage), or a line that does not parse.
 */
import { EventEmitter } from 'events';
import { randomBytes } from 'crypto';
import { promises as fsp } from 'fs';
import type { Socket } from 'net';
import { StageError } from '../util/errors';
import { wavHeaderInfo } from '../audio/wav';
import { AgiParseError, assertSafe, invalidInput, parseEnvLine, parseReply, quoteArg } from './protocol';
import type { AgiEnvironment, AgiReply, AgiSession, PlaybackResult, RecordOptions, RecordResult } from './types';
import { within } from '../util/within';

export interface SessionOptions {
  /** Timeout of ordinary commands, ms (default 5000). */
  commandTimeoutMs?: number;
  /** Added to a playback's known length, ms (default 3000; plus 10% of the length). */
  playbackMarginMs?: number;
  /** STREAM FILE timeout when the file's length cannot be known locally, ms (default 120000). */
  playbackUnknownTimeoutMs?: number;
  /** Added to RECORD FILE's maximum length, ms (default 5000). */
  recordMarginMs?: number;
  /** RECORD FILE timeout when no maximum length is given, ms (default 600000). */
  recordNoMaxTimeoutMs?: number;
  /** Longest line accepted from Asterisk, bytes (default 16384). */
  maxLineLength?: number;
  /** Most environment lines accepted (default 512). */
  maxEnvLines?: number;
  /** endPolitely: how long the goodbye's audio is waited for before hanging up without it, ms (default 20000). */
  goodbyeWaitMs?: number;
  /** Session id (default: a process-unique id). */
  id?: string;
  /** Set TCP_NODELAY on the socket (default true; the server sets it at accept time instead). */
  setNoDelay?: boolean;
}

/** What the server needs to hear from a session, without event-listener overhead per connection. */
export interface SessionHooks {
  onEnv(s: FastAgiSession): void;
  onEnvError(s: FastAgiSession, err: StageError, reason: string): void;
  onClose(s: FastAgiSession): void;
}

const RESOLVED = Symbol('resolvedSessionOptions');
type Resolved = typeof DEFAULTS & { [RESOLVED]: true; setNoDelay: boolean };

/** Resolve options once (the server does this at start, not per connection). */
export function resolveSessionOptions(opts: SessionOptions = {}): Resolved {
  if ((opts as Partial<Resolved>)[RESOLVED]) return opts as Resolved;
  const o = { ...DEFAULTS, setNoDelay: true } as Resolved;
  for (const k of Object.keys(DEFAULTS) as Array<keyof typeof DEFAULTS>)
    if (opts[k] !== undefined) o[k] = opts[k] as number;
  if (opts.setNoDelay !== undefined) o.setNoDelay = opts.setNoDelay;
  o[RESOLVED] = true;
  return o;
}

// Session ids: a random per-process prefix and a counter (unique in the process, cheap to make).
const ID_PREFIX = randomBytes(6).toString('hex');
let idCounter = 0;
function nextSessionId(): string {
  return `${ID_PREFIX}-${(++idCounter).toString(36)}`;
}

/**
 * The clock of command activity, read once for many commands: a command's dispatch and its reply do not
 * read the clock (Date.now() is a runtime call of a few hundred instructions, twice per command before);
 * the session joins `unstamped`, and one short timer for the whole process stamps every session in it
 * with the same reading, at most STAMP_MS (plus the event loop's lag) after the activity. That stamp is an
 * upper bound of the activity's time: a timeout measured from it is never early, and at most that much
 * late; an idle time measured from it is never too long (idleMs reads 0 until the stamp).
 */
const STAMP_MS = 20;
/**
 * The sessions waiting for a stamp: the first `unstampedCount` entries. The array keeps its length (an
 * array cut to length 0 drops its backing store, and grows a new one step by step in the next period).
 */
const unstamped: Array<FastAgiSession | undefined> = [];
let unstampedCount = 0;
/** One timer for the process, created once and re-armed with refresh() (no allocation per stamp). */
let stampTimer: NodeJS.Timeout | undefined;
function stampLater(s: FastAgiSession): void {
  if (unstampedCount < unstamped.length) unstamped[unstampedCount] = s;
  else unstamped.push(s);
  if (++unstampedCount > 1) return; // the timer is set already
  if (stampTimer === undefined) {
    stampTimer = setTimeout(stampAll, STAMP_MS);
    stampTimer.unref();
  } else stampTimer.refresh();
}
function stampAll(): void {
  const now = Date.now();
  const n = unstampedCount;
  unstampedCount = 0;
  for (let i = 0; i < n; i++) {
    (unstamped[i] as FastAgiSession).stamp(now);
    unstamped[i] = undefined; // holds no session past its stamp
  }
}

// Sessions closed by us wait for Asterisk to close its side; one sweeper destroys the stragglers.
const lingering = new Map<FastAgiSession, number>();
let sweeper: NodeJS.Timeout | undefined;
function linger(s: FastAgiSession, graceMs: number): void {
  lingering.set(s, Date.now() + graceMs);
  if (!sweeper) {
    sweeper = setInterval(
      () => {
        const now = Date.now();
        for (const [sess, deadline] of lingering) if (deadline <= now) sess.destroy();
        if (lingering.size === 0 && sweeper) {
          clearInterval(sweeper);
          sweeper = undefined;
        }
      },
      Math.min(500, Math.max(50, graceMs)),
    );
    sweeper.unref();
  }
}

const DEFAULTS = {
  commandTimeoutMs: 5000,
  playbackMarginMs: 3000,
  playbackUnknownTimeoutMs: 120000,
  recordMarginMs: 5000,
  recordNoMaxTimeoutMs: 600000,
  maxLineLength: 16384,
  maxEnvLines: 512,
  goodbyeWaitMs: 20_000,
};

/**
 * A command waiting for its reply. One class with every field set in the constructor (one shape, no
 * property added later); a session keeps the last finished one of its shared-timer commands and reuses
 * it for the next command (no allocation per command in the usual one-at-a-time exchange).
 */
class Pending {
  /** Own timer (non-default timeouts); default-timeout commands share the session's timer. */
  timer: NodeJS.Timeout | undefined = undefined;
  shared = false;
  /** The promise's resolve and reject, set by its executor (`capture`) right after. */
  resolve: (v: unknown) => void = noop;
  reject: (e: Error) => void = noop;
  constructor(
    public line: string,
    public verb: string,
    public timeoutMs: number,
    /** Turns the reply into the method's result (saves a promise per command). */
    public map: ((r: AgiReply) => unknown) | undefined,
  ) {}
}

function noop(): void {}

/**
 * The session's phase as a small integer (compared on every command: an integer comparison, where the
 * names would be string comparisons).
 */
const ENV = 0;
const READY = 1;
const CLOSED = 2;
type Phase = typeof ENV | typeof READY | typeof CLOSED;

/** Sample rate Asterisk reports endpos in for the formats we use. */
const RATE = 8000;

export function hangupError(what: string): StageError {
  return new StageError('agi', 'hangup', `${what}: the caller hung up`);
}

export class FastAgiSession extends EventEmitter implements AgiSession {
  readonly id: string;
  /** The environment, once built (see `env`). */
  private _env: AgiEnvironment | undefined = undefined;
  /**
   * While the block follows Asterisk's own order (ASTERISK_ENV_KEYS), only the values are kept; the
   * object is built once from them (one allocation of one shape, no key string per line).
   */
  private envVals: string[] | undefined = undefined;
  /** Call id once known (fastagi-in sets it; the registry indexes it). */
  callId?: string;
  /** True once our side asked for HANGUP (so a later `HANGUP` line is not the caller's doing). */
  hangupRequested = false;
  /** True when the caller hung up first (the `HANGUP` line or a 511 came before our HANGUP). */
  callerHungUp = false;
  /** Why the session is ending on our side (endPolitely): the flow's commands are refused from then on. */
  private endingReason?: string;
  /** endPolitely is under way (its goodbye, then its HANGUP): close() and hangup() wait for its own end. */
  private politely = false;
  private _remote?: string;
  private _hungUp = false;
  private phase: Phase = ENV;
  /** The bytes of a line not finished yet (its end comes in a later read). */
  private rest: Buffer | undefined = undefined;
  private envLines = 0;
  private multi: string[] | undefined;
  private inflight: Pending | undefined;
  /** A finished shared-timer command, reused by the next one (nothing else holds it once it is done). */
  private spare: Pending | undefined;
  private queue: Pending[] = [];
  /**
   * When a command was last sent or answered (the idle watchdog's and the shared timer's clock): valid
   * when `stamped`, else the session waits in `unstamped` for the time of its latest activity.
   */
  private lastActivityAt = Date.now();
  private stamped = true;
  /** Replies still owed to commands that timed out; dropped when they arrive. */
  private owed = 0;
  private wantNext = false;
  private cmdTimer?: NodeJS.Timeout;
  /** The shared timer is set (it may fire before the command in flight is due: it then re-arms). */
  private cmdTimerArmed = false;
  private readonly o: Resolved;

  constructor(
    private readonly socket: Socket,
    opts: SessionOptions = {},
    private readonly hooks?: SessionHooks,
  ) {
    super();
    this.o = resolveSessionOptions(opts);
    this.id = opts.id ?? nextSessionId();
    if (this.o.setNoDelay) socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('error', (err) => this.onSocketGone(err));
    socket.on('close', () => this.onSocketGone());
  }

  /** The peer's address (for logs). */
  get remoteAddress(): string {
    if (this._remote === undefined) this._remote = this.socket.remoteAddress ?? '';
    return this._remote;
  }

  /** Our address on this connection (the one Asterisk reached us at: stream mode advertises it for AudioSocket). */
  get localAddress(): string {
    return this.socket.localAddress ?? '';
  }

  get hungUp(): boolean {
    return this._hungUp || this.phase === CLOSED;
  }

  get closed(): boolean {
    return this.phase === CLOSED;
  }

  /** True once the environment block has been read. */
  get ready(): boolean {
    return this.phase === READY;
  }

  /** True once endPolitely began: the session says its goodbye itself and hangs up. */
  get ending(): boolean {
    return this.endingReason !== undefined;
  }

  /** How long no command has been in flight or queued, ms (0 while one is): the flow's silence. */
  get idleMs(): number {
    if (this.inflight || this.queue.length || !this.stamped) return 0;
    return Date.now() - this.lastActivityAt;
  }

  /** Commands waiting (in flight + queued). */
  get pendingCount(): number {
    return (this.inflight ? 1 : 0) + this.queue.length;
  }

  // ---------------------------------------------------------------- reading

  /**
   * The socket's bytes (no string decoder on the socket): lines are found by scanning the bytes, and only
   * what is kept becomes a string: a GET VARIABLE's value, any other reply line, the environment block's
   * complete lines (UTF-8 never has a newline byte inside a character, so a line's bytes are always
   * whole characters). An unfinished line waits in `rest` (bytes; at most `maxLineLength`).
   */
  private readonly onData = (chunk: Buffer): void => {
    // The usual read: the whole reply to the GET (FULL) VARIABLE in flight, and nothing else.
    const p = this.inflight;
    if (
      p !== undefined &&
      p.map === variableValue &&
      this.rest === undefined &&
      this.owed === 0 &&
      this.multi === undefined
    ) {
      const v = varReplyChunk(chunk, this.o.maxLineLength);
      if (v !== null) {
        this.inflight = undefined;
        if (p.timer !== undefined) clearTimeout(p.timer);
        if (p.shared) this.spare = p;
        p.resolve(v);
        this.next();
        return;
      }
    }
    this.onBytes(chunk);
  };

  /** Any read (lines found by a byte scan; see onData for the usual one). */
  private onBytes(chunk: Buffer): void {
    let b = chunk;
    if (this.rest !== undefined) {
      b = Buffer.concat([this.rest, chunk]);
      this.rest = undefined;
    }
    const len = b.length;
    const max = this.o.maxLineLength;
    let start = 0;
    if (this.phase === ENV) {
      // the environment's complete lines as one text, parsed in place (and the lines after the block)
      const last = b.lastIndexOf(10);
      if (last !== -1) {
        this.onText(b.toString(undefined, 0, last + 1));
        if (this.closed) return;
        start = last + 1;
      }
    } else {
      let nl = newlineAt(b, 0, len);
      while (nl !== -1) {
        let end = nl;
        if (end > start && b[end - 1] === 13) end--;
        if (end - start > max) return this.fail('protocol', `line longer than ${max} bytes`);
        if (!this.varReplyBytes(b, start, end)) this.onLine(b.toString(undefined, start, end));
        if (this.closed) return;
        start = nl + 1;
        nl = start < len ? newlineAt(b, start, len) : -1; // a chunk usually ends with its line
      }
    }
    // Dispatch the next queued command only after the whole chunk is read: a `HANGUP` line that
    // arrived right behind a reply must fail the queue instead of letting one more command out.
    if (this.wantNext) {
      this.wantNext = false;
      this.next();
    }
    if (start < len) {
      if (len - start > max) return this.fail('protocol', `line longer than ${max} bytes`);
      this.rest = Buffer.from(b.subarray(start)); // a copy: the chunk itself is not held on to
    }
  }

  /** Complete lines (each ending in \n) as text: the environment block, and whatever follows it in the same read. */
  private onText(buf: string): void {
    let start = 0;
    if (this.phase === ENV && this.envLines === 0 && this.envVals === undefined && this._env === undefined) {
      // The usual block (Asterisk's keys in its order, from the start, whole in this read) in one match:
      // exactly what the line-by-line parse below gives for it; anything else goes that way.
      const m = this.o.maxEnvLines >= ASTERISK_ENV_KEYS.length ? ASTERISK_BLOCK.exec(buf) : null;
      if (m !== null && m[0].length <= this.o.maxLineLength) {
        this.envLines = ASTERISK_ENV_KEYS.length;
        this._env = new AsteriskEnv(m, 1);
        this.onEnvLine('');
        if (this.closed) return;
        start = m[0].length;
      }
    }
    let nl = buf.indexOf('\n', start);
    while (nl !== -1) {
      let end = nl;
      if (end > start && buf.charCodeAt(end - 1) === 13) end--;
      if (end - start > this.o.maxLineLength)
        return this.fail('protocol', `line longer than ${this.o.maxLineLength} bytes`);
      // Environment lines are parsed in place (no per-line string); everything else line by line.
      if (this.phase === ENV) this.onEnvRange(buf, start, end);
      else this.onLine(buf.slice(start, end));
      if (this.phase === CLOSED) return;
      start = nl + 1;
      nl = buf.indexOf('\n', start);
    }
  }

  private onLine(line: string): void {
    if (this.phase === ENV) return this.onEnvLine(line);
    if (this.multi) {
      this.multi.push(line);
      if (line.startsWith('520 ')) {
        const raw = this.multi.join('\n');
        this.multi = undefined;
        this.onReply(raw);
      }
      return;
    }
    if (line === 'HANGUP') return this.markHungUp();
    if (line === '') return;
    if (line.startsWith('520-')) {
      this.multi = [line];
      return;
    }
    this.onReply(line);
  }

  /**
   * GET (FULL) VARIABLE's `200 result=1 (<value>)` at b[start, end), answered in place: exactly what
   * onLine -> onReply's fast path gives, with only the value made a string. False: not that case (use onLine).
   */
  private varReplyBytes(b: Buffer, start: number, end: number): boolean {
    const p = this.inflight;
    if (
      p === undefined ||
      p.map !== variableValue ||
      this.owed > 0 ||
      this.multi !== undefined ||
      end - start <= 14 ||
      b[end - 1] !== 41 ||
      !isVarReply(b, start)
    )
      return false;
    this.inflight = undefined;
    if (p.timer) clearTimeout(p.timer);
    // the value: b[start + 14, end - 1); up to 8 bytes made a string in JavaScript
    p.resolve(end - start <= 23 ? shortText(b, start + 14, end - 1) : b.toString(undefined, start + 14, end - 1));
    if (p.shared) this.spare = p;
    this.wantNext = true;
    return true;
  }

  /**
   * The `agi_*` variables without their prefix. Asterisk sends the same keys in the same order on every
   * connection: while the block follows that order only the values are kept, and the object is built
   * from them in one go (a fixed shape, no map transition or dictionary insert per key, no key string
   * per line); any other key or order makes it an ordinary null-prototype dictionary, as before.
   */
  get env(): AgiEnvironment {
    return this._env ?? this.buildEnv();
  }

  private buildEnv(): AgiEnvironment {
    const vals = this.envVals;
    this.envVals = undefined;
    let env: AgiEnvironment;
    if (vals && vals.length === ASTERISK_ENV_KEYS.length) env = new AsteriskEnv(vals, 0);
    else {
      env = Object.create(null) as AgiEnvironment;
      if (vals) for (let i = 0; i < vals.length; i++) env[ASTERISK_ENV_KEYS[i]] = vals[i];
    }
    this._env = env;
    return env;
  }

  /** One environment line `agi_<key>: <value>` at buf[start, end). */
  private onEnvRange(buf: string, start: number, end: number): void {
    if (end === start) return this.onEnvLine('');
    const colon = buf.indexOf(':', start);
    if (!matchAt(buf, start, 'agi_') || colon < start + 5 || colon >= end) return this.onEnvLine(buf.slice(start, end));
    if (++this.envLines > this.o.maxEnvLines)
      return this.fail('bad_env', `more than ${this.o.maxEnvLines} environment lines`);
    const v = buf.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1;
    const value = v >= end ? '' : buf.slice(v, end);
    if (this._env === undefined) {
      // still in Asterisk's order? (the key compared in place: no string for it)
      const vals = (this.envVals ??= []);
      const want = ASTERISK_ENV_KEYS[vals.length];
      if (want !== undefined && colon - start - 4 === want.length && matchAt(buf, start + 4, want)) {
        vals.push(value);
        return;
      }
    }
    this.env[buf.slice(start + 4, colon)] = value;
  }

  private onEnvLine(line: string): void {
    if (line === '') {
      if (this.envLines === 0) return this.fail('bad_env', 'empty environment block');
      this.phase = READY;
      if (this._env === undefined) this.buildEnv();
      this.hooks?.onEnv(this);
      this.emit('env', this.env);
      return;
    }
    const kv = parseEnvLine(line);
    if (!kv) return this.fail('bad_env', `not an AGI environment line: ${JSON.stringify(line.slice(0, 80))}`);
    if (++this.envLines > this.o.maxEnvLines)
      return this.fail('bad_env', `more than ${this.o.maxEnvLines} environment lines`);
    this.env[kv[0]] = kv[1];
  }

  /** A protocol violation by the peer: report it and drop the connection. */
  private fail(reason: string, message: string): void {
    const err = new StageError('agi', 'bad_response', message);
    (err as StageError & { reason?: string }).reason = reason;
    if (this.phase === ENV) {
      this.hooks?.onEnvError(this, err, reason);
      this.emit('envError', err, reason);
    } else this.emit('protocolError', err);
    this.rejectAll(err);
    this.destroy();
  }

  private onReply(raw: string): void {
    if (this.owed > 0) {
      this.owed--;
      this.emit('lateReply', raw);
      return;
    }
    const p = this.inflight;
    if (!p) {
      this.emit('unexpected', raw);
      return;
    }
    this.inflight = undefined;
    if (p.timer) clearTimeout(p.timer);
    if (p.map === variableValue) {
      // Fast path for GET (FULL) VARIABLE, exactly what parseReply + variableValue would give:
      // `200 result=1 (<value>)` (the value runs to the final ')') or `200 result=0`.
      if (raw.length > 14 && raw.startsWith('200 result=1 (') && raw.charCodeAt(raw.length - 1) === 41) {
        p.resolve(raw.slice(14, -1));
        if (p.shared) this.spare = p;
        this.wantNext = true;
        return;
      }
      if (raw === '200 result=0') {
        p.resolve(undefined);
        if (p.shared) this.spare = p;
        this.wantNext = true;
        return;
      }
    }
    let reply: AgiReply;
    try {
      reply = parseReply(raw);
    } catch (err) {
      p.reject(err as AgiParseError);
      this.wantNext = true;
      return;
    }
    if (reply.code === 200) {
      if (p.map) {
        let v: unknown;
        try {
          v = p.map(reply);
        } catch (err) {
          p.reject(err as Error);
          this.wantNext = true;
          return;
        }
        p.resolve(v);
      } else p.resolve(reply);
    } else if (reply.code === 511) {
      this.markHungUp();
      p.reject(hangupError(p.verb));
    } else if (reply.code === 510) {
      p.reject(new StageError('agi', 'bad_response', `${p.verb}: 510 Invalid or unknown command`));
    } else if (reply.code === 520) {
      p.reject(
        new StageError(
          'agi',
          'bad_response',
          `${p.verb}: 520 invalid command syntax (${reply.raw.split('\n').length > 1 ? 'usage returned' : reply.data})`,
        ),
      );
    } else {
      p.reject(
        new StageError('agi', 'bad_response', `${p.verb}: unexpected reply ${JSON.stringify(raw.slice(0, 200))}`),
      );
    }
    this.wantNext = true;
  }

  private markHungUp(): void {
    if (this._hungUp) return;
    this._hungUp = true;
    if (!this.hangupRequested) this.callerHungUp = true;
    // Commands not yet written fail fast; the one in flight still gets Asterisk's reply.
    const q = this.queue;
    this.queue = [];
    for (const p of q) p.reject(hangupError(p.verb));
    this.emit('hangup');
  }

  private onSocketGone(err?: Error): void {
    if (this.phase === CLOSED) return;
    const wasEnv = this.phase === ENV;
    this.phase = CLOSED;
    lingering.delete(this);
    if (this.cmdTimer) clearTimeout(this.cmdTimer);
    // Build the error only when someone will see it: most sessions end with nothing pending.
    if (this.inflight || this.queue.length > 0 || wasEnv) {
      const e = new StageError('agi', 'network', err ? `connection failed: ${err.message}` : 'connection closed', {
        cause: err,
      });
      this.rejectAll(e);
      if (wasEnv) {
        this.hooks?.onEnvError(this, e, 'closed');
        this.emit('envError', e, 'closed');
      }
    }
    this.hooks?.onClose(this);
    this.emit('close');
  }

  private rejectAll(err: Error): void {
    const p = this.inflight;
    this.inflight = undefined;
    if (p) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(err);
    }
    const q = this.queue;
    this.queue = [];
    for (const x of q) x.reject(err);
  }

  // ---------------------------------------------------------------- writing

  /** Queue a complete command line (ending in \n); `own`: the session's own goodbye (endPolitely). */
  private send<T = AgiReply>(
    line: string,
    verb: string,
    timeoutMs: number,
    map?: (r: AgiReply) => T,
    own = false,
    dead = false,
  ): Promise<T> {
    if (this.phase !== READY || this._hungUp || this.endingReason !== undefined) {
      const refused = this.refusal(verb, own, dead);
      if (refused !== undefined) return Promise.reject(refused);
    }
    let p = this.spare;
    if (p) {
      this.spare = undefined;
      p.line = line;
      p.verb = verb;
      p.timeoutMs = timeoutMs;
      p.map = map;
      p.shared = false;
    } else p = new Pending(line, verb, timeoutMs, map);
    capturing = p;
    const promise = new Promise<T>(capture);
    if (this.inflight) this.queue.push(p);
    else this.dispatch(p);
    return promise;
  }

  /** Why a command may not be sent now (closed, hung up, ending, or before the environment), if it may not. */
  private refusal(verb: string, own: boolean, dead: boolean): StageError | undefined {
    if (this.phase === CLOSED) return new StageError('agi', 'network', `${verb}: connection closed`);
    if (this._hungUp && !dead) return hangupError(verb);
    if (this.endingReason !== undefined && !own) return this.endingError(verb);
    if (this.phase === ENV) return new StageError('agi', 'internal', `${verb}: environment not read yet`);
    return undefined;
  }

  private dispatch(p: Pending): void {
    this.inflight = p;
    if (this.stamped) this.activity();
    if (p.timeoutMs === this.o.commandTimeoutMs && p.timeoutMs > 0) {
      // The common case: one timer per session, not touched per command (no allocation, no clear, no
      // re-insertion into the timer list). It fires at the earliest deadline it was set for, and then
      // either times out the command in flight or sets itself again for what is left of that one's time.
      p.shared = true;
      if (!this.cmdTimerArmed) this.armSharedTimer(p.timeoutMs);
    } else if (p.timeoutMs > 0) p.timer = setTimeout(() => this.onTimeout(p), p.timeoutMs);
    this.socket.write(p.line);
  }

  /** A command was sent or answered: the time of it is taken by the next stamp (see `stampLater`). */
  private activity(): void {
    this.stamped = false;
    stampLater(this);
  }

  /** The time of the latest activity (called by `stampAll`, after it). */
  stamp(now: number): void {
    this.lastActivityAt = now;
    this.stamped = true;
  }

  private armSharedTimer(ms: number): void {
    this.cmdTimerArmed = true;
    this.cmdTimer = setTimeout(this.onSharedTimer, ms);
  }

  /**
   * The shared timer fired: time out the command in flight if it is due, else wait for what is left. While
   * a command is in flight its dispatch is the session's latest activity, so the stamp (an upper bound of
   * the dispatch time) gives its deadline; no stamp yet means it was sent within the last stamp period.
   */
  private readonly onSharedTimer = (): void => {
    this.cmdTimerArmed = false;
    const p = this.inflight;
    if (!p || !p.shared || this.phase === CLOSED) return;
    if (!this.stamped) return this.armSharedTimer(p.timeoutMs);
    const left = this.lastActivityAt + p.timeoutMs - Date.now();
    if (left > 0) this.armSharedTimer(left);
    else this.onTimeout(p);
  };

  private next(): void {
    if (this.stamped) this.activity();
    if (this.queue.length === 0) return;
    const p = this.queue.shift();
    if (p) this.dispatch(p);
  }

  private onTimeout(p: Pending): void {
    if (this.inflight !== p) return;
    this.inflight = undefined;
    this.owed++;
    p.reject(new StageError('agi', 'timeout', `${p.verb}: no reply within ${p.timeoutMs} ms`));
    this.emit('timeout', p.verb);
    this.next();
  }

  // ---------------------------------------------------------------- commands

  /** Raw escape hatch: `line` is sent as is (no quoting), but CR/LF/NUL are refused. */
  command(line: string, timeoutMs = this.o.commandTimeoutMs): Promise<AgiReply> {
    try {
      assertSafe(line, 'command');
    } catch (err) {
      return Promise.reject(err);
    }
    const verb = line.split(' ', 1)[0] || line;
    return this.send(line + '\n', verb, timeoutMs);
  }

  /** Send `VERB "arg" "arg"...` with every argument quoted. */
  run(verb: string, args: Array<string | number> = [], timeoutMs = this.o.commandTimeoutMs): Promise<AgiReply> {
    return this.runMapped(verb, args, timeoutMs);
  }

  private runMapped<T = AgiReply>(
    verb: string,
    args: Array<string | number>,
    timeoutMs: number,
    map?: (r: AgiReply) => T,
  ): Promise<T> {
    let line = verb;
    try {
      for (let i = 0; i < args.length; i++) line += ' ' + quoteArg(args[i]);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.send(line + '\n', verb, timeoutMs, map);
  }

  answer(): Promise<AgiReply> {
    return this.run('ANSWER').then((r) => {
      if (r.result === -1) throw new StageError('agi', 'bad_response', 'ANSWER failed (result=-1)');
      return r;
    });
  }

  async streamFile(
    pathWithoutExt: string,
    opts: { escapeDigits?: string; durationMs?: number } = {},
  ): Promise<PlaybackResult> {
    if (typeof pathWithoutExt !== 'string' || pathWithoutExt === '')
      throw invalidInput('STREAM FILE needs a file path');
    assertSafe(pathWithoutExt, 'file path');
    const digits = opts.escapeDigits ?? '';
    if (!/^[0-9*#A-D]*$/.test(digits))
      throw invalidInput(`escape digits must be 0-9 * # A-D, got ${JSON.stringify(digits)}`);
    let ms = opts.durationMs;
    if (ms === undefined) ms = await localWavDurationMs(pathWithoutExt);
    const timeout =
      ms !== undefined && ms >= 0
        ? ms + Math.round(ms * 0.1) + this.o.playbackMarginMs
        : this.o.playbackUnknownTimeoutMs;
    const r = await this.run('STREAM FILE', [pathWithoutExt, digits], timeout);
    const endpos = r.endpos ?? 0;
    if (r.result > 0) return { endpos, failed: false, digit: String.fromCharCode(r.result), hungUp: false };
    if (r.result === 0) return { endpos, failed: false, hungUp: false };
    // result=-1: endpos=0 means the file could not be played (or the caller was already gone);
    // endpos>0 means the caller hung up part way through.
    return { endpos, failed: endpos === 0, hungUp: endpos > 0 || this._hungUp };
  }

  async recordFile(opts: RecordOptions): Promise<RecordResult> {
    const format = opts.format ?? 'wav';
    if (typeof opts.path !== 'string' || opts.path === '') throw invalidInput('RECORD FILE needs a path');
    assertSafe(opts.path, 'record path');
    if (/\.(wav|gsm|sln)$/i.test(opts.path))
      throw invalidInput('RECORD FILE path must not carry an extension: Asterisk appends it');
    const digits = opts.escapeDigits ?? '#';
    if (!/^[0-9*#A-D]*$/.test(digits))
      throw invalidInput(`escape digits must be 0-9 * # A-D, got ${JSON.stringify(digits)}`);
    const maxMs = Math.round(opts.maxMs);
    if (!Number.isFinite(maxMs) || (maxMs < 1 && maxMs !== -1))
      throw invalidInput('maxMs must be a positive number of ms or -1');
    const args: Array<string | number> = [opts.path, format, digits, maxMs, 0];
    if (opts.beep) args.push('BEEP');
    const silence = opts.silenceSeconds ?? 0;
    if (!Number.isFinite(silence) || silence < 0) throw invalidInput('silenceSeconds must be >= 0');
    if (silence > 0) args.push(`s=${Math.round(silence)}`);
    const timeout = maxMs > 0 ? maxMs + this.o.recordMarginMs : this.o.recordNoMaxTimeoutMs;
    const r = await this.run('RECORD FILE', args, timeout);
    const endpos = r.endpos ?? 0;
    const base = { file: `${opts.path}.${format}`, endpos, durationMs: Math.round((endpos * 1000) / RATE) };
    switch (r.data) {
      case 'dtmf':
        return { ...base, endedBy: 'dtmf', digit: String.fromCharCode(r.result), hungUp: false };
      case 'hangup':
        return { ...base, endedBy: 'hangup', hungUp: true };
      case 'timeout':
        return { ...base, endedBy: 'silence_or_max', hungUp: false };
      case 'writefile':
        throw new StageError('record', 'internal', `Asterisk could not write ${base.file}`);
      default:
        if (r.result === -1) throw new StageError('record', 'bad_response', `RECORD FILE failed: ${r.raw}`);
        // Any other ending (e.g. `randomerror`) without a hangup: report what we have.
        return { ...base, endedBy: 'silence_or_max', hungUp: false };
    }
  }

  /**
   * GET VARIABLE. `evenIfHungUp`: also after the caller hung up, as Asterisk answers GET VARIABLE on a
   * dead channel (e.g. DIALSTATUS after a Dial the caller ended) while the AGI connection is open.
   */
  getVariable(name: string, opts?: { evenIfHungUp?: boolean }): Promise<string | undefined> {
    // The quoted line is cached per name: a call reads the same few variables over and over (the last
    // one asked for in the process first: a comparison, no map lookup).
    let line: string | undefined;
    if (name === lastVarName) line = lastVarLine;
    else {
      line = getVarLines.get(name);
      if (line === undefined) {
        try {
          line = `GET VARIABLE ${quoteArg(name)}\n`;
        } catch (err) {
          return Promise.reject(err);
        }
        if (getVarLines.size < 256) getVarLines.set(name, line);
      }
      lastVarName = name;
      lastVarLine = line;
    }
    return this.send(line, 'GET VARIABLE', this.o.commandTimeoutMs, variableValue, false, !!opts?.evenIfHungUp);
  }

  getFullVariable(expr: string): Promise<string | undefined> {
    return this.runMapped('GET FULL VARIABLE', [expr], this.o.commandTimeoutMs, variableValue);
  }

  setVariable(name: string, value: string): Promise<AgiReply> {
    return this.run('SET VARIABLE', [name, value]);
  }

  /** EXEC an application; `timeoutMs` for one that runs long (WaitForSilence, Dial), default the command timeout. */
  exec(app: string, args?: string, timeoutMs = this.o.commandTimeoutMs): Promise<AgiReply> {
    return this.run('EXEC', args === undefined ? [app] : [app, args], timeoutMs);
  }

  async waitForDigit(timeoutMs: number): Promise<string | undefined> {
    const ms = Math.round(timeoutMs);
    const r = await this.run(
      'WAIT FOR DIGIT',
      [ms],
      ms > 0 ? ms + this.o.commandTimeoutMs : this.o.recordNoMaxTimeoutMs,
    );
    if (r.result === -1) throw new StageError('agi', 'bad_response', 'WAIT FOR DIGIT failed (result=-1)');
    return r.result > 0 ? String.fromCharCode(r.result) : undefined;
  }

  verbose(message: string, level = 1): Promise<AgiReply> {
    return this.run('VERBOSE', [message, level]);
  }

  /**
   * HANGUP; resolves undefined instead of failing when the caller is already gone. While the session ends
   * itself (endPolitely: the goodbye, then its own HANGUP), it waits for that end instead: the flow reaches
   * its hangup node as soon as its next command is refused, before the goodbye is heard.
   */
  async hangup(): Promise<AgiReply | undefined> {
    if (this.politely && this.phase !== CLOSED) {
      await new Promise((r) => this.once('close', r));
      return undefined;
    }
    if (this._hungUp || this.phase !== READY) return undefined;
    this.hangupRequested = true;
    try {
      return await this.run('HANGUP');
    } catch (err) {
      if (err instanceof StageError && (err.kind === 'hangup' || err.kind === 'network')) return undefined;
      throw err;
    }
  }

  private endingError(verb: string): StageError {
    return new StageError('agi', 'hangup', `${verb}: the call is being ended (${this.endingReason})`);
  }

  /**
   * End the call politely wherever the conversation is: from now on the flow's commands are refused
   * (as a hangup: the flow goes to its ending), the command in flight (a RECORD, a playback) runs to its
   * end, then the session plays `goodbye()`'s audio itself and hangs up. Resolves true when the goodbye
   * was played, false when there was none to play or the caller was gone first. `giveUp` aborts when the
   * session stops waiting for the goodbye (its audio came, or `goodbyeWaitMs` passed).
   */
  async endPolitely(
    reason: string,
    goodbye: (giveUp: AbortSignal) => Promise<{ path: string; durationMs: number; release?(): void } | undefined>,
  ): Promise<boolean> {
    if (this._hungUp || this.phase !== READY || this.endingReason !== undefined) return false;
    this.endingReason = reason;
    this.politely = true;
    // commands the flow queued behind the one in flight are not written
    const q = this.queue;
    this.queue = [];
    for (const p of q) p.reject(this.endingError(p.verb));
    let played = false;
    // a goodbye that cannot be had in time is not waited for (the session hangs up without it), nor one
    // the caller is no longer there to hear (hung up or the connection gone: the session ends at once)
    let gone: () => void = noop;
    const waited = new AbortController();
    const making = goodbye(waited.signal).catch(() => undefined);
    const callerGone = new Promise<undefined>((r) => {
      gone = () => r(undefined);
      this.once('hangup', gone);
      this.once('close', gone);
    });
    const audio = await within(Promise.race([making, callerGone]), this.o.goodbyeWaitMs);
    this.off('hangup', gone);
    this.off('close', gone);
    waited.abort(); // no more waiting for it (a goodbye said on the media stops waiting for its audio)
    if (!audio) void making.then((late) => late?.release?.()); // came too late: not kept
    try {
      if (audio && !this.hungUp) {
        const ms = audio.durationMs;
        const line = `STREAM FILE ${quoteArg(audio.path)} ""\n`;
        const r = await this.send(
          line,
          'STREAM FILE',
          ms + Math.round(ms * 0.1) + this.o.playbackMarginMs,
          undefined,
          true,
        );
        played = r.result >= 0 && (r.endpos ?? 0) > 0;
      }
    } catch {
      /* the caller left, or the playback failed: hang up all the same */
    } finally {
      audio?.release?.();
    }
    if (!this.hungUp) {
      this.hangupRequested = true;
      await this.send('HANGUP\n', 'HANGUP', this.o.commandTimeoutMs, undefined, true).catch(() => undefined);
    }
    this.politely = false;
    this.close();
    return played;
  }

  /**
   * End the AGI: half-close, then destroy if Asterisk does not close within `graceMs`. While the session
   * ends itself (endPolitely) it does nothing: the session closes once its goodbye and HANGUP are done
   * (`destroy` still drops it at once).
   */
  close(graceMs = 2000): void {
    if (this.phase === CLOSED || this.politely) return;
    if (!this.socket.writableEnded) this.socket.end();
    linger(this, graceMs);
  }

  /** Drop the connection now. */
  destroy(): void {
    this.socket.destroy();
    this.onSocketGone();
  }
}

/**
 * b[s, e) as text, for a few bytes (the caller keeps it to 8): ASCII built in JavaScript (about 15 ns for
 * 2 bytes against 57 for `toString`, a call into C++; the two break even near 8), anything else decoded as UTF-8.
 */
function shortText(b: Buffer, s: number, e: number): string {
  let v = '';
  for (let i = s; i < e; i++) {
    const c = b[i];
    if (c > 127) return b.toString(undefined, s, e);
    v += String.fromCharCode(c);
  }
  return v;
}

/**
 * The value of a chunk that is exactly one `200 result=1 (<value>)` line (GET (FULL) VARIABLE's reply when the
 * variable is set), ending in \n or \r\n and at most `max` bytes long without it; else null (the general path
 * reads it). The same value varReplyBytes gives for that line, found with one pass over the value's bytes.
 */
function varReplyChunk(b: Buffer, max: number): string | null {
  const len = b.length;
  if (len < 16 || b[len - 1] !== 10) return null;
  let end = len - 1;
  if (b[end - 1] === 13) end--;
  if (end > max || end <= 14 || b[end - 1] !== 41 || !isVarReply(b, 0)) return null;
  const e = end - 1;
  for (let i = 14; i < e; i++) if (b[i] === 10) return null; // more than one line
  return e <= 22 ? shortText(b, 14, e) : b.toString(undefined, 14, e);
}

/** The first \n in b[from, to), or -1 (a loop: `Buffer#indexOf` is a call into C++, and a reply line is short). */
function newlineAt(b: Buffer, from: number, to: number): number {
  for (let i = from; i < to; i++) if (b[i] === 10) return i;
  return -1;
}

/**
 * `200 result=1 (` at b[s]: GET (FULL) VARIABLE's reply when the variable is set (the caller checked that
 * the line is longer than that), compared byte by byte.
 */
function isVarReply(b: Buffer, s: number): boolean {
  return (
    b[s] === 50 && // 2
    b[s + 1] === 48 && // 0
    b[s + 2] === 48 && // 0
    b[s + 3] === 32 && // ' '
    b[s + 4] === 114 && // r
    b[s + 5] === 101 && // e
    b[s + 6] === 115 && // s
    b[s + 7] === 117 && // u
    b[s + 8] === 108 && // l
    b[s + 9] === 116 && // t
    b[s + 10] === 61 && // =
    b[s + 11] === 49 && // 1
    b[s + 12] === 32 && // ' '
    b[s + 13] === 40 // (
  );
}

/** `buf.startsWith(lit, at)` compared code by code (inlined; the builtin with a position is a call of its own). */
function matchAt(buf: string, at: number, lit: string): boolean {
  if (at + lit.length > buf.length) return false;
  for (let i = 0; i < lit.length; i++) if (buf.charCodeAt(at + i) !== lit.charCodeAt(i)) return false;
  return true;
}

const getVarLines = new Map<string, string>();
let lastVarName = '';
let lastVarLine = 'GET VARIABLE ""\n'; // the pair is consistent: quoteArg('') is ""

/** The keys of a FastAGI environment block, in the order Asterisk (res_agi `setup_env`) sends them. */
const ASTERISK_ENV_KEYS = [
  'network',
  'network_script',
  'request',
  'channel',
  'language',
  'type',
  'uniqueid',
  'version',
  'callerid',
  'calleridname',
  'callingpres',
  'callingani2',
  'callington',
  'callingtns',
  'dnid',
  'rdnis',
  'context',
  'extension',
  'priority',
  'enhanced',
  'accountcode',
  'threadid',
] as const;

/**
 * A whole environment block in Asterisk's order, as the line-by-line parse reads it: each line
 * `agi_<key>:`, one space skipped if there is one, the value up to the line's end (`\r\n` or `\n`; a value
 * holding a CR goes the line-by-line way), then the empty line. One match (compiled to native code by the
 * regexp engine) instead of a compare per character per line in JavaScript. Every part can match in one way
 * only (`(?: |(?! ))`, not ` ?`, before a value that may start with a space), so a block that fails at its
 * end (script arguments after the usual keys) fails in time linear in its length, not exponential.
 */
const ASTERISK_BLOCK = new RegExp(
  `^${ASTERISK_ENV_KEYS.map((k) => `agi_${k}:(?: |(?! ))([^\\r\\n]*)\\r?\\n`).join('')}\\r?\\n`,
);

/**
 * The environment object of a block in Asterisk's order (its values at v[o], v[o + 1], ...): built by one
 * constructor (one shape for every session, the values in the object itself). Its prototype has no properties and no prototype,
 * so, like the dictionary it stands for, it answers only the keys the block had.
 */
const AsteriskEnv = function (this: Record<string, string>, v: ArrayLike<string>, o: number) {
  this.network = v[o];
  this.network_script = v[o + 1];
  this.request = v[o + 2];
  this.channel = v[o + 3];
  this.language = v[o + 4];
  this.type = v[o + 5];
  this.uniqueid = v[o + 6];
  this.version = v[o + 7];
  this.callerid = v[o + 8];
  this.calleridname = v[o + 9];
  this.callingpres = v[o + 10];
  this.callingani2 = v[o + 11];
  this.callington = v[o + 12];
  this.callingtns = v[o + 13];
  this.dnid = v[o + 14];
  this.rdnis = v[o + 15];
  this.context = v[o + 16];
  this.extension = v[o + 17];
  this.priority = v[o + 18];
  this.enhanced = v[o + 19];
  this.accountcode = v[o + 20];
  this.threadid = v[o + 21];
} as unknown as { new (v: ArrayLike<string>, o: number): AgiEnvironment; prototype: object };
AsteriskEnv.prototype = Object.create(null) as object;

/**
 * The executor of every command's promise: one function for all (not a closure per command). It runs
 * synchronously inside `new Promise`, and puts the promise's functions straight into the command that
 * send() named in `capturing` (no intermediate object: each store of a new function into an object that
 * has been promoted costs a write barrier).
 */
let capturing: Pending | undefined;
function capture(resolve: (v: never) => void, reject: (e: Error) => void): void {
  const p = capturing as Pending;
  p.resolve = resolve as (v: unknown) => void;
  p.reject = reject;
}

/** GET (FULL) VARIABLE: `result=1 (value)` when set, `result=0` when not. */
function variableValue(r: AgiReply): string | undefined {
  return r.result === 1 ? (r.data ?? '') : undefined;
}

/** Length of `<path>.wav` when it is a local PCM WAV (from its header), else undefined. */
async function localWavDurationMs(pathWithoutExt: string): Promise<number | undefined> {
  let fh: import('fs').promises.FileHandle | undefined;
  try {
    fh = await fsp.open(`${pathWithoutExt}.wav`, 'r');
    const head = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const st = await fh.stat();
    const w = wavHeaderInfo(head.subarray(0, bytesRead), st.size);
    return w && w.byteRate ? Math.round((w.dataBytes * 1000) / w.byteRate) : undefined;
  } catch {
    return undefined;
  } finally {
    await fh?.close().catch(() => undefined);
  }
}
