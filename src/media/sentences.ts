/**
 * Sentence boundaries for speaking a streamed reply: tokens in (as an LLM streams them), sentences out,
 * each as soon as its end is certain, so TTS can start on the first sentence while the rest is generated.
 *
 * A sentence ends at `.`, `!` or `?` (a run such as `?!` or `...`, and any closing quote or bracket after
 * it) followed by white space, and at a newline. Not a boundary:
 *  - a dot inside a token such as `3.5`, `example.com` or `e.g.x` (no white space after it);
 *  - a dot after a known abbreviation (`Dr.`, `Mr.`, `e.g.`, `a.m.`, ...) or a single capital initial (`J.`);
 *  - a dot after a number that is all the sentence holds so far (`1. First...` list items).
 * A sentence longer than `maxChars` without a boundary is cut at its last `,;:` (else its last space) so a
 * run-on reply does not hold the caller in silence. The tail is flushed when the tokens end. With
 * `firstClauseChars`, the first piece may be a clause (see SplitOptions).
 */

const ABBREVIATIONS = new Set([
  'mr',
  'mrs',
  'ms',
  'dr',
  'prof',
  'sr',
  'jr',
  'st',
  'mt',
  'vs',
  'no',
  'approx',
  'dept',
  'est',
  'inc',
  'ltd',
  'co',
  'jan',
  'feb',
  'mar',
  'apr',
  'jun',
  'jul',
  'aug',
  'sep',
  'sept',
  'oct',
  'nov',
  'dec',
  'e.g',
  'i.e',
  'a.m',
  'p.m',
  'u.s',
  'etc',
]);

const CLOSERS = '"\'”’)]}»';

export interface SplitOptions {
  /** Longest sentence before a forced cut, characters (default 250). */
  maxChars?: number;
  /**
   * The reply's first piece may end at a clause (`,` `;` `:` followed by white space) once it holds this
   * many characters: the caller hears "Thank you," while the LLM is still writing the rest of the
   * sentence (0: off, the default).
   */
  firstClauseChars?: number;
}

/**
 * End of a first clause in `buf` (index past its `,;:`), or -1. A `,` or `;` right after a letter ends it even
 * as the last character so far: an LLM's next token usually brings the space (" caller"), and waiting for it
 * would hold the first clause one token longer (after a digit it waits: `1,` may be `1,000`; so does `:`,
 * which may be `http:`).
 */
export function clauseEnd(buf: string, minChars: number): number {
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (c !== ',' && c !== ';' && c !== ':') continue;
    const ended = i + 1 < buf.length ? /\s/.test(buf[i + 1]) : c !== ':' && /\p{L}/u.test(buf[i - 1] ?? '');
    if (ended && buf.slice(0, i + 1).trim().length >= minChars) return i + 1;
  }
  return -1;
}

/** True when the `.` at `dot` in `s` (sentence starting at 0) is not a sentence end. */
function dotIsNotAnEnd(s: string, dot: number): boolean {
  const before = s.slice(0, dot);
  const word = /(\S+)$/.exec(before)?.[1] ?? '';
  const bare = word.replace(/^["'“‘([{«]+/, '');
  if (ABBREVIATIONS.has(bare.toLowerCase())) return true;
  if (/^[A-Z]$/.test(bare)) return true;
  if (/^\d+$/.test(bare) && before.trim() === word) return true;
  return false;
}

/**
 * Find the end of the first complete sentence in `buf`: the index just past it, or -1 when none is
 * certain yet (`final`: no more text will come, so punctuation at the very end counts).
 */
export function sentenceEnd(buf: string, final = false): number {
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (c === '\n') return i + 1;
    if (c !== '.' && c !== '!' && c !== '?') continue;
    let j = i + 1;
    while (j < buf.length && (buf[j] === '.' || buf[j] === '!' || buf[j] === '?')) j++;
    while (j < buf.length && CLOSERS.includes(buf[j])) j++;
    if (j === buf.length) return final ? j : -1;
    if (!/\s/.test(buf[j])) {
      i = j - 1;
      continue;
    }
    if (c === '.' && j === i + 1 && dotIsNotAnEnd(buf, i)) continue;
    return j;
  }
  return -1;
}

function forcedCut(buf: string, maxChars: number): number {
  const head = buf.slice(0, maxChars);
  const p = Math.max(head.lastIndexOf(','), head.lastIndexOf(';'), head.lastIndexOf(':'));
  if (p > maxChars / 3) return p + 1;
  const sp = head.lastIndexOf(' ');
  return sp > maxChars / 3 ? sp + 1 : maxChars;
}

/** Split a stream of text pieces into sentences (trimmed, never empty), each yielded as soon as it is certain. */
export async function* splitSentences(tokens: AsyncIterable<string>, opts: SplitOptions = {}): AsyncIterable<string> {
  const maxChars = Math.max(20, opts.maxChars ?? 250);
  const clause = Math.max(0, opts.firstClauseChars ?? 0);
  let first = true;
  let buf = '';
  for await (const t of tokens) {
    if (typeof t !== 'string' || !t) continue;
    buf += t;
    for (;;) {
      let end = sentenceEnd(buf);
      if (first && clause > 0) {
        const c = clauseEnd(buf, clause);
        if (c >= 0 && (end < 0 || c < end)) end = c;
      }
      if (end < 0 && buf.length > maxChars) end = forcedCut(buf, maxChars);
      if (end < 0) break;
      const s = buf.slice(0, end).trim();
      buf = buf.slice(end);
      if (s) {
        first = false;
        yield s;
      }
    }
  }
  for (;;) {
    const end = sentenceEnd(buf, true);
    if (end < 0) break;
    const s = buf.slice(0, end).trim();
    buf = buf.slice(end);
    if (s) yield s;
  }
  const tail = buf.trim();
  if (tail) yield tail;
}
