/**
 * Wyoming protocol client (the protocol of Home Assistant's voice stack: `rhasspy/wyoming-piper`,
 * `rhasspy/wyoming-whisper`, wyoming-vosk, ...), written from the protocol description.
 *
 * An event on the wire is:
 *   1. a header: one line of UTF-8 JSON ending in `\n`:
 *      `{"type": "...", "data": {...}?, "data_length": N?, "payload_length": N?, "version": "..."?}`
 *   2. `data_length` bytes of UTF-8 JSON (an object), merged over the header's inline `data` (1.x servers
 *      may put the data in the header itself);
 *   3. `payload_length` bytes of binary payload (PCM audio for `audio-chunk`).
 *
 * Used here: `describe` -> `info`; `synthesize` {text, voice: {name, language, speaker}} -> `audio-start`
 * {rate, width, channels}, `audio-chunk` (same + PCM payload) ..., `audio-stop`; `transcribe` {name,
 * language} + `audio-start` + `audio-chunk`s + `audio-stop` -> `transcript` {text}; `error` {text, code}
 * from either side.
 *
 * One TCP connection per request (what the servers expect: they keep no state between requests). Every
 * request has one deadline covering connect and all reads, honours an AbortSignal, and caps what it reads
 * (header line, data, payload, total audio) so a broken or hostile server cannot exhaust memory. Failures
 * are StageErrors: `network` (cannot connect, reset, aborted), `timeout`, `bad_response` (malformed event,
 * connection closed mid-answer, unexpected audio format, error event), `not_found` (the server says the
 * voice or model does not exist), `not_configured` (bad host/port).
 *
 * Synthesis delivers audio INCREMENTALLY (`synthesizeStream` is an async iterator of PCM chunks as the
 * server sends them) so a streaming playback mode can forward each chunk to the caller as it arrives;
 * `WyomingTtsEngine.synthesize` (record mode) collects them into one WAV for the cache.
 */
import net from 'net';
import { StageError, errorMessage, type FailureKind, type Stage } from '../util/errors';
import { encodeWav } from '../audio/wav';
import type { SynthOptions, TtsEngine } from './tts';
import type { SttEngine, SttRequest } from './stt';

/** Version written into the headers we send (the protocol line this client follows). */
export const WYOMING_VERSION = '1.5.0';

export interface WyomingEvent {
  type: string;
  /** Header `data` merged with the data section (empty object when there is none). */
  data: Record<string, unknown>;
  /** Binary payload (audio), when there is one. */
  payload?: Buffer;
}

export interface WyomingLimits {
  /** Longest header line, bytes (default 64 KiB). */
  maxHeaderBytes: number;
  /** Largest data section, bytes (default 1 MiB; `info` of a server with many voices is the big one). */
  maxDataBytes: number;
  /** Largest payload of one event, bytes (default 16 MiB). */
  maxPayloadBytes: number;
  /** Most events in one answer (default 100000; Piper's 64 MiB audio cap is about 33000 chunks). */
  maxEvents: number;
}

export const DEFAULT_LIMITS: WyomingLimits = {
  maxHeaderBytes: 64 * 1024,
  maxDataBytes: 1024 * 1024,
  maxPayloadBytes: 16 * 1024 * 1024,
  maxEvents: 100_000,
};

/** Events queued unread before the socket is paused (backpressure to the server for slow stream readers). */
const PAUSE_AT = 64;
const RESUME_AT = 16;

/** Encode one event: header line (with data_length / payload_length), data JSON, payload. */
export function encodeEvent(type: string, data?: Record<string, unknown>, payload?: Buffer): Buffer {
  const header: Record<string, unknown> = { type, version: WYOMING_VERSION };
  const dataBuf = data && Object.keys(data).length ? Buffer.from(JSON.stringify(data), 'utf8') : undefined;
  if (dataBuf) header.data_length = dataBuf.length;
  if (payload && payload.length) header.payload_length = payload.length;
  const parts: Buffer[] = [Buffer.from(JSON.stringify(header) + '\n', 'utf8')];
  if (dataBuf) parts.push(dataBuf);
  if (payload && payload.length) parts.push(payload);
  return Buffer.concat(parts);
}

