/**
 * A Vosk server for tests, speaking alphacep/vosk-server's `websocket/asr_server.py` protocol: a text
 * `{"config": {...}}`, then binary PCM messages each answered by one JSON text message (`{"partial"}`),
 * then the exact text `{"eof" : 1}` answered by the final `{"result": [...], "text"}` and a close.
 *
 * What it "recognises" is scripted: connection n answers with `finals[n]` (the last one repeats); the
 * partial grows one word of it per `msPerWord` of audio received. Every connection's bytes and the wall
 * times of its first audio, its partials and its end of stream are recorded, so tests can tell audio fed
 * live from an utterance sent whole.
 */
import type { AddressInfo } from 'net';
import { performance } from 'perf_hooks';
import { WebSocketServer, type WebSocket } from 'ws';

export const VOSK_EOF_TEXT = '{"eof" : 1}';

export interface VoskConnection {
  config?: { sample_rate?: number };
  bytes: number;
  messages: number;
  firstAudioAt?: number;
  partialsAt: number[];
  eofAt?: number;
  closed: boolean;
}

export type VoskFault = 'none' | 'close-mid' | 'garbage-mid' | 'no-final';

export class FakeVoskServer {
  private wss?: WebSocketServer;
  readonly connections: VoskConnection[] = [];
  /** Fault of connection n (read when it opens). */
  faultOf: (index: number) => VoskFault = () => 'none';

  constructor(
    private readonly finals: string[],
    private readonly o: {
      /** Audio per word of the growing partial, ms (default 200). */
      msPerWord?: number;
      /** Recognition time per second of audio, ms (real time factor x 1000; default 0): answers queue behind it. */
      msPerAudioSecond?: number;
    } = {},
  ) {}

  get url(): string {
    const a = this.wss?.address() as AddressInfo | undefined;
    if (!a) throw new Error('not listening');
    return `ws://127.0.0.1:${a.port}`;
  }

  async listen(): Promise<string> {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    this.wss = wss;
    await new Promise<void>((r) => wss.once('listening', () => r()));
    wss.on('connection', (ws) => this.onConnection(ws));
    return this.url;
  }

  close(): Promise<void> {
    const wss = this.wss;
    this.wss = undefined;
    if (!wss) return Promise.resolve();
    for (const c of wss.clients) c.terminate();
    return new Promise((r) => wss.close(() => r()));
  }

  private onConnection(ws: WebSocket): void {
    const index = this.connections.length;
    const fault = this.faultOf(index);
    const c: VoskConnection = { bytes: 0, messages: 0, partialsAt: [], closed: false };
    this.connections.push(c);
    const final = this.finals[Math.min(index, this.finals.length - 1)] ?? '';
    const words = final.split(/\s+/).filter(Boolean);
    ws.on('close', () => (c.closed = true));
    // the recogniser works through the audio in order: each message costs its share of recognition time
    let queue = Promise.resolve();
    const cost = this.o.msPerAudioSecond ?? 0;
    ws.on('message', (data, isBinary) => {
      const ms = isBinary ? ((data as Buffer).length / 16000) * cost : 0;
      // arrival times: what the client sent when
      if (isBinary) c.firstAudioAt ??= performance.now();
      else if (data.toString() === VOSK_EOF_TEXT) c.eofAt = performance.now();
      queue = queue
        .then(() => (ms > 0 ? new Promise<void>((r) => setTimeout(r, ms)) : undefined))
        .then(() => answer(data as Buffer, isBinary));
    });
    const answer = (data: Buffer, isBinary: boolean) => {
      if (ws.readyState !== ws.OPEN) return;
      if (!isBinary) {
        const text = data.toString();
        if (text.includes('"config"')) {
          c.config = JSON.parse(text).config;
          return;
        }
        if (text !== VOSK_EOF_TEXT) return ws.close(1011, 'bad message');
        if (fault === 'no-final') return;
        const result = words.map((w) => ({ conf: 0.9, word: w.toLowerCase() }));
        ws.send(JSON.stringify({ result, text: final }), () => ws.close());
        return;
      }
      const b = data;
      c.bytes += b.length;
      c.messages++;
      if (fault === 'close-mid' && c.messages === 3) return ws.close(1011, 'model crashed');
      if (fault === 'garbage-mid' && c.messages === 2) return ws.send('Traceback (most recent call last)');
      const heardMs = c.bytes / 16; // 16 bytes per ms at 8 kHz 16-bit
      const n = Math.min(words.length, Math.floor(heardMs / (this.o.msPerWord ?? 200)));
      c.partialsAt.push(performance.now());
      ws.send(JSON.stringify({ partial: words.slice(0, n).join(' ').toLowerCase() }));
    };
  }
}
