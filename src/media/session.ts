/**
 * A call's live media in stream mode: what the caller says arrives as 20 ms frames from AudioSocket
 * and is cut into utterances by the endpointer; what we say is sent as paced 20 ms frames; caller
 * speech during our playback stops it (barge-in) and becomes the next utterance.
 *
 * Audio never leaves this object: nodes see utterance ids, text and timings (msg carries no audio).
 * Times: `streamMs` counts received audio (frames x 20 ms, the caller's clock); wall times are
 * performance.now() values of this process.
 */
import { EventEmitter } from 'events';
import { performance } from 'perf_hooks';
import type { AudioSocketConnection } from './audiosocket';
import { FRAME_MS, FRAME_SAMPLES } from './audiosocket';
import { pacer, type PacedSource } from './pacer';
import type { EndpointEvent } from './endpointer';
import type { EarlyTranscript, LiveSttProvider, LiveTranscript } from './live-stt';
import type { SttStream } from '../speech/stt-vosk';
import type { Transcript } from '../speech/stt';

export type { EndpointEvent };

/** What the session needs of an endpointer (src/media/endpointer.ts's Endpointer; tests may pass a double). */
export interface MediaEndpointer {
  /** One 20 ms frame of the caller, with the frame we were sending at the time (echo gate), or null. */
  push(frame: Int16Array, playing?: Int16Array | null): EndpointEvent[];
  isSpeaking(): boolean;
  reset(): void;
  /** Free what it holds (the VAD's WASM memory). */
  close?(): void;
  /** The current speech so far, pre-roll included (fed to a live recogniser at speech start). */
  speechAudio?(): Int16Array;
  /** End the current speech now (a key ended the turn). */
  flush?(): EndpointEvent | undefined;
}

/** Barge-in policy: `on`, `off`, or only once this much of a prompt has played (ms). */
export type BargeIn = 'on' | 'off' | { afterMs: number };

export function parseBargeIn(v: unknown, fallback: BargeIn = 'on'): BargeIn {
  if (v === 'on' || v === true) return 'on';
  if (v === 'off' || v === false) return 'off';
  if (typeof v === 'object' && v && typeof (v as { afterMs?: unknown }).afterMs === 'number')
    return { afterMs: Math.max(0, (v as { afterMs: number }).afterMs) };
  if (typeof v === 'string') {
    const m = /^after\s*(\d+(?:\.\d+)?)\s*(ms|s)?$/i.exec(v.trim());
    if (m) return { afterMs: Math.round(Number(m[1]) * (m[2]?.toLowerCase() === 'ms' ? 1 : 1000)) };
  }
  return fallback;
}

export interface CapturedUtterance {
  id: string;
  /** Stream times of the speech, ms. */
  startMs: number;
  endMs: number;
  audio: Int16Array;
  /** `dtmf`: a key that ends the turn was pressed (the audio is what was said until then, maybe none). */
  reason: 'silence' | 'max' | 'dtmf';
  /** The key that ended it (escape digits of the listener). */
  digit?: string;
  /** The live transcription of this utterance, when an engine was fed while the caller spoke. */
  live?: LiveTranscript;
  /**
   * Its early transcription: asked when the caller paused (the endpointer's `pause`), kept because the turn
   * ended on that same speech (src/media/live-stt.ts).
   */
  early?: EarlyTranscript;
  /** Silence waited after the speech before the endpointer decided, ms. */
  endpointMs: number;
  /** Wall time (performance.now) the caller stopped speaking. */
  speechEndAt: number;
  /** Wall time the utterance was decided. */
  decidedAt: number;
  /** True when it began while we were playing (it barged in). */
  bargedIn: boolean;
  /** Simulator only: the text the simulated callee said (see src/media/sim-text.ts). */
  simText?: string;
}

export interface PlayResult {
  /** Audio sent, ms. */
  playedMs: number;
  /** Audio there was to send, ms (what was known when it stopped). */
  totalMs: number;
  interrupted: boolean;
  /** Wall time of the first frame on the wire (undefined: nothing was sent). */
  firstFrameAt?: number;
  /** Barge-in: detection to the last frame sent, ms. */
  bargeInStopMs?: number;
  /** A key (of the escape digits) stopped it. */
  digit?: string;
  hungUp: boolean;
}

