/**
 * Vosk server over its WebSocket protocol (alphacep/vosk-server `websocket/asr_server.py`):
 *  1. text `{"config": {"sample_rate": <rate>}}`
 *  2. binary frames of 16-bit mono PCM; the server answers EACH with one JSON text message:
 *     `{"partial": "..."}` or, when it detected the end of an utterance, `{"result": [...], "text": "..."}`
 *  3. text `{"eof" : 1}` (the server compares this exact string, spaces included); it answers with the
 *     final result and closes.
 * The transcript is every `text` of the results in order; confidence is the mean word `conf`.
 */
import WebSocket from 'ws';
import { StageError } from '../util/errors';
import type { SttEngine, SttRequest } from './stt';

export interface VoskOptions {
  /** e.g. `ws://vosk:2700` */
  url: string;
  /** Bytes of PCM per frame (default 8000: half a second at 8 kHz). */
  chunkBytes?: number;
}

/** The end-of-stream message exactly as asr_server.py compares it. */
export const VOSK_EOF = '{"eof" : 1}';

interface VoskWord {
  conf?: number;
  word?: string;
}
interface VoskMessage {
  partial?: string;
  text?: string;
  result?: VoskWord[];
  alternatives?: Array<{ text?: string; confidence?: number }>;
}

export class VoskEngine implements SttEngine {
  readonly name = 'vosk';
  private readonly opts: VoskOptions;

