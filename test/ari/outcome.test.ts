/** The outcome table, AMD classification and the originate request's sanitising, as pure functions. */
import { finalOutcome, classifyAmd, causeText } from '../../src/ari/outcome';
import { cleanPhone, fieldVariableName, variableValue, endpointFor, channelVariables } from '../../src/ari/calls';
import { errorForStatus, errorForNetwork, normaliseBaseUrl } from '../../src/ari/client';
import { resolveAriOptions, dialEndpoint } from '../../src/ari/service';

describe('final outcome: dialstatus first, cause second', () => {
  test.each([
    [{ answered: true, cancelled: false, cause: 16 }, 'completed'],
    [{ answered: true, cancelled: true, cause: 16 }, 'cancelled'],
    [{ answered: false, cancelled: true, dialStatus: 'RINGING', cause: 16 }, 'cancelled'],
    [{ answered: false, cancelled: false, dialStatus: 'BUSY', cause: 17 }, 'busy'],
    [{ answered: false, cancelled: false, dialStatus: 'BUSY', cause: 0 }, 'busy'], // Local channel + Busy()
    [{ answered: false, cancelled: false, dialStatus: 'CONGESTION', cause: 0 }, 'congestion'], // Local + Congestion()
    [{ answered: false, cancelled: false, dialStatus: 'CONGESTION', cause: 34 }, 'congestion'],
    [{ answered: false, cancelled: false, dialStatus: 'RINGING', cause: 19 }, 'no_answer'], // originate timeout
    [{ answered: false, cancelled: false, dialStatus: 'NOANSWER', cause: 19 }, 'no_answer'],
    [{ answered: false, cancelled: false, dialStatus: 'RINGING', cause: 16 }, 'no_answer'],
    [{ answered: false, cancelled: false, dialStatus: 'CHANUNAVAIL', cause: 20 }, 'failed'],
    [{ answered: false, cancelled: false, cause: 17 }, 'busy'],
    [{ answered: false, cancelled: false, cause: 18 }, 'no_answer'],
    [{ answered: false, cancelled: false, cause: 42 }, 'congestion'],
    [{ answered: false, cancelled: false, cause: 1 }, 'failed'],
    [{ answered: false, cancelled: false, cause: 0 }, 'failed'],
    [{ answered: false, cancelled: false }, 'failed'],
  ])('%j -> %s', (input, want) => {
    expect(finalOutcome(input).outcome).toBe(want);
  });
  test("cause texts are Asterisk's", () => {
    expect(causeText(16)).toBe('Normal Clearing');
    expect(causeText(17)).toBe('User busy');
    expect(causeText(19)).toBe('User alerting, no answer');
    expect(causeText(34)).toBe('Circuit/channel congestion');
    expect(causeText(999)).toBe('Unknown');
  });
});

describe('AMD classification', () => {
  test('NOTSURE (incl. TOOLONG) is human unless configured; MACHINE machine; missing = NOTRUN human', () => {
    expect(classifyAmd('HUMAN', 'HUMAN-300-800')).toEqual({ status: 'HUMAN', cause: 'HUMAN-300-800', path: 'human' });
    expect(classifyAmd('MACHINE', 'MAXWORDS-6-5').path).toBe('machine');
    expect(classifyAmd('NOTSURE', 'TOOLONG-5000').path).toBe('human');
    expect(classifyAmd('notsure', 'TOOLONG-5000', { notSureAs: 'machine' }).path).toBe('machine');
    expect(classifyAmd('HANGUP', undefined).path).toBe('hangup');
    expect(classifyAmd(undefined, undefined)).toEqual({ status: 'NOTRUN', path: 'human' });
    expect(classifyAmd('garbage\n', 'x')).toEqual({ status: 'NOTRUN', path: 'human' });
  });
});