export interface MediaSessionOptions {
  endpointer: MediaEndpointer;
  bargeIn?: BargeIn;
  /** Look up what a simulated callee said between two stream times (simulator runs only). */
  simText?: (uuid: string, startMs: number, endMs: number) => string | undefined;
  /**
   * Who transcribes the caller's speech (src/media/live-stt.ts): live (`open`), asked at each speech
   * start, or early (`early`), asked when the caller pauses.
   */
  liveStt?: (want: 'open' | 'early') => LiveSttProvider | undefined;
}

const NO_SAMPLES = new Int16Array(0);

let uttCounter = 0;
let replyCounter = 0;

/**
 * A reply still being generated (stream mode): llm-turn hands its text on piece by piece, so tts-speak
 * speaks the first sentence while the LLM writes the rest; `final` is the whole decision.
 */
export interface StreamedReply {
  text: AsyncIterable<string>;
  final: Promise<{
    text: string;
    done: boolean;
    action?: { type: string; [key: string]: unknown };
    source?: string;
    engine: string;
    llmMs: number;
    llmFirstTokenMs?: number;
  }>;
}

/** A unit of reply audio: samples, or chunks as they come (a sentence at a time, an engine's stream). */
export type ReplyAudio = Int16Array | AsyncIterable<Int16Array>;

export class MediaSession extends EventEmitter {
  private streamMs = 0;
  private readonly utterances: CapturedUtterance[] = [];
  private waiter?: (u: CapturedUtterance | undefined) => void;
  private rest: Int16Array = NO_SAMPLES;
  private playing?: Playback;
  private _closed = false;
  private speechStartDuringPlay = false;
  bargeIn: BargeIn;
  /** Time the hand-off took (EXEC to connected), ms. */
  handOffMs?: number;
  /** Digits the caller pressed since a listener last took them, in order. */
  readonly digits: string[] = [];
  /** The live recognition of the speech in progress. */
  private live?: { stream: SttStream; t: LiveTranscript };
  /** The early transcription of the speech in progress (the caller paused), with the bounds it covers. */
  private early?: { t: EarlyTranscript; startMs: number; endMs: number; ctl: AbortController };
  /** Escape digits of the listener waiting now (a key among them ends its turn). */
  private escape = '';
  /** Wall time (Date.now) the flow last asked this media for something (the idle watchdog's clock). */
  private lastFlowAt = Date.now();
  /** Requests of the flow under way (a listen, a playback). */
  private flowBusy = 0;
  /** The msg.call the flow last passed (partial results sent to the flow carry it). */
  flowCall?: object;

  constructor(
    readonly conn: AudioSocketConnection,
    private readonly opts: MediaSessionOptions,
  ) {
    super();
    this.bargeIn = opts.bargeIn ?? 'on';
    conn.on('audio', (s: Int16Array) => this.onAudio(s));
    conn.on('dtmf', (d: string) => this.onDtmf(d));
    conn.on('close', () => this.onClose());
    conn.start();
  }

  get uuid(): string {
    return this.conn.uuid;
  }

  get closed(): boolean {
    return this._closed;
  }

  /** Received audio so far, ms of the caller's clock. */
  get receivedMs(): number {
    return this.streamMs;
  }

  get isPlaying(): boolean {
    return this.playing !== undefined;
  }

  /** The flow asked for something (a node read or used this media): the idle watchdog's clock restarts. */
  touch(call?: object): void {
    this.lastFlowAt = Date.now();
    if (call) this.flowCall = call;
  }

  /** How long the flow has asked nothing of this media, ms (0 while a listen or a playback it asked for runs). */
  get idleMs(): number {
    return this.flowBusy > 0 ? 0 : Date.now() - this.lastFlowAt;
  }

  private busy<T>(p: Promise<T>): Promise<T> {
    this.flowBusy++;
    this.touch();
    return p.finally(() => {
      this.flowBusy--;
      this.touch();
    });
  }

  // ------------------------------------------------------------------ capture