  constructor(opts: VoskOptions) {
    this.opts = opts;
    if (!/^wss?:\/\//.test(opts.url))
      throw new StageError('stt', 'not_configured', `Vosk URL must start with ws:// or wss:// (got "${opts.url}")`, {
        engine: this.name,
      });
  }

  recognize(req: SttRequest): Promise<{ text: string; confidence?: number }> {
    const stream = this.openStream({
      sampleRate: req.audio.sampleRate,
      timeoutMs: req.timeoutMs,
      signal: req.signal,
      onPartial: req.onPartial,
      chunkBytes: this.opts.chunkBytes ?? 8000,
    });
    stream.write(req.audio.samples);
    return stream.end();
  }

  /**
   * A live recognition stream (stream mode): open it when the caller starts speaking, `write` the audio as
   * it arrives (it is sent in `chunkBytes` pieces, default 1600 = 100 ms at 8 kHz, as soon as the socket is
   * open), get `onPartial` hypotheses while the caller speaks and `onResult` for each segment Vosk
   * finalises on its own, and call `end` when the endpointer hands over the utterance: the end-of-stream
   * message is sent and `end` resolves with every result joined. `timeoutMs` runs from `end` (the stream
   * itself lives as long as the caller speaks). `abort` (hang-up, barge-in) closes the socket at once.
   * A failure before `end` (refused connection, malformed answer) is what `end` rejects with.
   */
  openStream(o: VoskStreamOptions): SttStream {
    const engine = this.name;
    const chunk = Math.max(320, o.chunkBytes ?? 1600) & ~1;
    const where = this.opts.url.replace(/\/\/[^@/]*@/, '//');
    const texts: string[] = [];
    const confs: number[] = [];
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let sent = 0;
    let answers = 0;
    let ended = false;
    let open = false;
    let failure: StageError | undefined;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    let resolveEnd!: (r: { text: string; confidence?: number }) => void;
    let rejectEnd!: (e: unknown) => void;
    const result = new Promise<{ text: string; confidence?: number }>((res, rej) => {
      resolveEnd = res;
      rejectEnd = rej;
    });
    result.catch(() => undefined);
    const ws = new WebSocket(this.opts.url, {
      handshakeTimeout: Math.max(1000, o.timeoutMs),
      maxPayload: 16 * 1024 * 1024,
    });
    const finish = (err?: StageError) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      if (err) {
        failure = err;
        ws.terminate();
        rejectEnd(err);
      } else {
        ws.close();
        const text = texts.filter((t) => t).join(' ');
        resolveEnd(confs.length ? { text, confidence: confs.reduce((a, b) => a + b, 0) / confs.length } : { text });
      }
    };
    const flush = (all: boolean) => {
      if (!open || settled) return;
      const buf = Buffer.concat(pending);
      let at = 0;
      while (buf.length - at >= chunk || (all && at < buf.length)) {
        const n = Math.min(chunk, buf.length - at);
        ws.send(buf.subarray(at, at + n));
        sent++;
        at += n;
      }
      pending = at < buf.length ? [buf.subarray(at)] : [];
      pendingBytes = buf.length - at;
      if (all && ended) ws.send(VOSK_EOF);
    };
    const onAbort = () => finish(new StageError('stt', 'network', 'aborted', { engine }));
    if (o.signal?.aborted) queueMicrotask(onAbort);
    else o.signal?.addEventListener('abort', onAbort, { once: true });
    ws.on('open', () => {
      open = true;
      ws.send(JSON.stringify({ config: { sample_rate: o.sampleRate } }));
      flush(ended);
    });
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (settled) return;
      if (isBinary)
        return finish(
          new StageError('stt', 'bad_response', 'unexpected binary message from the Vosk server', { engine }),
        );
      let m: VoskMessage;
      try {
        m = JSON.parse(data.toString());
      } catch {
        return finish(
          new StageError('stt', 'bad_response', `answer is not JSON: ${data.toString().slice(0, 80)}`, { engine }),
        );
      }
      if (!m || typeof m !== 'object')
        return finish(new StageError('stt', 'bad_response', 'answer is not a JSON object', { engine }));
      answers++;
      if (typeof m.partial === 'string') {
        if (m.partial) o.onPartial?.(m.partial);
      } else if (Array.isArray(m.alternatives)) {
        const best = m.alternatives[0];
        if (best && typeof best.text === 'string') {
          texts.push(best.text.trim());
          if (best.text.trim()) o.onResult?.(best.text.trim());
        }
      } else if (typeof m.text === 'string') {
        texts.push(m.text.trim());
        if (m.text.trim()) o.onResult?.(m.text.trim());
        if (Array.isArray(m.result))
          for (const w of m.result) if (typeof w?.conf === 'number' && Number.isFinite(w.conf)) confs.push(w.conf);
      } else {
        return finish(
          new StageError('stt', 'bad_response', `unexpected message: ${data.toString().slice(0, 80)}`, { engine }),
        );
      }
      // One answer per audio frame, then the final one for the end of stream.
      if (ended && pendingBytes === 0 && answers >= sent + 1) finish();
    });
    ws.on('unexpected-response', (_r, res) =>
      finish(
        new StageError('stt', 'bad_response', `HTTP ${res.statusCode} from ${where} (not a Vosk WebSocket endpoint?)`, {
          engine,
        }),
      ),
    );
    ws.on('error', (err: Error & { code?: string }) => {
      finish(
        new StageError('stt', 'network', `cannot reach ${where}: ${err.code ?? err.message}`, { engine, cause: err }),
      );
    });
    ws.on('close', (code) => {
      if (!settled)
        finish(
          new StageError(
            'stt',
            'bad_response',
            `Vosk server closed the connection (code ${code}) before the final result`,
            {
              engine,
            },
          ),
        );
    });
    return {
      write: (samples: Int16Array) => {
        if (ended || settled || !samples.length) return;
        const b = Buffer.from(samples.buffer.slice(samples.byteOffset, samples.byteOffset + samples.byteLength));
        pending.push(b);
        pendingBytes += b.length;
        if (pendingBytes >= chunk) flush(false);
      },
      end: () => {
        if (!ended && !settled) {
          ended = true;
          timer = setTimeout(
            () =>
              finish(
                new StageError('stt', 'timeout', `no final result from ${where} within ${o.timeoutMs} ms`, { engine }),
              ),
            o.timeoutMs,
          );
          flush(true);
        }
        return failure ? Promise.reject(failure) : result;
      },
      abort: () => finish(new StageError('stt', 'network', 'aborted', { engine })),
    };
  }
}

export interface VoskStreamOptions {
  sampleRate: number;
  /** Deadline for the final result once `end` is called, ms. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Hypotheses while the caller speaks. */
  onPartial?: (text: string) => void;
  /** A segment the server finalised before the end (long utterances). */
  onResult?: (text: string) => void;
  /** Bytes per WebSocket message (default 1600: 100 ms at 8 kHz). */
  chunkBytes?: number;
}

/** A live speech-to-text stream (see VoskEngine.openStream). */
export interface SttStream {
  write(samples: Int16Array): void;
  end(): Promise<{ text: string; confidence?: number }>;
  abort(): void;
}
