/**
 * A small, strict-enough CSV reader (RFC 4180 plus what real exports do):
 * quoted fields, "" escapes, CRLF / LF / CR line ends, a UTF-8 BOM, newlines inside quoted fields,
 * comma / semicolon / tab delimiters (detected from the header line). Every record carries the
 * line number it starts on (1-based, as an editor shows it) so import errors can point at it.
 *
 * A malformed record (text after a closing quote, an unterminated quote) is reported with its line
 * and the reader carries on with the next line: one broken row never loses the others.
 */

import { StringDecoder } from 'string_decoder';

export interface CsvRecord {
  /** Line (1-based) the record starts on. */
  line: number;
  fields: string[];
  /** Set when the record is malformed; `fields` then holds what could be read. */
  error?: string;
}

export interface CsvOptions {
  /** Field delimiter; default: detected from the first line (',' ';' or '\t'). */
  delimiter?: string;
  /** readCsvRecords: the longest record, in characters (default 1 MiB); past it the read stops. */
  maxRecordChars?: number;
}

/** Pick the delimiter that occurs most often, outside quotes, on the first line. */
export function detectDelimiter(text: string): string {
  const counts: Record<string, number> = { ',': 0, ';': 0, '\t': 0 };
  let inQuotes = false;
  for (let i = 0; i < text.length && i < 65536; i++) {
    const ch = text[i];
    if (ch === '"') inQuotes = !inQuotes;
    else if (!inQuotes && (ch === '\n' || ch === '\r')) break;
    else if (!inQuotes && ch in counts) counts[ch]++;
  }
  let best = ',';
  for (const d of [';', '\t']) if (counts[d] > counts[best]) best = d;
  return best;
}