  private onAudio(samples: Int16Array): void {
    // re-frame to exactly 160 samples (Asterisk may send other frame sizes)
    if (samples.length === FRAME_SAMPLES && this.rest.length === 0) {
      this.onFrame(samples);
      return;
    }
    let buf = samples;
    if (this.rest.length) {
      buf = new Int16Array(this.rest.length + samples.length);
      buf.set(this.rest);
      buf.set(samples, this.rest.length);
    }
    let off = 0;
    for (; off + FRAME_SAMPLES <= buf.length; off += FRAME_SAMPLES)
      this.onFrame(buf.subarray(off, off + FRAME_SAMPLES));
    this.rest = off === buf.length ? NO_SAMPLES : buf.slice(off);
  }

  private onFrame(frame: Int16Array): void {
    this.streamMs += FRAME_MS;
    // the frame we were sending meanwhile lets the endpointer tell our echo from the caller
    const events = this.opts.endpointer.push(frame, this.playing ? this.lastSent : null);
    // speech under way: the live recogniser hears it as it comes
    this.live?.stream.write(frame);
    for (const ev of events) {
      if (ev.kind === 'speech_start') this.onSpeechStart(ev.atMs);
      else if (ev.kind === 'pause') this.startEarly(ev);
      else if (ev.kind === 'resume') this.dropEarly();
      else this.onUtterance(ev);
    }
  }

  private onDtmf(d: string): void {
    this.digits.push(d);
    if (this.digits.length > 64) this.digits.shift();
    this.emit('dtmf', d);
    if (this.playing?.escape.includes(d)) this.playing.stop('dtmf', d);
    if (!this.waiter || !this.escape.includes(d)) return;
    // a key that ends the turn: what was said until now (cut here), or an empty turn
    const ev = this.opts.endpointer.isSpeaking() ? this.opts.endpointer.flush?.() : undefined;
    if (ev?.kind === 'utterance') this.onUtterance(ev, d);
    else
      this.onUtterance(
        { kind: 'utterance', startMs: this.streamMs, endMs: this.streamMs, audio: new Int16Array(0), reason: 'dtmf' },
        d,
      );
  }

  /** Open a live recognition of the speech that just started (the provider's engine streams). */
  private openLive(): void {
    this.live?.stream.abort();
    this.live = undefined;
    const p = this.opts.liveStt?.('open');
    if (!p?.open) return;
    const t: LiveTranscript = { engine: p.engine, result: Promise.resolve({ text: '' }), partials: 0 };
    let stream: SttStream | undefined;
    try {
      stream = p.open({
        sessionId: this.conn.binding.sessionId ?? this.uuid,
        call: this.flowCall,
        onPartial: () => {
          t.partials++;
        },
      });
    } catch (err) {
      this.emit('liveError', err);
    }
    if (!stream) return;
    this.live = { stream, t };
    const pre = this.opts.endpointer.speechAudio?.();
    if (pre?.length) stream.write(pre);
  }

  /**
   * The caller paused: the speech so far goes to the early transcriber (unless it is fed live), its result
   * is kept in case the turn ends on this same speech.
   */
  private startEarly(ev: Extract<EndpointEvent, { kind: 'pause' }>): void {
    this.dropEarly();
    if (this.live || !ev.audio.length) return;
    const p = this.opts.liveStt?.('early');
    if (!p?.early) return;
    const ctl = new AbortController();
    let result: Promise<Transcript>;
    try {
      result = p.early(ev.audio, {
        sessionId: this.conn.binding.sessionId ?? this.uuid,
        call: this.flowCall,
        simText: this.opts.simText?.(this.uuid, ev.startMs, ev.endMs),
        signal: ctl.signal,
      });
    } catch (err) {
      result = Promise.reject(err);
    }
    result.catch(() => undefined); // observed by whoever takes the utterance, or dropped
    this.early = { t: { by: p, result, startedAt: performance.now() }, startMs: ev.startMs, endMs: ev.endMs, ctl };
    this.emit('early', { startMs: ev.startMs, endMs: ev.endMs });
  }