describe('originate request sanitising', () => {
  test('phone numbers: formatting removed, anything else refused', () => {
    expect(cleanPhone('+1 (212) 555-0101')).toBe('+12125550101');
    expect(cleanPhone('12125550101')).toBe('12125550101');
    expect(cleanPhone(12125550101)).toBe('12125550101');
    for (const bad of ['', '+', 'abc', '+1212&app=evil', '1212@other', '1'.repeat(40), null, undefined, {}])
      expect(cleanPhone(bad)).toBeUndefined();
  });
  test('field names and values cannot inject', () => {
    expect(fieldVariableName('first name')).toBe('CONTACT_FIRST_NAME');
    expect(fieldVariableName('Zoë')).toBe('CONTACT_ZOE');
    expect(fieldVariableName('a})${SHELL(rm)}')).toBe('CONTACT_A_SHELL_RM');
    expect(fieldVariableName('***')).toBeUndefined();
    expect(variableValue('a\r\nb\u0000c')).toBe('a b c');
    expect(variableValue('x'.repeat(600))).toHaveLength(512);
    expect(variableValue({ a: 1 })).toBeUndefined();
    expect(variableValue(7)).toBe('7');
  });
  test('endpoint template needs {phone}', () => {
    expect(endpointFor('PJSIP/{phone}@trunk', '+1212')).toBe('PJSIP/+1212@trunk');
    expect(endpointFor('Local/{phone}@from-internal', '100')).toBe('Local/100@from-internal');
    expect(() => endpointFor('PJSIP/trunk', '1')).toThrow(/\{phone\}/);
  });
  test('channel variables: ours win over same-named fields; AMD flags', () => {
    const v = channelVariables(
      { id: 5, phone: 'x', campaignId: 2, amd: true, fields: { phone: 'spoof', id: 'spoof', plan: 'gold' } },
      '+1212',
    );
    expect(v).toEqual({
      CALL_ID: '5',
      CONTACT_PHONE: '+1212',
      CAMPAIGN_ID: '2',
      CONTACT_PLAN: 'gold',
      AMD_ENABLED: '1',
      AMD_NOTSURE: 'human',
    });
    const many = Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`f${i}`, i]));
    expect(
      Object.keys(channelVariables({ id: 1, phone: '1', fields: many }, '11')).filter((k) => k.startsWith('CONTACT_F')),
    ).toHaveLength(50);
  });
});

describe('settings and errors', () => {
  test('HTTP statuses and socket errors map to kinds', () => {
    expect(errorForStatus(401, 'x').kind).toBe('unauthorized');
    expect(errorForStatus(404, 'x', '{"message":"Channel not found"}').message).toMatch(/HTTP 404 Channel not found/);
    expect(errorForStatus(400, 'x').kind).toBe('invalid_input');
    expect(errorForStatus(409, 'x').kind).toBe('refused');
    expect(errorForStatus(500, 'x').kind).toBe('bad_response');
    expect(errorForNetwork(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), 'y').kind).toBe('network');
    expect(errorForNetwork(Object.assign(new Error('x'), { code: 'ETIMEDOUT' }), 'y').kind).toBe('timeout');
  });
  test('URLs and environment', () => {
    expect(normaliseBaseUrl('http://ast:8088/ari/').toString()).toBe('http://ast:8088/');
    expect(() => normaliseBaseUrl('not a url')).toThrow(/not a valid URL/);
    expect(
      resolveAriOptions({ mode: 'env' }, { ARI_URL: 'http://a:8088', ARI_USERNAME: 'u', ARI_PASSWORD: 'p' }),
    ).toEqual({ url: 'http://a:8088', username: 'u', password: 'p', app: 'ai-dialer' });
    expect(() => resolveAriOptions({ mode: 'env' }, {})).toThrow(/ARI_URL is not set/);
    expect(() => resolveAriOptions({ mode: 'env' }, { ARI_URL: 'http://a', ARI_USERNAME: 'u' })).toThrow(
      /ARI_PASSWORD/,
    );
    expect(() => resolveAriOptions({ mode: 'manual', url: 'http://a', username: 'u' })).toThrow(/password is empty/);
    expect(dialEndpoint('', { DIAL_ENDPOINT: 'Local/{phone}@from-internal' })).toBe('Local/{phone}@from-internal');
    expect(dialEndpoint(undefined, {})).toBe('PJSIP/{phone}@trunk');
  });
});
