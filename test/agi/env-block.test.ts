/**
 * The environment block in Asterisk's own order, read whole from one read, is parsed in one match
 * (session.ts, ASTERISK_BLOCK); a block that arrives in parts, or that differs in any way, is read line
 * by line. These pin that both give the same session: the same environment (keys, order, values), the
 * same refusals (line length, line count), and the same handling of what follows the block in the read.
 * The socket is a stand-in, so that the reads are split exactly where the test says.
 */
import { EventEmitter } from 'events';
import type { Socket } from 'net';
import { FastAgiSession, type SessionOptions } from '../../src/agi/session';
import { ASTERISK_ENV_SAMPLE } from '../helpers/agi-env';

class FakeSocket extends EventEmitter {
  writableEnded = false;
  remoteAddress = '127.0.0.1';
  written: string[] = [];
  setNoDelay(): this {
    return this;
  }
  write(s: string): boolean {
    this.written.push(s);
    return true;
  }
  end(): this {
    this.writableEnded = true;
    return this;
  }
  destroy(): this {
    this.emit('close');
    return this;
  }
}

const ORDER = ASTERISK_ENV_SAMPLE;

/** Asterisk-order lines `agi_<key><sep><value><eol>`, `sep` and `eol` per line (default ': ' and '\n'). */
function block(
  values: Partial<Record<string, string>> = {},
  sep: (i: number) => string = () => ': ',
  eol: (i: number) => string = () => '\n',
  end = '\n',
  extra = '',
): string {
  return ORDER.map(([k, v], i) => `agi_${k}${sep(i)}${values[k] ?? v}${eol(i)}`).join('') + extra + end;
}

interface Outcome {
  ready: boolean;
  closed: boolean;
  hungUp: boolean;
  env?: Array<[string, string]>;
  envError?: [string, string];
}

/** One session fed `chunks` as its reads, in order. */
function feed(chunks: Buffer[], opts: SessionOptions = {}): Outcome {
  const sock = new FakeSocket();
  const s = new FastAgiSession(sock as unknown as Socket, opts);
  let envError: [string, string] | undefined;
  s.on('envError', (err: Error, reason: string) => (envError ??= [reason, err.message])); // the first (a refusal destroys the socket: 'closed' follows)
  for (const c of chunks) sock.emit('data', c);
  const out: Outcome = { ready: s.ready, closed: s.closed, hungUp: s.hungUp, envError };
  if (s.ready) out.env = Object.entries(s.env);
  return out;
}

/** The same bytes in one read (the whole block at once), and split after the first line (line by line). */
function both(text: string, opts?: SessionOptions): { whole: Outcome; split: Outcome } {
  const b = Buffer.from(text, 'utf8');
  const cut = b.indexOf(10) + 1;
  return { whole: feed([b], opts), split: feed([b.subarray(0, cut), b.subarray(cut)], opts) };
}

test('the usual block: every value as the line-by-line parse reads it, in order', () => {
  const { whole, split } = both(block());
  expect(whole.ready).toBe(true);
  expect(whole.env).toEqual(ORDER);
  expect(whole).toEqual(split);
});

// every row has its options (a row shorter than the callback's parameters would make jest pass `done`)
test.each<[string, string, SessionOptions]>(
  (
    [
      ['CRLF line ends, the empty line too', block({}, undefined, () => '\r\n', '\r\n')],
      ['LF and CRLF mixed', block({}, undefined, (i) => (i % 2 ? '\r\n' : '\n'))],
      ['no space after the colon, or two', block({}, (i) => (i % 3 === 0 ? ':' : i % 3 === 1 ? ':  ' : ': '))],
      [
        'values with colons, tabs, quotes, UTF-8 and a space only',
        block({ callerid: 'a: b:c', calleridname: 'José\t"日本"', dnid: ' ', rdnis: '  x ' }),
      ],
      ['an empty value with no space at all', block({ accountcode: '' }, (i) => (i === 20 ? ':' : ': '))],
      ['a carriage return inside a value', block({ calleridname: 'a\rb' })],
      ['a value ending in two carriage returns', block({ calleridname: 'x\r' }, undefined, () => '\r\n')],
      ['script arguments after the usual keys', block({}, undefined, undefined, '\n', 'agi_arg_1: secret=x\n')],
      ['a key spelled differently', block().replace('agi_callington:', 'agi_callingTon:')],
      ['a key missing', block().replace('agi_dnid: unknown\n', '')],
      ['a command line right behind the block in the same read', block() + 'HANGUP\n'],
      ['an unfinished line right behind the block', block() + '200 res'],
      ['lines each within maxLineLength, the block longer', block(), { maxLineLength: 60 }],
      ['a line longer than maxLineLength', block(), { maxLineLength: 40 }],
      ['exactly maxEnvLines lines', block(), { maxEnvLines: 22 }],
      ['more than maxEnvLines lines', block(), { maxEnvLines: 21 }],
    ] as Array<[string, string, SessionOptions?]>
  ).map(([name, text, opts]) => [name, text, opts ?? {}]),
)('%s: the same session read whole as read line by line', (_name, text, opts) => {
  const { whole, split } = both(text, opts);
  expect(whole).toEqual(split);
});

test('the refusals and the values the cases above pin', () => {
  expect(both(block(), { maxLineLength: 40 }).whole.envError).toEqual(['protocol', 'agi: line longer than 40 bytes']);
  expect(both(block(), { maxEnvLines: 21 }).whole.envError).toEqual(['bad_env', 'agi: more than 21 environment lines']);
  expect(both(block(), { maxLineLength: 60 }).whole.env).toEqual(ORDER);
  const env = (t: string) => new Map(both(t).whole.env);
  expect(env(block({ calleridname: 'a\rb' })).get('calleridname')).toBe('a\rb');
  expect(env(block({ calleridname: 'x\r' }, undefined, () => '\r\n')).get('calleridname')).toBe('x\r');
  expect(env(block({}, () => ':  ')).get('network')).toBe(' yes');
  expect(env(block({}, () => ':')).get('network')).toBe('yes');
  expect(env(block({ rdnis: '  x ' })).get('rdnis')).toBe('  x ');
  expect(env(block({}, undefined, undefined, '\n', 'agi_arg_1: secret=x\n')).get('arg_1')).toBe('secret=x');
  expect(both(block() + 'HANGUP\n').whole.hungUp).toBe(true);
});

test('a block that differs only at its end (script arguments) is declined at once, not by exponential backtracking', () => {
  // every value starts with a space: with ` ?` in the pattern each line could match two ways (2^22 tries)
  const text = block(
    Object.fromEntries(ORDER.map(([k, v]) => [k, ' ' + v])),
    undefined,
    undefined,
    '\n',
    'agi_arg_1: x\n',
  );
  const t0 = performance.now();
  const { whole, split } = both(text);
  expect(performance.now() - t0).toBeLessThan(500);
  expect(whole).toEqual(split);
  expect(new Map(whole.env).get('arg_1')).toBe('x');
});