  /** The caller spoke again (or the utterance ended otherwise): the early transcription is not of it. */
  private dropEarly(): void {
    const e = this.early;
    if (!e) return;
    this.early = undefined;
    e.ctl.abort(new Error('the caller spoke again'));
    this.emit('earlyDropped', { startMs: e.startMs, endMs: e.endMs });
  }

  /** The utterance ended: the early transcription goes with it if it covers the same speech. */
  private takeEarly(ev: Extract<EndpointEvent, { kind: 'utterance' }>): EarlyTranscript | undefined {
    const e = this.early;
    if (!e) return undefined;
    if (ev.reason === 'silence' && ev.startMs === e.startMs && ev.endMs === e.endMs) {
      this.early = undefined;
      return e.t;
    }
    this.dropEarly();
    return undefined;
  }

  /** The utterance ended: the live recogniser gets the end of stream; its final result goes with the utterance. */
  private endLive(): LiveTranscript | undefined {
    const l = this.live;
    this.live = undefined;
    if (!l) return undefined;
    l.t.result = l.stream.end().then((r) => {
      l.t.finalAt = performance.now();
      return r;
    });
    l.t.result.catch(() => undefined); // observed by whoever reads the utterance
    return l.t;
  }

  private onSpeechStart(atMs: number): void {
    const now = performance.now();
    this.openLive();
    this.emit('speech_start', { atMs, at: now });
    const p = this.playing;
    if (!p) return;
    this.speechStartDuringPlay = true;
    if (!p.bargeIn || !bargeAllowed(this.bargeIn, p.sentMs())) return;
    p.interrupt(now);
  }

