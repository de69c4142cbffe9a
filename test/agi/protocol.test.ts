import {
  buildCommand,
  parseArgs,
  parseEnvLine,
  parseNetworkScript,
  parseReply,
  quoteArg,
  envArgs,
  AgiParseError,
} from '../../src/agi/protocol';
import { AllowList, parseCidr } from '../../src/agi/cidr';
import { StageError } from '../../src/util/errors';
import { valuesFromArgs, callerNumber } from '../../src/agi/call';
import { recordingBase, safeToken } from '../../src/agi/recording';

describe('argument quoting', () => {
  const hostile = [
    'plain',
    'with space',
    'a "quoted" word',
    'back\\slash',
    'trailing backslash\\',
    '\\"',
    '" HANGUP',
    '"; EXEC System "rm -rf /"',
    '',
    'unicode: héllo wörld ☎',
    'tab\tinside',
  ];
  test.each(hostile)('Asterisk reads %j back as one argument, verbatim', (s) => {
    const line = buildCommand('SET VARIABLE', ['X', s]);
    expect(line.endsWith('\n')).toBe(true);
    expect(line.indexOf('\n')).toBe(line.length - 1);
    expect(parseArgs(line.slice(0, -1))).toEqual(['SET', 'VARIABLE', 'X', s]);
  });

  test.each(['line\nbreak', 'carriage\rreturn', 'nul\0byte', '\r\nHANGUP'])('refuses %j with a typed error', (s) => {
    let err: unknown;
    try {
      quoteArg(s);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StageError);
    expect((err as StageError).stage).toBe('agi');
    expect((err as StageError).kind).toBe('invalid_input');
  });

  test('numbers are quoted like strings', () => {
    expect(buildCommand('WAIT FOR DIGIT', [5000])).toBe('WAIT FOR DIGIT "5000"\n');
  });
});

describe('reply grammar (Asterisk 22)', () => {
  test.each([
    ['200 result=0', { code: 200, result: 0 }],
    ['200 result=0 endpos=15352', { code: 200, result: 0, endpos: 15352 }],
    ['200 result=-1 endpos=0', { code: 200, result: -1, endpos: 0 }],
    ['200 result=-1 endpos=8160', { code: 200, result: -1, endpos: 8160 }],
    ['200 result=1785 (timeout) endpos=23840', { code: 200, result: 1785, data: 'timeout', endpos: 23840 }],
    ['200 result=0 (timeout) endpos=80000', { code: 200, result: 0, data: 'timeout', endpos: 80000 }],
    ['200 result=35 (dtmf) endpos=4000', { code: 200, result: 35, data: 'dtmf', endpos: 4000 }],
    ['200 result=-1 (hangup) endpos=1200', { code: 200, result: -1, data: 'hangup', endpos: 1200 }],
    ['200 result=1 (42)', { code: 200, result: 1, data: '42' }],
    ['200 result=1 ()', { code: 200, result: 1, data: '' }],
    ['200 result=1 (a (nested) value)', { code: 200, result: 1, data: 'a (nested) value' }],
    ['200 result=1 (ends with paren) endpos=1)', { code: 200, result: 1, data: 'ends with paren) endpos=1' }],
    [
      '200 result=1 (value with ) endpos=5 inside) endpos=7',
      { code: 200, result: 1, data: 'value with ) endpos=5 inside', endpos: 7 },
    ],
    ['200 result=-1 (writefile)', { code: 200, result: -1, data: 'writefile' }],
    ['510 Invalid or unknown command', { code: 510, data: 'Invalid or unknown command' }],
    ['511 Command Not Permitted on a dead channel or intercept routine', { code: 511 }],
  ])('%s', (line, want) => {
    const r = parseReply(line);
    expect(r).toMatchObject(want);
    expect(r.raw).toBe(line);
  });

  test.each([
    '',
    'HELLO',
    '2x0 result=1',
    '200 result=',
    '200 result=abc',
    '200 resul=1',
    '200 result=1 garbage',
    '200 result=1 (unclosed',
    '200 result=1 endpos=x',
  ])('rejects %j as a bad_response', (line) => {
    expect(() => parseReply(line)).toThrow(AgiParseError);
  });
});

