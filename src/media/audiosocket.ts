/**
 * Asterisk AudioSocket: the TCP protocol of `app_audiosocket` / `res_audiosocket` (Asterisk 22), and
 * the runtime's server for it.
 *
 * Wire format (checked against res/res_audiosocket.c): every message is a 3-byte header, `kind`
 * (1 byte) and payload length (16-bit big-endian), then the payload.
 * - 0x00 hangup (no payload): either side ends the media; Asterisk's AudioSocket() then returns 0.
 * - 0x01 uuid (16 bytes, binary UUID): the first message Asterisk sends after connecting.
 * - 0x03 DTMF (1 byte, the ASCII digit): Asterisk to us.
 * - 0x10 audio: signed linear 16-bit, 8 kHz, mono, host (little-endian) byte order; Asterisk sends the
 *   channel's frames (320 bytes per 20 ms frame on an ordinary call).
 * - 0xff error (optional 1-byte code).
 * Asterisk treats anything but hangup or audio from us as an error and ends AudioSocket() with -1
 * (the channel hangs up); a closed socket is a normal end; a zero-length audio message is refused.
 *
 * Hostile peers: the server admits a connection only when its first message is the uuid of a media
 * hand-off it is expecting (see `expect`); the uuid is single use. A connection that sends anything
 * malformed (unknown kind, oversize or inconsistent length, audio before the uuid, a second uuid) is
 * dropped at once. Nothing a peer sends can make the server allocate more than `maxPayload` bytes.
 */
import net from 'net';
import os from 'os';
import { EventEmitter } from 'events';

export const KIND_HANGUP = 0x00;
export const KIND_UUID = 0x01;
export const KIND_DTMF = 0x03;
export const KIND_AUDIO = 0x10;
export const KIND_ERROR = 0xff;

/** 8 kHz, 20 ms: what AudioSocket carries on an ordinary call. */
export const AUDIO_RATE = 8000;
export const FRAME_MS = 20;
export const FRAME_SAMPLES = 160;
export const FRAME_BYTES = 320;

/** Largest payload accepted by default (a 20 ms frame is 320 bytes; Asterisk may send longer frames). */
export const DEFAULT_MAX_PAYLOAD = 4096;

export type AudioSocketMessage =
  | { kind: 'hangup' }
  | { kind: 'uuid'; uuid: string }
  | { kind: 'dtmf'; digit: string }
  | { kind: 'audio'; samples: Int16Array }
  | { kind: 'error'; code?: number };

export class AudioSocketProtocolError extends Error {
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(message);
    this.name = 'AudioSocketProtocolError';
  }
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}

function header(kind: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(3 + len);
  b[0] = kind;
  b.writeUInt16BE(len, 1);
  return b;
}

/** The uuid message Asterisk sends first. */
export function encodeUuid(uuid: string): Buffer {
  if (!isUuid(uuid)) throw new TypeError(`not a UUID: ${JSON.stringify(uuid)}`);
  const b = header(KIND_UUID, 16);
  Buffer.from(uuid.replace(/-/g, ''), 'hex').copy(b, 3);
  return b;
}

export function uuidOf(payload: Buffer): string {
  const h = payload.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** Int16Array memory is little-endian here (x86, ARM): samples are copied as bytes, not one by one. */
const LITTLE_ENDIAN = os.endianness() === 'LE';

/** Received audio is carved out of shared slabs: a typed array of its own per 20 ms frame costs more. */
const SLAB_BYTES = 64 * 1024;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabAt = 0;

/** An Int16Array of `n` samples: a view on the current slab (a new slab when it is full), or its own memory when large. */
function sampleArray(n: number): Int16Array {
  const bytes = n * 2;
  if (bytes > SLAB_BYTES / 4) return new Int16Array(n);
  if (slabAt + bytes > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabAt = 0;
  }
  const a = new Int16Array(slab, slabAt, n);
  slabAt += bytes;
  return a;
}

/** An audio message: the samples as 16-bit little-endian PCM. */
export function encodeAudio(samples: Int16Array): Buffer {
  if (samples.length === 0) throw new RangeError('AudioSocket audio must not be empty (Asterisk refuses it)');
  const b = header(KIND_AUDIO, samples.length * 2);
  if (LITTLE_ENDIAN) b.set(new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength), 3);
  else for (let i = 0; i < samples.length; i++) b.writeInt16LE(samples[i], 3 + i * 2);
  return b;
}