  private onUtterance(ev: Extract<EndpointEvent, { kind: 'utterance' }>, digit?: string): void {
    const decidedAt = performance.now();
    const live = ev.audio.length ? this.endLive() : undefined;
    const early = this.takeEarly(ev);
    const endpointMs = Math.max(0, this.streamMs - ev.endMs);
    const u: CapturedUtterance = {
      id: `u${(++uttCounter).toString(36)}`,
      startMs: ev.startMs,
      endMs: ev.endMs,
      audio: ev.audio,
      reason: ev.reason,
      endpointMs,
      speechEndAt: decidedAt - endpointMs,
      decidedAt,
      bargedIn: this.speechStartDuringPlay,
    };
    if (live) u.live = live;
    if (early) u.early = early;
    if (digit !== undefined) u.digit = digit;
    this.speechStartDuringPlay = false;
    const sim = this.opts.simText?.(this.uuid, ev.startMs, ev.endMs);
    if (sim !== undefined) u.simText = sim;
    this.emit('utterance', u);
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w(u);
    } else {
      this.utterances.push(u);
      if (this.utterances.length > 20) this.utterances.shift();
    }
  }

  /**
   * The caller's next utterance: one already captured (e.g. the speech that barged in), else the next
   * one. Resolves undefined when the media ends, or after `timeoutMs` with no utterance (no input).
   */
  nextUtterance(
    opts: { timeoutMs?: number; signal?: AbortSignal; escapeDigits?: string } = {},
  ): Promise<CapturedUtterance | undefined> {
    this.escape = opts.escapeDigits ?? '';
    return this.busy(this.waitUtterance(opts)).then((u) => {
      this.escape = '';
      if (u) {
        // kept for the stages after it (stt-transcribe reads the audio by id; tts-speak the timing)
        this.kept.set(u.id, u);
        if (this.kept.size > 4) this.kept.delete(this.kept.keys().next().value as string);
      }
      return u;
    });
  }

  private readonly replies = new Map<string, StreamedReply>();

  /** Park a reply being generated; its id travels in msg (msg.reply.streamId). */
  offerReply(r: StreamedReply): string {
    this.touch();
    const id = `r${(++replyCounter).toString(36)}`;
    this.replies.set(id, r);
    if (this.replies.size > 4) this.replies.delete(this.replies.keys().next().value as string);
    return id;
  }

  /** Take a parked reply (once). */
  takeReply(id: unknown): StreamedReply | undefined {
    if (typeof id !== 'string') return undefined;
    this.touch();
    const r = this.replies.get(id);
    this.replies.delete(id);
    return r;
  }

  /** An utterance handed out by nextUtterance (the last few are kept), by id. */
  utterance(id: unknown): CapturedUtterance | undefined {
    this.touch();
    return typeof id === 'string' ? this.kept.get(id) : undefined;
  }

  private readonly kept = new Map<string, CapturedUtterance>();

  private waitUtterance(opts: { timeoutMs?: number; signal?: AbortSignal }): Promise<CapturedUtterance | undefined> {
    const q = this.utterances.shift();
    if (q) return Promise.resolve(q);
    if (this._closed) return Promise.resolve(undefined);
    if (this.waiter) return Promise.reject(new Error('another nextUtterance() is already waiting'));
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (u: CapturedUtterance | undefined) => {
        if (timer) clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        if (this.waiter === done) this.waiter = undefined;
        resolve(u);
      };
      const onAbort = () => done(undefined);
      if (opts.timeoutMs && opts.timeoutMs > 0) {
        // no input: unless the caller is speaking right now (then wait for the end of it)
        const tick = () => {
          if (this.opts.endpointer.isSpeaking()) timer = setTimeout(tick, 100);
          else done(undefined);
        };
        timer = setTimeout(tick, opts.timeoutMs);
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.waiter = done;
    });
  }

  /** The keys pressed since they were last taken, as a string (and forget them). */
  takeDigits(): string {
    const d = this.digits.join('');
    this.digits.length = 0;
    return d;
  }

  /** Captured utterances waiting to be read. */
  get queued(): number {
    return this.utterances.length;
  }

  // ----------------------------------------------------------------- playback

  /**
   * Play `audio` (8 kHz samples, or chunks as they are produced) as paced 20 ms frames. Resolves when
   * it has all been sent, barge-in stopped it, `stop()` was called, or the media ended.
   */
  play(
    audio: ReplyAudio,
    opts: { signal?: AbortSignal; bargeIn?: boolean; escapeDigits?: string } = {},
  ): Promise<PlayResult> {
    if (this._closed) return Promise.resolve({ playedMs: 0, totalMs: 0, interrupted: false, hungUp: true });
    if (this.playing) this.playing.stop('replaced');
    const p = new Playback(this, audio, opts.bargeIn !== false, opts.escapeDigits ?? '');
    this.playing = p;
    this.speechStartDuringPlay = false;
    const onAbort = () => p.stop('aborted');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    return this.busy(p.done).finally(() => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (this.playing === p) this.playing = undefined;
    });
  }

  /** Resolves when nothing is playing any more (at once when nothing is; a play started meanwhile is waited for too). */
  async whenQuiet(): Promise<void> {
    for (let p = this.playing; p && !this._closed; p = this.playing === p ? undefined : this.playing) await p.done;
  }

  /** Stop what is playing now. */
  stop(): void {
    this.playing?.stop('stopped');
  }

  /** End the media: Asterisk's AudioSocket() returns and the AGI session gets control back. */
  end(): void {
    this.playing?.stop('ended');
    this.conn.hangup();
  }

  private lastSent: Int16Array | null = null;

  /** @internal the player's way out */
  send(frame: Int16Array): boolean {
    this.lastSent = frame;
    return this.conn.sendAudio(frame);
  }

  private onClose(): void {
    if (this._closed) return;
    this._closed = true;
    this.playing?.stop('hangup');
    this.live?.stream.abort();
    this.live = undefined;
    this.dropEarly();
    this.opts.endpointer.close?.();
    const w = this.waiter;
    this.waiter = undefined;
    w?.(undefined);
    this.emit('close');
  }
}

function bargeAllowed(policy: BargeIn, playedMs: number): boolean {
  if (policy === 'on') return true;
  if (policy === 'off') return false;
  return playedMs >= policy.afterMs;
}

/** One reply being played: pulls audio from its source, hands 20 ms frames to the shared pacer. */
class Playback implements PacedSource {
  readonly done: Promise<PlayResult>;
  private resolve!: (r: PlayResult) => void;
  private buf: Int16Array = new Int16Array(0);
  private bufOff = 0;
  private ended = false;
  private finished = false;
  private pulling = false;
  private iter?: AsyncIterator<Int16Array>;
  private sent = 0;
  private known = 0;
  private firstFrameAt?: number;
  private interruptedAt?: number;
  private lastSentAt = 0;
  private stopReason?: string;