/** A protocol violation by the peer (becomes a `bad_response` StageError). */
export class WyomingProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WyomingProtocolError';
  }
}

function lengthField(header: Record<string, unknown>, name: string, max: number): number {
  const v = header[name];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new WyomingProtocolError(`${name} is not a whole number >= 0 (${JSON.stringify(v)})`);
  if (v > max) throw new WyomingProtocolError(`${name} ${v} exceeds the limit of ${max} bytes`);
  return v;
}

/**
 * Incremental event parser: `push` bytes as they arrive, get back the complete events. Throws
 * WyomingProtocolError on a malformed event or a limit exceeded (the stream cannot be resynchronised
 * after that: close the connection).
 */
export class EventParser {
  private buf: Buffer = Buffer.alloc(0);
  private pending?: { type: string; data: Record<string, unknown>; dataLength: number; payloadLength: number };
  private readonly limits: WyomingLimits;

  constructor(limits: Partial<WyomingLimits> = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  /** True while part of an event has been read but not all of it. */
  get midEvent(): boolean {
    return this.pending !== undefined || this.buf.length > 0;
  }

  push(chunk: Buffer): WyomingEvent[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: WyomingEvent[] = [];
    for (;;) {
      if (!this.pending) {
        const nl = this.buf.indexOf(0x0a);
        if (nl < 0) {
          if (this.buf.length > this.limits.maxHeaderBytes)
            throw new WyomingProtocolError(`header line longer than ${this.limits.maxHeaderBytes} bytes`);
          return out;
        }
        if (nl > this.limits.maxHeaderBytes)
          throw new WyomingProtocolError(`header line longer than ${this.limits.maxHeaderBytes} bytes`);
        const line = this.buf.subarray(0, nl).toString('utf8').trim();
        this.buf = this.buf.subarray(nl + 1);
        if (!line) continue; // tolerate blank lines between events
        let header: unknown;
        try {
          header = JSON.parse(line);
        } catch {
          throw new WyomingProtocolError(`header is not JSON: ${line.slice(0, 80)}`);
        }
        if (!header || typeof header !== 'object' || Array.isArray(header))
          throw new WyomingProtocolError('header is not a JSON object');
        const h = header as Record<string, unknown>;
        if (typeof h.type !== 'string' || !h.type) throw new WyomingProtocolError('header has no event type');
        const inline = h.data;
        if (inline !== undefined && inline !== null && (typeof inline !== 'object' || Array.isArray(inline)))
          throw new WyomingProtocolError(`"data" of ${h.type} is not an object`);
        this.pending = {
          type: h.type,
          data: { ...((inline as Record<string, unknown> | null) ?? {}) },
          dataLength: lengthField(h, 'data_length', this.limits.maxDataBytes),
          payloadLength: lengthField(h, 'payload_length', this.limits.maxPayloadBytes),
        };
      }
      const p = this.pending;
      if (this.buf.length < p.dataLength + p.payloadLength) return out;
      if (p.dataLength > 0) {
        const text = this.buf.subarray(0, p.dataLength).toString('utf8');
        let data: unknown;
        try {
          data = JSON.parse(text);
        } catch {
          throw new WyomingProtocolError(`data of ${p.type} is not JSON (data_length ${p.dataLength} wrong?)`);
        }
        if (!data || typeof data !== 'object' || Array.isArray(data))
          throw new WyomingProtocolError(`data of ${p.type} is not a JSON object`);
        Object.assign(p.data, data);
      }
      const ev: WyomingEvent = { type: p.type, data: p.data };
      if (p.payloadLength > 0) {
        // copy: the receive buffer is reused by later pushes
        ev.payload = Buffer.from(this.buf.subarray(p.dataLength, p.dataLength + p.payloadLength));
      }
      this.buf = this.buf.subarray(p.dataLength + p.payloadLength);
      this.pending = undefined;
      out.push(ev);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// connection

export interface WyomingEndpoint {
  host: string;
  port: number;
}

export interface RequestOptions {
  /** Deadline for the whole request (connect, send, every read), ms. */
  timeoutMs: number;
  signal?: AbortSignal;
  limits?: Partial<WyomingLimits>;
}

/** Check a host/port pair from settings; throws not_configured. */
export function checkEndpoint(stage: Stage, engine: string, host: string, port: number | string): WyomingEndpoint {
  const h = String(host ?? '').trim();
  if (/^[^:[\]]+:\d+$/.test(h))
    throw new StageError(stage, 'not_configured', `Wyoming host "${h}" carries a port: set the port separately`, {
      engine,
    });
  // a DNS name or IPv4 address, or an IPv6 address (brackets optional); no scheme, user, path or port
  if (!/^([A-Za-z0-9]([A-Za-z0-9_.-]{0,252})|\[?[0-9A-Fa-f:.]+\]?)$/.test(h) || !/[^:]/.test(h))
    throw new StageError(stage, 'not_configured', `Wyoming host must be a host name or address (got "${h}")`, {
      engine,
    });
  const p = typeof port === 'number' ? port : Number(String(port ?? '').trim());
  if (!Number.isInteger(p) || p < 1 || p > 65535)
    throw new StageError(stage, 'not_configured', `Wyoming port must be 1-65535 (got "${port}")`, { engine });
  return { host: h.replace(/^\[(.*)\]$/, '$1'), port: p };
}

/**
 * One connection, one request. `next()` resolves with the next event; it rejects with a StageError when
 * the deadline passes, the signal aborts, the peer breaks the protocol or closes the connection.
 */
export class WyomingConnection {
  private readonly socket: net.Socket;
  private readonly parser: EventParser;
  private readonly queue: WyomingEvent[] = [];
  private readonly maxEvents: number;
  private received = 0;
  private paused = false;
  private waiter?: { resolve: (e: WyomingEvent) => void; reject: (e: StageError) => void };
  private failure?: StageError;
  private timer?: NodeJS.Timeout;
  private readonly onAbort: () => void;
  private readonly signal?: AbortSignal;
  readonly where: string;

  private constructor(
    socket: net.Socket,
    private readonly stage: Stage,
    private readonly engine: string,
    ep: WyomingEndpoint,
    opts: RequestOptions,
  ) {
    this.socket = socket;
    this.where = `${ep.host.includes(':') ? `[${ep.host}]` : ep.host}:${ep.port}`;
    this.parser = new EventParser(opts.limits);
    this.maxEvents = opts.limits?.maxEvents ?? DEFAULT_LIMITS.maxEvents;
    this.signal = opts.signal;
    this.onAbort = () => this.fail('network', `request to ${this.where} aborted`);
    this.timer = setTimeout(
      () => this.fail('timeout', `no complete answer from ${this.where} within ${opts.timeoutMs} ms`),
      opts.timeoutMs,
    );
    this.signal?.addEventListener('abort', this.onAbort, { once: true });
    socket.on('data', (chunk: Buffer) => {
      if (this.failure) return;
      let events: WyomingEvent[];
      try {
        events = this.parser.push(chunk);
      } catch (err) {
        this.fail('bad_response', `malformed event from ${this.where}: ${errorMessage(err)}`, err);
        return;
      }
      for (const ev of events) {
        if (++this.received > this.maxEvents) {
          this.fail('bad_response', `more than ${this.maxEvents} events from ${this.where} in one answer`);
          return;
        }
        this.deliver(ev);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) =>
      this.fail('network', `connection to ${this.where} failed: ${err.code ?? err.message}`, err),
    );
    socket.on('close', () =>
      this.fail(
        'bad_response',
        this.parser.midEvent
          ? `${this.where} closed the connection in the middle of an event`
          : `${this.where} closed the connection before the answer was complete`,
      ),
    );
  }

  /** Connect within the request's deadline. */
  static connect(stage: Stage, engine: string, ep: WyomingEndpoint, opts: RequestOptions): Promise<WyomingConnection> {
    return new Promise((resolve, reject) => {
      if (opts.signal?.aborted) {
        reject(new StageError(stage, 'network', `request to ${ep.host}:${ep.port} aborted`, { engine }));
        return;
      }
      const socket = net.connect({ host: ep.host, port: ep.port });
      socket.setNoDelay(true);
      const conn = new WyomingConnection(socket, stage, engine, ep, opts);
      const onErr = (e: StageError) => reject(e);
      conn.waiter = { resolve: () => undefined, reject: onErr };
      socket.once('connect', () => {
        conn.waiter = undefined;
        if (conn.failure) reject(conn.failure);
        else resolve(conn);
      });
    });
  }

  private deliver(ev: WyomingEvent): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(ev);
    } else {
      this.queue.push(ev);
      if (!this.paused && this.queue.length >= PAUSE_AT) {
        this.paused = true;
        this.socket.pause();
      }
    }
  }

  private fail(kind: FailureKind, message: string, cause?: unknown): void {
    if (this.failure) return;
    this.failure = new StageError(this.stage, kind, message, { engine: this.engine, cause });
    this.cleanup();
    this.socket.destroy();
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.reject(this.failure);
    }
  }

  private cleanup(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.signal?.removeEventListener('abort', this.onAbort);
  }

  send(type: string, data?: Record<string, unknown>, payload?: Buffer): void {
    if (this.failure) throw this.failure;
    this.socket.write(encodeEvent(type, data, payload));
  }

  /** The next event (queued ones first). */
  next(): Promise<WyomingEvent> {
    const queued = this.queue.shift();
    if (this.paused && this.queue.length <= RESUME_AT && !this.failure) {
      this.paused = false;
      this.socket.resume();
    }
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** Turn an `error` event from the server into a StageError (`not_found` for an unknown voice/model). */
  errorEvent(ev: WyomingEvent, what: string): StageError {
    const text = typeof ev.data.text === 'string' ? ev.data.text.slice(0, 300) : 'no text';
    const code = typeof ev.data.code === 'string' ? ev.data.code.slice(0, 80) : '';
    const unknown = /(not\s*found|unknown|no such|unable to (find|load)|does not exist|missing)/i.test(
      `${text} ${code}`,
    );
    const kind: FailureKind =
      unknown && /(voice|model|speaker|language)/i.test(`${text} ${code}`) ? 'not_found' : 'bad_response';
    return new StageError(
      this.stage,
      kind,
      `${this.where} answered ${what} with an error${code ? ` (${code})` : ''}: ${text}`,
      { engine: this.engine },
    );
  }

  /** Close the connection (idempotent); later `next()` calls reject. */
  close(): void {
    if (!this.failure) {
      this.failure = new StageError(this.stage, 'internal', 'connection closed by the client', { engine: this.engine });
    }
    this.cleanup();
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------
// describe / info

export interface WyomingVoice {
  name: string;
  languages: string[];
  speakers: string[];
  installed?: boolean;
}
export interface WyomingModel {
  name: string;
  languages: string[];
  installed?: boolean;
}
export interface WyomingInfo {
  /** TTS programs' voices, flattened. */
  voices: WyomingVoice[];
  /** ASR programs' models, flattened. */
  models: WyomingModel[];
  /** The raw `info` data. */
  raw: Record<string, unknown>;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

function parseInfo(data: Record<string, unknown>): WyomingInfo {
  const voices: WyomingVoice[] = [];
  const models: WyomingModel[] = [];
  for (const prog of Array.isArray(data.tts) ? data.tts : []) {
    for (const v of Array.isArray(prog?.voices) ? prog.voices : []) {
      if (!v || typeof v.name !== 'string') continue;
      const speakers = Array.isArray(v.speakers)
        ? v.speakers.map((s: unknown) => (s && typeof s === 'object' ? (s as { name?: unknown }).name : s))
        : [];
      voices.push({
        name: v.name,
        languages: strings(v.languages),
        speakers: strings(speakers),
        installed: typeof v.installed === 'boolean' ? v.installed : undefined,
      });
    }
  }
  for (const prog of Array.isArray(data.asr) ? data.asr : []) {
    for (const m of Array.isArray(prog?.models) ? prog.models : []) {
      if (!m || typeof m.name !== 'string') continue;
      models.push({
        name: m.name,
        languages: strings(m.languages),
        installed: typeof m.installed === 'boolean' ? m.installed : undefined,
      });
    }
  }
  return { voices, models, raw: data };
}

/** Ask a Wyoming server what it offers (`describe` -> `info`). */
export async function describe(
  stage: Stage,
  engine: string,
  ep: WyomingEndpoint,
  opts: RequestOptions,
): Promise<WyomingInfo> {
  const conn = await WyomingConnection.connect(stage, engine, ep, opts);
  try {
    conn.send('describe');
    for (;;) {
      const ev = await conn.next();
      if (ev.type === 'info') return parseInfo(ev.data);
      if (ev.type === 'error') throw conn.errorEvent(ev, 'describe');
      // anything else (a server may send e.g. a ping) is skipped
    }
  } finally {
    conn.close();
  }
}

// ---------------------------------------------------------------------------------------------------
// synthesize

export interface AudioFormat {
  rate: number;
  /** Bytes per sample (2 = 16-bit; the only width accepted). */
  width: number;
  channels: number;
}

export interface AudioChunk extends AudioFormat {
  /** Interleaved 16-bit little-endian PCM. */
  pcm: Buffer;
}

export interface SynthesizeRequest {
  text: string;
  voice?: string;
  speaker?: string;
  language?: string;
  /** Most audio bytes accepted for one synthesis (default 64 MiB). */
  maxAudioBytes?: number;
}

function audioFormat(stage: Stage, engine: string, where: string, ev: WyomingEvent): AudioFormat {
  const { rate, width, channels } = ev.data as { rate?: unknown; width?: unknown; channels?: unknown };
  const ok = (v: unknown, lo: number, hi: number) => typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
  if (!ok(rate, 1000, 192000) || !ok(width, 1, 4) || !ok(channels, 1, 8))
    throw new StageError(
      stage,
      'bad_response',
      `${ev.type} from ${where} has no valid audio format (rate ${String(rate)}, width ${String(width)}, channels ${String(channels)})`,
      { engine },
    );
  if (width !== 2)
    throw new StageError(stage, 'bad_response', `${where} sends ${Number(width) * 8}-bit audio; 16-bit expected`, {
      engine,
    });
  return { rate: rate as number, width: 2, channels: channels as number };
}

/**
 * Synthesize `req.text`; yields the audio chunk by chunk as the server sends it (for streaming), ends at
 * `audio-stop`. Closing the iterator early (break / return) closes the connection.
 */
export async function* synthesizeStream(
  engine: string,
  ep: WyomingEndpoint,
  req: SynthesizeRequest,
  opts: RequestOptions,
): AsyncGenerator<AudioChunk, void, void> {
  const stage: Stage = 'tts';
  const conn = await WyomingConnection.connect(stage, engine, ep, opts);
  const maxAudio = req.maxAudioBytes ?? 64 * 1024 * 1024;
  try {
    const voice: Record<string, unknown> = {};
    if (req.voice) voice.name = req.voice;
    if (req.language) voice.language = req.language;
    if (req.speaker) voice.speaker = req.speaker;
    const data: Record<string, unknown> = { text: req.text };
    if (Object.keys(voice).length) data.voice = voice;
    conn.send('synthesize', data);
    let format: AudioFormat | undefined;
    let total = 0;
    for (;;) {
      const ev = await conn.next();
      if (ev.type === 'error') throw conn.errorEvent(ev, `synthesize${req.voice ? ` (voice ${req.voice})` : ''}`);
      if (ev.type === 'audio-start') {
        format = audioFormat(stage, engine, conn.where, ev);
        continue;
      }
      if (ev.type === 'audio-chunk') {
        const f = audioFormat(stage, engine, conn.where, ev);
        if (format && (f.rate !== format.rate || f.channels !== format.channels))
          throw new StageError(
            stage,
            'bad_response',
            `${conn.where} changed the audio format mid-stream (${format.rate} Hz x${format.channels} -> ${f.rate} Hz x${f.channels})`,
            { engine },
          );
        format = f;
        const pcm = ev.payload ?? Buffer.alloc(0);
        if (pcm.length % (2 * f.channels) !== 0)
          throw new StageError(stage, 'bad_response', `audio chunk of ${pcm.length} bytes is not whole samples`, {
            engine,
          });
        total += pcm.length;
        if (total > maxAudio)
          throw new StageError(stage, 'bad_response', `more than ${maxAudio} bytes of audio for one text`, { engine });
        if (pcm.length) yield { ...f, pcm };
        continue;
      }
      if (ev.type === 'audio-stop') return;
      // other events (synthesize-stopped, ping, ...) are not part of this exchange: skip
    }
  } finally {
    conn.close();
  }
}

/** Synthesize and collect: one 16-bit PCM WAV at the server's rate. */
export async function synthesizeWav(
  engine: string,
  ep: WyomingEndpoint,
  req: SynthesizeRequest,
  opts: RequestOptions,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  let format: AudioFormat | undefined;
  for await (const c of synthesizeStream(engine, ep, req, opts)) {
    format = c;
    parts.push(c.pcm);
  }
  if (!format) throw new StageError('tts', 'bad_response', `no audio from ${ep.host}:${ep.port}`, { engine });
  const pcm = Buffer.concat(parts);
  const samples = new Int16Array(pcm.length / 2);
  for (let i = 0; i < samples.length; i++) samples[i] = pcm.readInt16LE(i * 2);
  return encodeWav({ sampleRate: format.rate, channels: format.channels, samples });
}

// ---------------------------------------------------------------------------------------------------
// transcribe

export interface TranscribeRequest {
  /** 16-bit mono PCM samples. */
  samples: Int16Array;
  rate: number;
  model?: string;
  language?: string;
  /** Bytes of PCM per audio-chunk (default 8000: half a second at 8 kHz). */
  chunkBytes?: number;
  onPartial?: (text: string) => void;
}

export async function transcribeWyoming(
  engine: string,
  ep: WyomingEndpoint,
  req: TranscribeRequest,
  opts: RequestOptions,
): Promise<{ text: string }> {
  const stage: Stage = 'stt';
  const conn = await WyomingConnection.connect(stage, engine, ep, opts);
  try {
    const t: Record<string, unknown> = {};
    if (req.model) t.name = req.model;
    if (req.language) t.language = req.language;
    conn.send('transcribe', t);
    const fmt = { rate: req.rate, width: 2, channels: 1 };
    conn.send('audio-start', { ...fmt, timestamp: 0 });
    const pcm = Buffer.from(req.samples.buffer, req.samples.byteOffset, req.samples.byteLength);
    const chunk = Math.max(320, req.chunkBytes ?? 8000) & ~1;
    for (let off = 0; off < pcm.length; off += chunk) {
      const ms = Math.round((off / 2 / req.rate) * 1000);
      conn.send('audio-chunk', { ...fmt, timestamp: ms }, pcm.subarray(off, Math.min(pcm.length, off + chunk)));
    }
    conn.send('audio-stop', { timestamp: Math.round((pcm.length / 2 / req.rate) * 1000) });
    let partial = '';
    for (;;) {
      const ev = await conn.next();
      if (ev.type === 'transcript') {
        const text = ev.data.text;
        if (text !== undefined && text !== null && typeof text !== 'string')
          throw new StageError(stage, 'bad_response', `transcript text from ${conn.where} is not a string`, { engine });
        return { text: typeof text === 'string' ? text : partial };
      }
      if (ev.type === 'error') throw conn.errorEvent(ev, `transcribe${req.model ? ` (model ${req.model})` : ''}`);
      if (ev.type === 'transcript-chunk' && typeof ev.data.text === 'string') {
        partial += ev.data.text;
        if (partial.trim()) req.onPartial?.(partial.trim());
      }
      // transcript-start and anything else: skip
    }
  } finally {
    conn.close();
  }
}

// ---------------------------------------------------------------------------------------------------
// engines

export interface WyomingTtsOptions {
  host: string;
  port: number | string;
  /** Voice name (e.g. `en_US-lessac-medium`); empty: the server's default voice. */
  voice?: string;
  speaker?: string;
  language?: string;
}

export class WyomingTtsEngine implements TtsEngine {
  readonly name = 'wyoming';
  readonly voice: string;
  readonly identity: string;
  readonly endpoint: WyomingEndpoint;
  private readonly opts: WyomingTtsOptions;

  constructor(opts: WyomingTtsOptions) {
    this.opts = opts;
    this.endpoint = checkEndpoint('tts', this.name, opts.host, opts.port);
    this.voice = opts.voice ?? '';
    // The server is part of the identity: two servers may have different voices under one name.
    this.identity = `wyoming|${this.endpoint.host}:${this.endpoint.port}|${opts.voice ?? ''}|${opts.speaker ?? ''}|${opts.language ?? ''}`;
  }

  private request(text: string): SynthesizeRequest {
    return { text, voice: this.opts.voice, speaker: this.opts.speaker, language: this.opts.language };
  }

  /** Record mode: the whole reply as one WAV at the server's rate (TtsService converts and caches it). */
  synthesize(text: string, opts: SynthOptions): Promise<Buffer> {
    return synthesizeWav(this.name, this.endpoint, this.request(text), opts);
  }

  /** Stream mode: PCM chunks as the server sends them (not cached, not resampled). */
  synthesizeStream(text: string, opts: SynthOptions): AsyncGenerator<AudioChunk, void, void> {
    return synthesizeStream(this.name, this.endpoint, this.request(text), opts);
  }

  describe(opts: SynthOptions): Promise<WyomingInfo> {
    return describe('tts', this.name, this.endpoint, opts);
  }
}

export interface WyomingSttOptions {
  host: string;
  port: number | string;
  /** Model name (e.g. `tiny-int8`); empty: the server's default. */
  model?: string;
  language?: string;
  chunkBytes?: number;
}

export class WyomingSttEngine implements SttEngine {
  readonly name = 'wyoming';
  readonly endpoint: WyomingEndpoint;
  private readonly opts: WyomingSttOptions;

  constructor(opts: WyomingSttOptions) {
    this.opts = opts;
    this.endpoint = checkEndpoint('stt', this.name, opts.host, opts.port);
  }

  recognize(req: SttRequest): Promise<{ text: string }> {
    return transcribeWyoming(
      this.name,
      this.endpoint,
      {
        samples: req.audio.samples,
        rate: req.audio.sampleRate,
        model: this.opts.model,
        language: req.language || this.opts.language,
        chunkBytes: this.opts.chunkBytes,
        onPartial: req.onPartial,
      },
      { timeoutMs: req.timeoutMs, signal: req.signal },
    );
  }

  describe(opts: { timeoutMs: number; signal?: AbortSignal }): Promise<WyomingInfo> {
    return describe('stt', this.name, this.endpoint, opts);
  }
}