export function encodeDtmf(digit: string): Buffer {
  if (!/^[0-9*#A-D]$/.test(digit)) throw new TypeError(`not a DTMF digit: ${JSON.stringify(digit)}`);
  const b = header(KIND_DTMF, 1);
  b[3] = digit.charCodeAt(0);
  return b;
}

export function encodeHangup(): Buffer {
  return header(KIND_HANGUP, 0);
}

export function encodeError(code?: number): Buffer {
  if (code === undefined) return header(KIND_ERROR, 0);
  const b = header(KIND_ERROR, 1);
  b[3] = code & 0xff;
  return b;
}

const NO_BYTES = Buffer.alloc(0);

/**
 * Splits a byte stream into AudioSocket messages. Throws AudioSocketProtocolError on anything that
 * is not the protocol; after a throw the decoder is unusable (the connection is to be dropped).
 */
export class AudioSocketDecoder {
  private buf: Buffer = NO_BYTES;

  constructor(private readonly maxPayload = DEFAULT_MAX_PAYLOAD) {}

  /** Bytes held waiting for the rest of a message. */
  get pending(): number {
    return this.buf.length;
  }

  push(chunk: Buffer): AudioSocketMessage[] {
    const buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: AudioSocketMessage[] = [];
    let off = 0;
    while (buf.length - off >= 3) {
      const kind = buf[off];
      const len = buf.readUInt16BE(off + 1);
      checkHeader(kind, len, this.maxPayload);
      if (buf.length - off - 3 < len) break;
      const payload = buf.subarray(off + 3, off + 3 + len);
      off += 3 + len;
      out.push(decodeMessage(kind, payload));
      if (kind === KIND_HANGUP) break; // nothing after a hangup counts
    }
    this.buf = off >= buf.length ? NO_BYTES : Buffer.from(buf.subarray(off));
    return out;
  }
}

function checkHeader(kind: number, len: number, maxPayload: number): void {
  switch (kind) {
    case KIND_HANGUP:
      if (len !== 0) throw new AudioSocketProtocolError(`hangup with a ${len}-byte payload`, 'bad_length');
      return;
    case KIND_UUID:
      if (len !== 16) throw new AudioSocketProtocolError(`uuid of ${len} bytes (16 expected)`, 'bad_length');
      return;
    case KIND_DTMF:
      if (len !== 1) throw new AudioSocketProtocolError(`DTMF of ${len} bytes (1 expected)`, 'bad_length');
      return;
    case KIND_AUDIO:
      if (len === 0) throw new AudioSocketProtocolError('empty audio message', 'bad_length');
      if (len > maxPayload)
        throw new AudioSocketProtocolError(`audio of ${len} bytes (at most ${maxPayload})`, 'oversize');
      if (len % 2 !== 0) throw new AudioSocketProtocolError(`audio of ${len} bytes is not whole samples`, 'bad_length');
      return;
    case KIND_ERROR:
      if (len > 1) throw new AudioSocketProtocolError(`error message of ${len} bytes`, 'bad_length');
      return;
    default:
      throw new AudioSocketProtocolError(`unknown message kind 0x${kind.toString(16).padStart(2, '0')}`, 'bad_kind');
  }
}

function decodeMessage(kind: number, payload: Buffer): AudioSocketMessage {
  switch (kind) {
    case KIND_HANGUP:
      return { kind: 'hangup' };
    case KIND_UUID:
      return { kind: 'uuid', uuid: uuidOf(payload) };
    case KIND_DTMF: {
      const digit = String.fromCharCode(payload[0]);
      if (!/^[0-9*#A-D]$/.test(digit))
        throw new AudioSocketProtocolError(`DTMF byte 0x${payload[0].toString(16)}`, 'bad_dtmf');
      return { kind: 'dtmf', digit };
    }
    case KIND_AUDIO: {
      // a copy, aligned (the payload may sit at an odd offset of the socket's buffer)
      const samples = sampleArray(payload.length / 2);
      if (LITTLE_ENDIAN) new Uint8Array(samples.buffer, samples.byteOffset, payload.length).set(payload);
      else for (let i = 0; i < samples.length; i++) samples[i] = payload.readInt16LE(i * 2);
      return { kind: 'audio', samples };
    }
    default:
      return payload.length ? { kind: 'error', code: payload[0] } : { kind: 'error' };
  }
}

/** One admitted AudioSocket connection (Asterisk's side of one channel's media). */
export class AudioSocketConnection extends EventEmitter {
  private _closed = false;
  private hangupSent = false;
  /** Audio frames received. */
  framesIn = 0;
  /** Audio frames sent. */
  framesOut = 0;

  constructor(
    readonly uuid: string,
    private readonly socket: net.Socket,
    /** What the hand-off bound to this uuid (call id, session id...). */
    readonly binding: MediaBinding,
  ) {
    super();
  }

  get closed(): boolean {
    return this._closed;
  }

  get remoteAddress(): string {
    return this.socket.remoteAddress ?? '';
  }

  /** Send audio (16-bit samples at 8 kHz); false when the connection is gone. */
  sendAudio(samples: Int16Array): boolean {
    if (this._closed || this.hangupSent || samples.length === 0) return false;
    this.framesOut++;
    this.socket.write(encodeAudio(samples));
    return true;
  }

  /** Socket bytes queued in user space (backpressure indicator). */
  get writeBacklog(): number {
    return this.socket.writableLength;
  }

  /** End the media normally: Asterisk's AudioSocket() returns 0 and the dialplan (or AGI) goes on. */
  hangup(): void {
    if (this._closed || this.hangupSent) return;
    this.hangupSent = true;
    this.socket.end(encodeHangup());
  }

  destroy(): void {
    this.socket.destroy();
  }

  /**
   * Begin delivering events. Messages that arrived before (in the same packet as the uuid, or while
   * the hand-off was attaching its listeners) are held until now, so no frame is lost.
   */
  start(): void {
    const held = this.held;
    if (!held) return;
    this.held = null;
    for (const m of held) this.deliver(m);
    if (this.goneErr !== undefined) this.gone(this.goneErr ?? undefined);
  }

  private held: AudioSocketMessage[] | null = [];
  private goneErr: Error | null | undefined;

  /** @internal */
  deliver(m: AudioSocketMessage): void {
    if (this.held) {
      // at most ~10 s held: older audio is dropped rather than memory grown without bound
      if (this.held.length >= 500) this.held.shift();
      this.held.push(m);
      return;
    }
    switch (m.kind) {
      case 'audio':
        this.framesIn++;
        this.emit('audio', m.samples);
        return;
      case 'dtmf':
        this.emit('dtmf', m.digit);
        return;
      case 'hangup':
        this.emit('hangup');
        this.socket.end();
        return;
      case 'error':
        this.emit('peerError', m.code);
        return;
      case 'uuid':
        // a second uuid on an admitted connection is a protocol violation
        this.fail(new AudioSocketProtocolError('a second uuid message', 'duplicate_uuid'));
    }
  }

  /** @internal */
  fail(err: Error): void {
    this.emit('protocolError', err);
    this.socket.destroy();
  }

  /** @internal */
  gone(err?: Error): void {
    if (this._closed) return;
    if (this.held) {
      this.goneErr = err ?? null;
      return;
    }
    this._closed = true;
    this.emit('close', err);
  }
}

/** What a media hand-off binds to its uuid (only the holder of the uuid can attach). */
export interface MediaBinding {
  callId?: string;
  sessionId?: string;
  /** The AGI session's peer address: when set, the media must come from the same host. */
  host?: string;
}

interface Expectation {
  binding: MediaBinding;
  resolve(c: AudioSocketConnection): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export interface AudioSocketServerOptions {
  host?: string;
  port?: number;
  /** Time a connection has to send its uuid, ms (default 2000). */
  uuidTimeoutMs?: number;
  maxPayload?: number;
  /** Most connections at once (default 10000). */
  maxConnections?: number;
  log?: { warn(m: string): void };
}

export interface Rejection {
  reason: 'malformed' | 'unknown_uuid' | 'wrong_host' | 'uuid_timeout' | 'too_many';
  remote: string;
  message: string;
}

/**
 * The runtime's AudioSocket server. A hand-off calls `expect(uuid, binding)` before asking Asterisk to
 * connect; the returned promise resolves with the connection carrying that uuid.
 */
export class AudioSocketServer extends EventEmitter {
  private server?: net.Server;
  private readonly expected = new Map<string, Expectation>();
  private readonly sockets = new Set<net.Socket>();
  private readonly o: Required<Omit<AudioSocketServerOptions, 'log'>> & Pick<AudioSocketServerOptions, 'log'>;

  constructor(opts: AudioSocketServerOptions = {}) {
    super();
    this.o = {
      host: opts.host ?? '127.0.0.1',
      port: opts.port ?? 0,
      uuidTimeoutMs: opts.uuidTimeoutMs ?? 2000,
      maxPayload: opts.maxPayload ?? DEFAULT_MAX_PAYLOAD,
      maxConnections: opts.maxConnections ?? 10000,
      log: opts.log,
    };
  }

  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const srv = net.createServer((s) => this.onConnection(s));
      srv.once('error', reject);
      srv.listen(this.o.port, this.o.host, () => {
        srv.off('error', reject);
        srv.on('error', (e) => this.o.log?.warn(`AudioSocket server: ${e.message}`));
        this.server = srv;
        resolve(this.address());
      });
    });
  }

  address(): { host: string; port: number } {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw new Error('AudioSocket server is not listening');
    return { host: this.o.host, port: a.port };
  }

  /** Connections open now (admitted or waiting for their uuid). */
  get connectionCount(): number {
    return this.sockets.size;
  }

  /**
   * Wait for the connection carrying `uuid` (single use) for at most `timeoutMs`. Rejects on timeout or
   * when `cancel(uuid)` is called.
   */
  expect(uuid: string, binding: MediaBinding, timeoutMs = 5000): Promise<AudioSocketConnection> {
    if (!isUuid(uuid)) return Promise.reject(new TypeError('expect() needs a UUID'));
    const key = uuid.toLowerCase();
    if (this.expected.has(key)) return Promise.reject(new Error(`uuid ${uuid} is already expected`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.expected.delete(key);
        reject(new Error(`no AudioSocket connection for ${uuid} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.expected.set(key, { binding, resolve, reject, timer });
    });
  }

  /** Stop waiting for `uuid` (the hand-off failed some other way). */
  cancel(uuid: string, why = 'cancelled'): void {
    const key = uuid.toLowerCase();
    const e = this.expected.get(key);
    if (!e) return;
    this.expected.delete(key);
    clearTimeout(e.timer);
    e.reject(new Error(why));
  }

  async close(): Promise<void> {
    for (const k of [...this.expected.keys()]) this.cancel(k, 'AudioSocket server closed');
    for (const s of this.sockets) s.destroy();
    const srv = this.server;
    this.server = undefined;
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  }

  private reject(s: net.Socket, reason: Rejection['reason'], message: string): void {
    const r: Rejection = { reason, remote: s.remoteAddress ?? '', message };
    this.emit('rejected', r);
    this.o.log?.warn(`AudioSocket connection from ${r.remote} refused (${reason}): ${message}`);
    s.destroy();
  }

  private onConnection(s: net.Socket): void {
    if (this.sockets.size >= this.o.maxConnections) return this.reject(s, 'too_many', 'too many connections');
    this.sockets.add(s);
    s.setNoDelay(true);
    const decoder = new AudioSocketDecoder(this.o.maxPayload);
    let conn: AudioSocketConnection | undefined;
    const timer = setTimeout(() => this.reject(s, 'uuid_timeout', 'no uuid in time'), this.o.uuidTimeoutMs);
    timer.unref();
    s.on('data', (chunk: Buffer) => {
      let msgs: AudioSocketMessage[];
      try {
        msgs = decoder.push(chunk);
      } catch (err) {
        if (conn) conn.fail(err as Error);
        else {
          clearTimeout(timer);
          this.reject(s, 'malformed', (err as Error).message);
        }
        return;
      }
      for (const m of msgs) {
        if (s.destroyed) return;
        if (conn) {
          conn.deliver(m);
          continue;
        }
        clearTimeout(timer);
        if (m.kind !== 'uuid') return this.reject(s, 'malformed', `${m.kind} before the uuid`);
        const key = m.uuid.toLowerCase();
        const e = this.expected.get(key);
        if (!e) return this.reject(s, 'unknown_uuid', `uuid ${m.uuid} is not expected`);
        if (e.binding.host && !sameHost(e.binding.host, s.remoteAddress ?? ''))
          return this.reject(s, 'wrong_host', `uuid ${m.uuid} belongs to a session from ${e.binding.host}`);
        this.expected.delete(key);
        clearTimeout(e.timer);
        conn = new AudioSocketConnection(key, s, e.binding);
        e.resolve(conn);
      }
    });
    s.on('error', (err) => conn?.gone(err));
    s.on('close', () => {
      clearTimeout(timer);
      this.sockets.delete(s);
      conn?.gone();
    });
  }
}

/** Same host, allowing for IPv4-mapped IPv6 forms. */
function sameHost(a: string, b: string): boolean {
  const norm = (x: string) => x.replace(/^::ffff:/i, '');
  return norm(a) === norm(b);
}
