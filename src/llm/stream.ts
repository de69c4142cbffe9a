/**
 * Streamed replies: the text of a reply as it is generated, for speaking it sentence by sentence
 * (src/media/sentences.ts). `streamDecision` gives every engine the same shape: engines with `stream`
 * hand over text pieces as they come, the others hand over their whole reply as one piece.
 */
import { performance } from 'perf_hooks';
import { MAX_REPLY_CHARS } from './reply-text';
import type { LlmDecision, LlmEngine, LlmRequest } from './types';

/** A single-consumer async queue of text pieces: `push`, then `end` or `fail`. */
export class TextQueue implements AsyncIterable<string> {
  private items: string[] = [];
  private waiting?: { resolve: (r: IteratorResult<string>) => void; reject: (e: unknown) => void };
  private closed = false;
  private error: unknown;
  private failed = false;

  push(text: string): void {
    if (this.closed || !text) return;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w.resolve({ value: text, done: false });
    } else this.items.push(text);
  }

  end(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w.resolve({ value: undefined, done: true });
    }
  }

  fail(err: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.failed = true;
    this.error = err;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w.reject(err);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<string> {
    return {
      next: () => {
        if (this.items.length) return Promise.resolve({ value: this.items.shift() as string, done: false });
        if (this.closed)
          return this.failed ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
      },
    };
  }
}

/**
 * Speakable text out of raw model deltas, as they arrive: `<think>...</think>` reasoning blocks dropped
 * (also when a tag is split across deltas), markdown emphasis and code marks dropped, control characters
 * made spaces, and nothing past MAX_REPLY_CHARS (the cap `cleanReplyText` applies to whole replies).
 */
export class SpeakableFilter {
  private pending = '';
  private inThink = false;
  private emitted = 0;

  push(delta: string): string {
    this.pending += delta;
    let out = '';
    for (;;) {
      if (this.inThink) {
        const close = this.pending.search(/<\/think>/i);
        if (close < 0) {
          // keep only what could be the start of the closing tag
          this.pending = this.pending.slice(Math.max(0, this.pending.length - 7));
          break;
        }
        this.pending = this.pending.slice(close + 8);
        this.inThink = false;
        continue;
      }
      const open = this.pending.search(/<think>/i);
      if (open >= 0) {
        out += this.pending.slice(0, open);
        this.pending = this.pending.slice(open + 7);
        this.inThink = true;
        continue;
      }
      // hold back a possible partial `<think` at the end
      const lt = this.pending.lastIndexOf('<');
      const hold = lt >= 0 && '<think>'.startsWith(this.pending.slice(lt).toLowerCase()) ? lt : this.pending.length;
      out += this.pending.slice(0, hold);
      this.pending = this.pending.slice(hold);
      break;
    }
    return this.clean(out);
  }

  /** The end of the reply: whatever was held back (an unclosed think block is dropped). */
  end(): string {
    const rest = this.inThink ? '' : this.pending;
    this.pending = '';
    return this.clean(rest);
  }

  private clean(s: string): string {
    s = s.replace(/```[a-z]*|[*`]+/gi, '').replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ');
    if (this.emitted + s.length > MAX_REPLY_CHARS) s = s.slice(0, Math.max(0, MAX_REPLY_CHARS - this.emitted));
    this.emitted += s.length;
    return s;
  }
}

export interface StreamedDecision {
  /** The reply's text pieces as they come; ends with the reply, throws the engine's error on failure. */
  text: AsyncIterable<string>;
  /** The whole decision (text and action), with the time to the first text piece. */
  decision: Promise<LlmDecision & { firstTokenMs?: number }>;
}

/**
 * Run one engine decision as a stream. When the engine streamed no text but its decision has some (an
 * action with its default line, JSON mode, or an engine without `stream`), that text is the one piece.
 */
export function streamDecision(engine: LlmEngine, req: LlmRequest): StreamedDecision {
  const t0 = performance.now();
  const q = new TextQueue();
  let firstTokenMs: number | undefined;
  let streamed = '';
  const onText = (delta: string) => {
    if (!delta) return;
    if (firstTokenMs === undefined) firstTokenMs = performance.now() - t0;
    streamed += delta;
    q.push(delta);
  };
  const run = engine.stream
    ? engine.stream(req, onText)
    : engine.decide(req).then((d) => {
        onText(d.text);
        return d;
      });
  const decision = run.then(
    (d) => {
      if (!streamed.trim() && d.text) onText(d.text);
      q.end();
      return firstTokenMs === undefined ? d : { ...d, firstTokenMs };
    },
    (err) => {
      q.fail(err);
      throw err;
    },
  );
  // a consumer that only reads `text` sees the error there; do not report it twice as unhandled
  decision.catch(() => undefined);
  return { text: q, decision };
}
