/**
 * Server-sent events (the `text/event-stream` format of the HTML standard) as OpenAI-compatible servers
 * stream chat completions: lines `field: value`, an event ends at a blank line, `data` lines of one
 * event are joined with `\n`, lines starting with `:` are comments (keep-alives), CR, LF and CRLF all end
 * a line, a UTF-8 character split across chunks is reassembled.
 */
import { StringDecoder } from 'string_decoder';

export interface SseEvent {
  event?: string;
  data: string;
  id?: string;
}

export class SseParser {
  private readonly decoder = new StringDecoder('utf8');
  private buf = '';
  private data: string[] = [];
  private event?: string;
  private id?: string;
  private started = false;
  /** Longest line accepted (a server that never sends a newline cannot grow the buffer without bound). */
  readonly maxLine: number;

  constructor(maxLine = 1024 * 1024) {
    this.maxLine = maxLine;
  }

  /** Feed a chunk; returns the events it completed. */
  push(chunk: Buffer | string): SseEvent[] {
    this.buf += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    if (!this.started && this.buf.length) {
      this.started = true;
      if (this.buf.charCodeAt(0) === 0xfeff) this.buf = this.buf.slice(1);
    }
    const out: SseEvent[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      // a CR at the very end may be the first half of a CRLF: wait for the next chunk
      if (m[0] === '\r' && m.index === this.buf.length - 1) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line, out);
    }
    if (this.buf.length > this.maxLine) throw new Error(`event-stream line longer than ${this.maxLine} characters`);
    return out;
  }

  /** End of the stream: an event not yet closed by a blank line is dispatched (servers often omit it). */
  end(): SseEvent[] {
    const out: SseEvent[] = [];
    const rest = this.buf + this.decoder.end();
    this.buf = '';
    if (rest) this.line(rest.replace(/\r$/, ''), out);
    this.line('', out);
    return out;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === '') {
      if (this.data.length) {
        const ev: SseEvent = { data: this.data.join('\n') };
        if (this.event) ev.event = this.event;
        if (this.id !== undefined) ev.id = this.id;
        out.push(ev);
      }
      this.data = [];
      this.event = undefined;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id') this.id = value;
  }
}