/** Decode a buffer as UTF-8 and drop a BOM. */
export function decodeText(input: string | Buffer | Uint8Array): string {
  const text =
    typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Parse CSV text into records. Empty lines are skipped. */
export function parseCsv(input: string | Buffer | Uint8Array, opts: CsvOptions = {}): CsvRecord[] {
  const text = decodeText(input);
  return parseCsvSegment(text, opts.delimiter ?? detectDelimiter(text), 1).records;
}

function checkDelimiter(delim: string): number {
  if (delim.length !== 1 || delim === '"' || delim === '\n' || delim === '\r')
    throw new Error('CSV delimiter must be one character other than a quote or a line end');
  return delim.charCodeAt(0);
}

/**
 * Parse a run of whole records starting on line `startLine`; returns the records and the line the
 * next run starts on. `readCsvRecords` feeds a stream through it segment by segment.
 */
export function parseCsvSegment(
  text: string,
  delim: string,
  startLine: number,
): { records: CsvRecord[]; nextLine: number } {
  const d = checkDelimiter(delim);
  const QUOTE = 34;
  const LF = 10;
  const CR = 13;
  const out: CsvRecord[] = [];
  const n = text.length;
  let i = 0;
  let line = startLine;

  while (i < n) {
    const startLine = line;
    const fields: string[] = [];
    let error: string | undefined;
    // one record
    for (;;) {
      let value: string;
      if (text.charCodeAt(i) === QUOTE) {
        // quoted field
        i++;
        let buf = '';
        let segStart = i;
        let closed = false;
        while (i < n) {
          const c = text.charCodeAt(i);
          if (c === QUOTE) {
            if (text.charCodeAt(i + 1) === QUOTE) {
              buf += text.slice(segStart, i + 1);
              i += 2;
              segStart = i;
              continue;
            }
            buf += text.slice(segStart, i);
            i++;
            closed = true;
            break;
          }
          if (c === LF) line++;
          else if (c === CR && text.charCodeAt(i + 1) !== LF) line++;
          i++;
        }
        if (!closed) {
          buf += text.slice(segStart, i);
          error = `unterminated quoted field (opened on line ${startLine})`;
          fields.push(buf);
          break;
        }
        value = buf;
        // after the closing quote: delimiter, line end or end of text
        const c = text.charCodeAt(i);
        if (i < n && c !== d && c !== LF && c !== CR) {
          error = `unexpected text after a closing quote in field ${fields.length + 1}`;
          // skip to the end of this physical line
          let j = i;
          while (j < n && text.charCodeAt(j) !== LF && text.charCodeAt(j) !== CR) j++;
          value += text.slice(i, j);
          i = j;
        }
      } else {
        const start = i;
        while (i < n) {
          const c = text.charCodeAt(i);
          if (c === d || c === LF || c === CR) break;
          i++;
        }
        value = text.slice(start, i);
      }
      fields.push(value);
      if (i >= n) break;
      const c = text.charCodeAt(i);
      if (c === d) {
        i++;
        if (i >= n) {
          fields.push('');
          break;
        }
        continue;
      }
      // line end
      if (c === CR && text.charCodeAt(i + 1) === LF) i += 2;
      else i++;
      line++;
      break;
    }
    // skip blank lines (a record of one empty field)
    if (!error && fields.length === 1 && fields[0] === '') continue;
    out.push(error ? { line: startLine, fields, error } : { line: startLine, fields });
  }
  return { records: out, nextLine: line };
}

/**
 * Whole records from a stream of text/bytes (UTF-8, BOM dropped), in batches, without holding the
 * whole input: text is cut at the last line end outside quotes and each cut is parsed on its own.
 * A record longer than `maxRecordChars` (an unterminated quote keeps its record open) stops the read
 * with a CsvRecordTooLong, so memory stays bounded whatever follows.
 */
/** A record ran past the longest allowed (an unterminated quote, or not a CSV file): the read stops. */
export class CsvRecordTooLong extends Error {
  constructor(
    readonly line: number,
    readonly maxChars: number,
  ) {
    super(`line ${line}: a record runs past ${Math.round(maxChars / 1024)} KB (an unterminated quote?)`);
    this.name = 'CsvRecordTooLong';
  }
}

export async function* readCsvRecords(
  source: AsyncIterable<string | Buffer | Uint8Array> | Iterable<string | Buffer | Uint8Array>,
  opts: CsvOptions = {},
): AsyncGenerator<CsvRecord[]> {
  const decoder = new StringDecoder('utf8');
  let buf = '';
  let delim = opts.delimiter;
  const maxRecord = opts.maxRecordChars ?? 1024 * 1024;
  let line = 1;
  let first = true;
  let inQuotes = false;
  let scanned = 0; // buf[0..scanned) has been scanned for quotes; inQuotes is the state at `scanned`
  let lastCut = -1; // index just after the last line end outside quotes within the scanned part
  const flush = (end: number): CsvRecord[] => {
    const seg = buf.slice(0, end);
    buf = buf.slice(end);
    scanned -= end;
    lastCut = -1;
    const r = parseCsvSegment(seg, delim!, line);
    line = r.nextLine;
    return r.records;
  };
  for await (const chunk of source as AsyncIterable<string | Buffer | Uint8Array>) {
    buf +=
      typeof chunk === 'string' ? chunk : decoder.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    if (first && buf.length) {
      if (buf.charCodeAt(0) === 0xfeff) buf = buf.slice(1);
      first = false;
    }
    if (!delim) {
      if (!/[\r\n]/.test(buf) && buf.length < 65536) continue;
      delim = detectDelimiter(buf);
      checkDelimiter(delim);
    }
    // scan the new text for quotes and line ends (a line end must be followed by a character, so a
    // CR LF split across chunks is never cut in the middle)
    for (let i = scanned; i < buf.length - 1; i++) {
      const c = buf.charCodeAt(i);
      if (c === 34) inQuotes = !inQuotes;
      else if (!inQuotes && (c === 10 || (c === 13 && buf.charCodeAt(i + 1) !== 10))) lastCut = i + 1;
    }
    scanned = Math.max(scanned, buf.length - 1);
    if (lastCut > 0 && buf.length >= 65536) {
      const records = flush(lastCut);
      if (records.length) yield records;
    }
    // what is left in buf is one open record (no line end outside quotes after the last cut)
    if (buf.length > maxRecord) throw new CsvRecordTooLong(line, maxRecord);
  }
  buf += decoder.end();
  if (first && buf.charCodeAt(0) === 0xfeff) buf = buf.slice(1);
  if (!buf.length) return;
  if (!delim) delim = detectDelimiter(buf);
  const r = parseCsvSegment(buf, delim, line);
  if (r.records.length) yield r.records;
}