  constructor(
    private readonly media: MediaSession,
    audio: ReplyAudio,
    /** The caller's speech may stop it (the session's barge-in policy permitting). */
    readonly bargeIn = true,
    /** Keys that stop it. */
    readonly escape = '',
  ) {
    this.done = new Promise((r) => (this.resolve = r));
    if (audio instanceof Int16Array) {
      this.buf = audio;
      this.known = audio.length;
      this.ended = true;
    } else {
      this.iter = audio[Symbol.asyncIterator]();
    }
    pacer.add(this);
    if (this.iter) void this.pull();
    else this.tick(performance.now());
  }

  sentMs(): number {
    return (this.sent * 1000) / 8000;
  }

  private async pull(): Promise<void> {
    const it = this.iter;
    if (!it || this.pulling || this.ended) return;
    this.pulling = true;
    try {
      // keep up to ~200 ms buffered ahead of the pacer
      while (!this.finished && this.buf.length - this.bufOff < 1600) {
        const r = await it.next();
        if (r.done) {
          this.ended = true;
          break;
        }
        if (r.value.length === 0) continue;
        const rest = this.buf.subarray(this.bufOff);
        const merged = new Int16Array(rest.length + r.value.length);
        merged.set(rest);
        merged.set(r.value, rest.length);
        this.buf = merged;
        this.bufOff = 0;
        this.known += r.value.length;
        // the first audio goes on the wire now, not at the next shared tick (up to 20 ms later)
        if (this.firstFrameAt === undefined && this.buf.length >= FRAME_SAMPLES) this.tick(performance.now());
      }
    } catch (err) {
      this.ended = true;
      this.media.emit('playError', err);
    } finally {
      this.pulling = false;
    }
    if (this.ended && this.buf.length - this.bufOff === 0) this.finish();
  }

  /** Called by the pacer every 20 ms: send one frame; false when this playback is over. */
  tick(now: number): boolean {
    if (this.finished) return false;
    const avail = this.buf.length - this.bufOff;
    if (avail >= FRAME_SAMPLES || (this.ended && avail > 0)) {
      const n = Math.min(FRAME_SAMPLES, avail);
      let frame = this.buf.subarray(this.bufOff, this.bufOff + n);
      if (n < FRAME_SAMPLES) {
        const full = new Int16Array(FRAME_SAMPLES);
        full.set(frame);
        frame = full;
      }
      this.bufOff += n;
      if (!this.media.send(frame)) {
        this.stop('hangup');
        return false;
      }
      if (this.firstFrameAt === undefined) {
        this.firstFrameAt = now;
        this.media.emit('firstFrame', now);
      }
      this.lastSentAt = now;
      this.sent += n;
    }
    if (this.iter && !this.ended && this.buf.length - this.bufOff < 1600) void this.pull();
    if (this.ended && this.buf.length - this.bufOff === 0) {
      this.finish();
      return false;
    }
    return true;
  }

  interrupt(at: number): void {
    if (this.finished) return;
    this.interruptedAt = at;
    this.stop('barge_in');
  }

  stop(reason: string, digit?: string): void {
    if (this.finished) return;
    this.stopReason = reason;
    this.digit = digit;
    this.finish();
  }

  private digit?: string;

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    pacer.remove(this);
    if (this.iter && !this.ended) void this.iter.return?.().catch(() => undefined);
    const r: PlayResult = {
      playedMs: Math.round(this.sentMs()),
      totalMs: Math.round((this.known * 1000) / 8000),
      interrupted: this.stopReason === 'barge_in',
      hungUp: this.stopReason === 'hangup' || this.media.closed,
    };
    if (this.firstFrameAt !== undefined) r.firstFrameAt = this.firstFrameAt;
    if (this.digit !== undefined) r.digit = this.digit;
    if (this.interruptedAt !== undefined)
      r.bargeInStopMs = Math.max(
        0,
        Math.round(((this.lastSentAt || this.interruptedAt) - this.interruptedAt) * 10) / 10,
      );
    this.resolve(r);
  }
}
