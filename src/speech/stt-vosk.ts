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
    const engine = this.name;
    const chunk = Math.max(320, this.opts.chunkBytes ?? 8000) & ~1;
    const pcm = Buffer.from(req.audio.samples.buffer, req.audio.samples.byteOffset, req.audio.samples.byteLength);
    const frames = Math.ceil(pcm.length / chunk);
    const where = this.opts.url.replace(/\/\/[^@/]*@/, '//');
    return new Promise((resolve, reject) => {
      let settled = false;
      const texts: string[] = [];
      const confs: number[] = [];
      let answers = 0;
      const ws = new WebSocket(this.opts.url, { handshakeTimeout: req.timeoutMs, maxPayload: 16 * 1024 * 1024 });
      const finish = (err?: StageError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.signal?.removeEventListener('abort', onAbort);
        if (err) {
          ws.terminate();
          reject(err);
        } else {
          ws.close();
          const text = texts.filter((t) => t).join(' ');
          resolve(confs.length ? { text, confidence: confs.reduce((a, b) => a + b, 0) / confs.length } : { text });
        }
      };
      const timer = setTimeout(
        () =>
          finish(
            new StageError('stt', 'timeout', `no final result from ${where} within ${req.timeoutMs} ms`, { engine }),
          ),
        req.timeoutMs,
      );
      const onAbort = () => finish(new StageError('stt', 'network', 'aborted', { engine }));
      req.signal?.addEventListener('abort', onAbort, { once: true });
      ws.on('open', () => {
        ws.send(JSON.stringify({ config: { sample_rate: req.audio.sampleRate } }));
        for (let i = 0; i < frames; i++) ws.send(pcm.subarray(i * chunk, Math.min(pcm.length, (i + 1) * chunk)));
        ws.send(VOSK_EOF);
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
          if (m.partial) req.onPartial?.(m.partial);
        } else if (Array.isArray(m.alternatives)) {
          const best = m.alternatives[0];
          if (best && typeof best.text === 'string') texts.push(best.text.trim());
        } else if (typeof m.text === 'string') {
          texts.push(m.text.trim());
          if (Array.isArray(m.result))
            for (const w of m.result) if (typeof w?.conf === 'number' && Number.isFinite(w.conf)) confs.push(w.conf);
        } else {
          return finish(
            new StageError('stt', 'bad_response', `unexpected message: ${data.toString().slice(0, 80)}`, { engine }),
          );
        }
        // One answer per audio frame, then the final one for the end of stream.
        if (answers >= frames + 1) finish();
      });
      ws.on('unexpected-response', (_r, res) =>
        finish(
          new StageError(
            'stt',
            'bad_response',
            `HTTP ${res.statusCode} from ${where} (not a Vosk WebSocket endpoint?)`,
            { engine },
          ),
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
              { engine },
            ),
          );
      });
    });
  }
}