describe('environment block', () => {
  test('lines are split at the first colon and keep the rest verbatim', () => {
    expect(parseEnvLine('agi_network: yes')).toEqual(['network', 'yes']);
    expect(parseEnvLine('agi_request: agi://127.0.0.1:4573/dialer?a=b')).toEqual([
      'request',
      'agi://127.0.0.1:4573/dialer?a=b',
    ]);
    expect(parseEnvLine('agi_accountcode: ')).toEqual(['accountcode', '']);
    expect(parseEnvLine('agi_callerid: "Bob: the caller" <+12125550101>')).toEqual([
      'callerid',
      '"Bob: the caller" <+12125550101>',
    ]);
    expect(parseEnvLine('GET / HTTP/1.1')).toBeUndefined();
  });
  test('arguments and script', () => {
    const env = {
      arg_1: '42',
      arg_2: 'campaign_id=7',
      arg_4: 'ignored (gap)',
      network_script: 'dialer?secret=s3&phone=%2B1212',
    };
    expect(envArgs(env)).toEqual(['42', 'campaign_id=7']);
    const sc = parseNetworkScript(env.network_script);
    expect(sc.path).toBe('dialer');
    expect(sc.params.get('phone')).toBe('+1212');
    expect(valuesFromArgs(env)).toEqual({ CALL_ID: '42', CAMPAIGN_ID: '7', CONTACT_PHONE: '+1212' });
  });
  test('caller id forms', () => {
    expect(callerNumber('"Bob" <+12125550101>')).toBe('+12125550101');
    expect(callerNumber('+12125550101')).toBe('+12125550101');
    expect(callerNumber('unknown')).toBeUndefined();
  });
});

describe('allow-list', () => {
  test('IPv4, IPv6 and mapped addresses', () => {
    const a = new AllowList('10.0.0.0/8, 192.168.1.20, fd00::/8, ::1');
    expect(a.allows('10.1.2.3')).toBe(true);
    expect(a.allows('::ffff:10.1.2.3')).toBe(true);
    expect(a.allows('11.0.0.1')).toBe(false);
    expect(a.allows('192.168.1.20')).toBe(true);
    expect(a.allows('192.168.1.21')).toBe(false);
    expect(a.allows('fd12:3456::1')).toBe(true);
    expect(a.allows('fe80::1')).toBe(false);
    expect(a.allows('::1')).toBe(true);
    expect(a.allows('127.0.0.1')).toBe(false);
    expect(a.allows(undefined)).toBe(false);
    expect(new AllowList('0.0.0.0/0').allows('203.0.113.9')).toBe(true);
    expect(new AllowList('127.0.0.1/32').allows('127.0.0.2')).toBe(false);
    expect(new AllowList('::ffff:0:0/96').allows('::ffff:1.2.3.4')).toBe(false); // mapped addresses are compared as IPv4
  });
  test.each(['10.0.0.0/33', 'nonsense', '1.2.3/8', 'fd00::/129'])('rejects %j', (t) => {
    expect(() => parseCidr(t)).toThrow(/CIDR|prefix/);
  });
});

describe('recording names', () => {
  test('built only from the call id (made safe), the turn and a random id', () => {
    const p = recordingBase('/rec', '../../etc/passwd"; HANGUP', 3);
    expect(p.startsWith('/rec/call-')).toBe(true);
    expect(p).not.toMatch(/\.\.|"|;| /);
    expect(p).toMatch(/^\/rec\/call-[A-Za-z0-9_-]+-t3-[0-9a-f]{12}$/);
    expect(recordingBase('/rec', 7, 1)).not.toBe(recordingBase('/rec', 7, 1));
    expect(safeToken('')).toBe('call');
  });
});
