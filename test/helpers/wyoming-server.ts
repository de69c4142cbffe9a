/**
 * A Wyoming server for tests and benches, over a real TCP socket on 127.0.0.1 (port 0).
 *
 * It has its OWN event reader (not the client's), written from the protocol description: a JSON header
 * line ending in `\n` with `type` and optionally `data`, `data_length`, `payload_length`; then
 * data_length bytes of JSON; then payload_length bytes. What it answers is up to the test's handler,
 * which gets each event and the socket, and writes raw bytes (helpers below build correct ones; tests
 * write broken ones by hand).
 */
import net from 'net';

export interface ServerEvent {
  type: string;
  data: Record<string, unknown>;
  payload: Buffer;
  /** The header line exactly as received (without the newline). */
  headerLine: string;
}

export type Handler = (ev: ServerEvent, sock: net.Socket, conn: ConnState) => void | Promise<void>;

export interface ConnState {
  /** Events received on this connection so far. */
  events: ServerEvent[];
  /** Free slot for handlers. */
  state: Record<string, unknown>;
}

/** Event bytes in the current style: data in a data section after the header. */
export function event(type: string, data?: Record<string, unknown>, payload?: Buffer): Buffer {
  const dataBuf = data ? Buffer.from(JSON.stringify(data), 'utf8') : Buffer.alloc(0);
  const header: Record<string, unknown> = { type, version: '1.5.4' };
  if (dataBuf.length) header.data_length = dataBuf.length;
  if (payload && payload.length) header.payload_length = payload.length;
  return Buffer.concat([Buffer.from(JSON.stringify(header) + '\n'), dataBuf, payload ?? Buffer.alloc(0)]);
}

/** Event bytes in the older 1.x style: data inline in the header. */
export function inlineEvent(type: string, data: Record<string, unknown>, payload?: Buffer): Buffer {
  const header: Record<string, unknown> = { type, data };
  if (payload && payload.length) header.payload_length = payload.length;
  return Buffer.concat([Buffer.from(JSON.stringify(header) + '\n'), payload ?? Buffer.alloc(0)]);
}

export class TestWyomingServer {
  readonly server: net.Server;
  readonly sockets = new Set<net.Socket>();
  readonly connections: ConnState[] = [];
  port = 0;
  handler: Handler;

  constructor(handler: Handler) {
    this.handler = handler;
    this.server = net.createServer((sock) => this.accept(sock));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(sock: net.Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => undefined);
    const conn: ConnState = { events: [], state: {} };
    this.connections.push(conn);
    let buf = Buffer.alloc(0);
    let chain = Promise.resolve();
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const nl = buf.indexOf(10);
        if (nl < 0) return;
        const headerLine = buf.subarray(0, nl).toString('utf8');
        const h = JSON.parse(headerLine) as {
          type: string;
          data?: Record<string, unknown>;
          data_length?: number;
          payload_length?: number;
        };
        const dl = h.data_length ?? 0;
        const pl = h.payload_length ?? 0;
        if (buf.length < nl + 1 + dl + pl) return;
        const data = { ...(h.data ?? {}) };
        if (dl) Object.assign(data, JSON.parse(buf.subarray(nl + 1, nl + 1 + dl).toString('utf8')));
        const payload = Buffer.from(buf.subarray(nl + 1 + dl, nl + 1 + dl + pl));
        buf = buf.subarray(nl + 1 + dl + pl);
        const ev: ServerEvent = { type: h.type, data, payload, headerLine };
        conn.events.push(ev);
        chain = chain
          .then(() => this.handler(ev, sock, conn))
          .catch(() => {
            sock.destroy();
          });
      }
    });
  }
}

/** `samples` of a `freq` Hz tone at `rate`, 16-bit little endian. */
export function tonePcm(rate: number, ms: number, freq = 440, amplitude = 8000): Buffer {
  const n = Math.round((rate * ms) / 1000);
  const b = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(amplitude * Math.sin((2 * Math.PI * freq * i) / rate)), i * 2);
  return b;
}

/** Answer `synthesize` like wyoming-piper: audio-start, chunks of `samplesPerChunk`, audio-stop. */
export function piperLike(rate: number, pcmFor: (text: string) => Buffer, samplesPerChunk = 1024): Handler {
  return (ev, sock) => {
    if (ev.type === 'describe') {
      sock.write(
        event('info', {
          tts: [
            {
              name: 'piper',
              installed: true,
              voices: [{ name: 'en_US-lessac-medium', languages: ['en_US'], installed: true, speakers: null }],
            },
          ],
        }),
      );
      return;
    }
    if (ev.type !== 'synthesize') return;
    const fmt = { rate, width: 2, channels: 1 };
    const pcm = pcmFor(String(ev.data.text ?? ''));
    const parts: Buffer[] = [event('audio-start', { ...fmt, timestamp: 0 })];
    for (let off = 0; off < pcm.length; off += samplesPerChunk * 2)
      parts.push(event('audio-chunk', { ...fmt, timestamp: null }, pcm.subarray(off, off + samplesPerChunk * 2)));
    parts.push(event('audio-stop', { timestamp: null }));
    sock.write(Buffer.concat(parts));
  };
}
