/**
 * FastAGI wire format: argument quoting, command building, reply parsing and the environment block,
 * following Asterisk 22's grammar (see the Asterisk facts in docs/contributing/simulator.md).
 *
 * Replies: `200 result=N [(data)] [endpos=M]`, `510 Invalid or unknown command`,
 * `511 Command Not Permitted on a dead channel or intercept routine`, `520 ...` (one line) or the
 * multi-line usage reply `520-...` ... `520 End of proper usage.`. The asynchronous `HANGUP` line is
 * not a reply: the session handles it.
 */
import { StageError } from '../util/errors';
import type { AgiEnvironment, AgiReply } from './types';

/** Typed error for anything a caller passed that would break the line protocol. */
export function invalidInput(message: string): StageError {
  return new StageError('agi', 'invalid_input', message);
}

const FORBIDDEN = /[\r\n\0]/;

/** Refuse CR, LF and NUL: each would end the command line and let a second command through. */
export function assertSafe(value: string, what: string): void {
  if (FORBIDDEN.test(value)) throw invalidInput(`${what} contains a line break or NUL; refused`);
}

/**
 * Quote one argument the way Asterisk's parser (res_agi `parse_args`) reads it back verbatim:
 * inside double quotes, `"` and `\` are escaped with a backslash; spaces need nothing more.
 * CR/LF/NUL are refused with a typed error.
 */
export function quoteArg(value: string | number): string {
  const s = typeof value === 'number' ? String(value) : value;
  if (typeof s !== 'string') throw invalidInput(`argument must be a string, got ${typeof value}`);
  // Fast path: nothing to escape (the common case for variable names and generated paths).
  let plain = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 10 || c === 13 || c === 0) throw invalidInput('argument contains a line break or NUL; refused');
    if (c === 34 || c === 92) plain = false;
  }
  return plain ? `"${s}"` : `"${s.replace(/[\\"]/g, '\\$&')}"`;
}

/** `VERB arg1 arg2 ...\n` with every argument quoted. */
export function buildCommand(verb: string, args: Array<string | number> = []): string {
  assertSafe(verb, 'command');
  let line = verb;
  for (const a of args) line += ' ' + quoteArg(a);
  return line + '\n';
}

/**
 * The inverse of quoteArg, as Asterisk parses a command line: whitespace separates arguments,
 * double quotes group, backslash escapes the next character. Used by the simulator.
 */
export function parseArgs(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inQuote = false;
  let escaped = false;
  let started = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (escaped) {
      cur += ch;
      escaped = false;
      started = true;
      continue;
    }
    if (ch === '\\') {
      escaped = true;
      started = true;
      continue;
    }
    if (ch === '"') {
      inQuote = !inQuote;
      started = true;
      continue;
    }
    if (!inQuote && (ch === ' ' || ch === '\t')) {
      if (started) out.push(cur);
      cur = '';
      started = false;
      continue;
    }
    cur += ch;
    started = true;
  }
  if (started) out.push(cur);
  return out;
}

/** A reply line that does not follow the grammar. */
export class AgiParseError extends StageError {
  constructor(readonly line: string) {
    super('agi', 'bad_response', `unparseable reply line: ${JSON.stringify(line.slice(0, 200))}`);
  }
}

/** Parse a digit run at `i`, allowing a leading `-`. Returns [value, nextIndex] or undefined. */
function readInt(s: string, i: number): [number, number] | undefined {
  let neg = false;
  if (s.charCodeAt(i) === 45) {
    neg = true;
    i++;
  }
  const start = i;
  let v = 0;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
    i++;
  }
  if (i === start) return undefined;
  return [neg ? -v : v, i];
}

/**
 * Parse one complete reply (for multi-line 520 replies pass the joined lines; the code is taken
 * from the first line). Hand-written rather than a regex: this runs once per command.
 */
export function parseReply(raw: string): AgiReply {
  const line = raw;
  if (line.length < 3) throw new AgiParseError(raw);
  const c0 = line.charCodeAt(0) - 48;
  const c1 = line.charCodeAt(1) - 48;
  const c2 = line.charCodeAt(2) - 48;
  if (c0 < 0 || c0 > 9 || c1 < 0 || c1 > 9 || c2 < 0 || c2 > 9) throw new AgiParseError(raw);
  const code = c0 * 100 + c1 * 10 + c2;
  if (code !== 200) {
    // 510 / 511 / 520 carry text, not a result.
    return { code, result: -1, data: line.slice(4), raw };
  }
  // 200 result=N ...
  if (!line.startsWith(' result=', 3)) throw new AgiParseError(raw);
  const n = readInt(line, 11);
  if (!n) throw new AgiParseError(raw);
  const reply: AgiReply = { code, result: n[0], raw };
  let i = n[1];
  if (i === line.length) return reply;
  if (line.charCodeAt(i) !== 32) throw new AgiParseError(raw);
  i++;
  let tail = line.slice(i);
  if (tail.charCodeAt(0) === 40 /* ( */) {
    // Data runs to the LAST ')' after which only `key=value` pairs follow: a variable's value may
    // itself contain parentheses.
    let close = tail.lastIndexOf(')');
    while (close > 0) {
      const rest = tail.slice(close + 1);
      if (rest === '' || /^(?: [a-z_]+=\S*)+$/.test(rest)) break;
      close = tail.lastIndexOf(')', close - 1);
    }
    if (close <= 0) throw new AgiParseError(raw);
    reply.data = tail.slice(1, close);
    tail = tail.slice(close + 1).trimStart();
  }
  if (tail.length > 0) {
    for (const kv of tail.split(' ')) {
      if (!kv) continue;
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new AgiParseError(raw);
      if (kv.slice(0, eq) === 'endpos') {
        const v = readInt(kv, eq + 1);
        if (!v || v[1] !== kv.length) throw new AgiParseError(raw);
        reply.endpos = v[0];
      }
    }
  }
  return reply;
}

/**
 * Parse one environment line `agi_key: value` into [key without prefix, value]; undefined when the
 * line is not an agi_ variable (ignored, as Asterisk never sends such lines).
 */
export function parseEnvLine(line: string): [string, string] | undefined {
  if (!line.startsWith('agi_')) return undefined;
  const colon = line.indexOf(':');
  if (colon < 5) return undefined;
  const key = line.slice(4, colon);
  let value = line.slice(colon + 1);
  if (value.charCodeAt(0) === 32) value = value.slice(1);
  return [key, value];
}

/** The AGI script arguments (`agi_arg_1`...) in order. */
export function envArgs(env: AgiEnvironment): string[] {
  const out: string[] = [];
  for (let i = 1; env[`arg_${i}`] !== undefined; i++) out.push(env[`arg_${i}`]);
  return out;
}

/** Split `agi_network_script` (`dialer?secret=x&a=b`) into its path and query parameters. */
export function parseNetworkScript(script: string | undefined): { path: string; params: URLSearchParams } {
  const s = script ?? '';
  const q = s.indexOf('?');
  return q < 0
    ? { path: s, params: new URLSearchParams() }
    : { path: s.slice(0, q), params: new URLSearchParams(s.slice(q + 1)) };
}

/** Serialise an environment block as Asterisk sends it (used by the simulator and tests). */
export function formatEnv(pairs: Array<[string, string]>): string {
  let out = '';
  for (const [k, v] of pairs) {
    assertSafe(v, `environment value ${k}`);
    out += `agi_${k}: ${v}\n`;
  }
  return out + '\n';
}
