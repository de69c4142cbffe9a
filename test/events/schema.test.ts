import { EVENT_TYPES, eventSchemas, validate, validateEvent } from '../../src/events/schema';
import { buildEvent, route } from '../../src/events/builders';
import { Topics, topics } from '../../src/events/topics';
import { DialerError } from '../../src/util/errors';

const NOW = Date.parse('2026-01-02T03:04:05.678Z');
const call = {
  id: 42,
  campaignId: 7,
  contactId: 9,
  phone: '+15551230001',
  callerId: '+15550000000',
  channel: 'PJSIP/trunk-0001',
  contact: { id: 9, name: 'Ada', phone: '+15551230001' },
};

const valid: Record<string, Record<string, unknown>> = {
  call_started: { event: 'call_started', call },
  call_answered: { event: 'call_answered', call: { ...call, amd: { status: 'HUMAN' } } },
  status: { event: 'status', call, status: 'in_progress' },
  conversation_turn: {
    event: 'conversation_turn',
    call,
    turn: {
      seq: 1,
      userText: 'yes please',
      botText: 'Great, booked.',
      confidence: 0.91,
      timing: { recordMs: 2100, sttMs: 180, llmMs: 420, ttsMs: 90, playbackMs: 1500 },
    },
  },
  call_ended: {
    event: 'call_ended',
    call: {
      ...call,
      outcome: 'completed',
      durationMs: 63000,
      hangupCause: 16,
      transcript: [
        { seq: 0, botText: 'Hello' },
        { seq: 1, userText: 'hi', botText: 'Bye' },
      ],
    },
  },
  campaign_progress: {
    event: 'campaign_progress',
    progress: {
      campaignId: 7,
      queued: 80,
      dialing: 2,
      active: 3,
      completed: 10,
      failed: 1,
      no_answer: 2,
      busy: 1,
      dnc_skipped: 1,
    },
  },
};

describe('event schemas', () => {
  test.each(EVENT_TYPES.map((t) => [t]))('%s: a valid msg builds a valid, versioned event', (type) => {
    const e = buildEvent(valid[type], undefined, NOW);
    expect(e.type).toBe(type);
    expect(e.v).toBe(1);
    expect(e.ts).toBe('2026-01-02T03:04:05.678Z');
    expect(validateEvent(e)).toEqual([]);
    expect(validateEvent(JSON.parse(JSON.stringify(e)))).toEqual([]);
    expect(Buffer.byteLength(JSON.stringify(e))).toBeLessThan(2000);
  });

  test('call events carry the ids; turns carry text and timing; call_ended outcome, duration, transcript', () => {
    const turn = buildEvent(valid.conversation_turn, undefined, NOW) as any;
    expect(turn).toMatchObject({
      callId: 42,
      campaignId: 7,
      contactId: 9,
      seq: 1,
      userText: 'yes please',
      botText: 'Great, booked.',
      timing: { recordMs: 2100, sttMs: 180, llmMs: 420, ttsMs: 90, playbackMs: 1500 },
    });
    const ended = buildEvent(valid.call_ended, undefined, NOW) as any;
    expect(ended).toMatchObject({ outcome: 'completed', durationMs: 63000, hangupCause: 16 });
    expect(ended.transcript).toHaveLength(2);
    const p = buildEvent(valid.campaign_progress, undefined, NOW) as any;
    expect(p.total).toBe(100);
    expect(p.percent).toBe(15);
  });

  test('turn text falls back to msg.transcript / msg.reply; chat history becomes a transcript', () => {
    const e = buildEvent({
      event: 'conversation_turn',
      call,
      turn: { seq: 2, timing: {} },
      transcript: { text: 'maybe', confidence: 0.5 },
      reply: { text: 'ok', done: false, action: { type: 'end_call' } },
    }) as any;
    expect(e).toMatchObject({ userText: 'maybe', botText: 'ok', confidence: 0.5, action: 'end_call' });
    const ended = buildEvent(
      {
        event: 'call_ended',
        call: { ...call, outcome: 'completed', startedAt: new Date(NOW - 5000).toISOString() },
        history: [
          { role: 'system', content: 'x' },
          { role: 'assistant', content: 'Hello' },
          { role: 'user', content: 'Hi' },
        ],
      },
      undefined,
      NOW,
    ) as any;
    expect(ended.durationMs).toBe(5000);
    expect(ended.transcript).toEqual([
      { seq: 0, botText: 'Hello' },
      { seq: 1, userText: 'Hi' },
    ]);
  });

  const invalid: [string, Record<string, unknown>, RegExp][] = [
    ['no msg.call', { event: 'call_started' }, /msg\.call is missing/],
    ['no call id', { event: 'call_started', call: { phone: '+1555' } }, /msg\.call\.id/],
    ['call id with a topic wildcard', { event: 'call_started', call: { ...call, id: 'a/#' } }, /callId/],
    ['call_started without phone', { event: 'call_started', call: { id: 1, campaignId: null } }, /phone: is required/],
    ['unknown status', { event: 'status', call, status: 'partying' }, /status: must be one of/],
    ['turn without msg.turn', { event: 'conversation_turn', call }, /needs msg\.turn/],
    [
      'turn with negative seq',
      { event: 'conversation_turn', call, turn: { seq: -1, timing: {} } },
      /seq: must be >= 0/,
    ],
    [
      'turn with a string seq',
      { event: 'conversation_turn', call, turn: { seq: '1', timing: {} } },
      /seq: must be integer/,
    ],
    [
      'call_ended without outcome',
      { event: 'call_ended', call: { ...call, durationMs: 1 } },
      /needs msg\.call\.outcome/,
    ],
    [
      'call_ended with an unknown outcome',
      { event: 'call_ended', call: { ...call, durationMs: 1, outcome: 'exploded' } },
      /outcome: must be one of/,
    ],
    ['call_ended without duration', { event: 'call_ended', call: { ...call, outcome: 'failed' } }, /durationMs/],
    [
      'call_ended with a non-array transcript',
      { event: 'call_ended', call: { ...call, outcome: 'failed', durationMs: 5, transcript: 'hello' } },
      /must be an array/,
    ],
    ['progress without counters object', { event: 'campaign_progress', payload: 'nope' }, /needs msg\.progress/],
    [
      'progress without campaign id',
      { event: 'campaign_progress', progress: { queued: 1 } },
      /campaignId: is required/,
    ],
    [
      'progress with a negative counter',
      { event: 'campaign_progress', progress: { campaignId: 1, queued: -1 } },
      /queued: must be >= 0/,
    ],
    ['unknown event type', { event: 'call_exploded', call }, /unknown event type "call_exploded"/],
    ['no event type', { call }, /unknown event type undefined/],
  ];
  test.each(invalid)('invalid: %s -> DialerError event_invalid', (_name, msg, re) => {
    let err: unknown;
    try {
      buildEvent(msg);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DialerError);
    expect((err as DialerError).code).toBe('event_invalid');
    expect((err as Error).message).toMatch(re);
  });

  test.each(EVENT_TYPES.map((t) => [t]))('%s schema rejects wrong v, wrong type, extra fields, missing ts', (type) => {
    const good = buildEvent(valid[type], undefined, NOW) as any;
    expect(validateEvent({ ...good, v: 2 })).not.toEqual([]);
    expect(validate(eventSchemas[type], { ...good, type: 'status' === type ? 'call_started' : 'status' })).not.toEqual(
      [],
    );
    expect(validateEvent({ ...good, surprise: 1 })).toEqual([expect.stringMatching(/surprise: is not allowed/)]);
    const { ts: _ts, ...noTs } = good;
    expect(validateEvent(noTs)).toEqual([expect.stringMatching(/ts: is required/)]);
    expect(validateEvent({ ...good, ts: 'yesterday' })).not.toEqual([]);
  });

  test('validator basics: NaN, nested arrays, non-objects', () => {
    expect(validateEvent(null)).toEqual(['$: event must be an object']);
    expect(validateEvent('x')).toEqual(['$: event must be an object']);
    const e = buildEvent(valid.conversation_turn, undefined, NOW) as any;
    expect(validateEvent({ ...e, timing: { sttMs: NaN } })).toEqual([expect.stringMatching(/finite/)]);
    const ended = buildEvent(valid.call_ended, undefined, NOW) as any;
    expect(validateEvent({ ...ended, transcript: [{ seq: 0, userText: 5 }] })).toEqual([
      expect.stringMatching(/transcript\[0\]\.userText/),
    ]);
  });

  // validateEvent answers "valid" from a compiled predicate and asks the walker (validate) otherwise:
  // the predicate must never accept what the walker refuses.
  test.each(EVENT_TYPES.map((t) => [t]))(
    '%s: the compiled check agrees with the walker on hundreds of mutants',
    (type) => {
      const good = buildEvent(valid[type], undefined, NOW) as any;
      const odd: unknown[] = [
        undefined,
        null,
        true,
        false,
        0,
        -1,
        1.5,
        2 ** 40,
        NaN,
        Infinity,
        -Infinity,
        '',
        'x',
        'a/b',
        '+',
        'x'.repeat(129),
        'x'.repeat(10001),
        '2026-01-02T03:04:05.678Z',
        'HUMAN',
        'completed',
        'stream',
        [],
        [1],
        [{}],
        {},
        { seq: 1 },
        Object.create({ inherited: 1 }),
      ];
      // (not `type`: it picks the schema; the test above covers a wrong one)
      const keys = [
        ...Object.keys(good).filter((k) => k !== 'type'),
        'surprise',
        'toString',
        'constructor',
        '__proto__',
      ];
      let n = 0;
      const same = (e: unknown) => {
        expect(validateEvent(e)).toEqual(validate(eventSchemas[type], e));
        n++;
      };
      same(good);
      for (const k of keys)
        for (const v of odd) {
          const e = { ...good };
          Object.defineProperty(e, k, { value: v, enumerable: true, configurable: true, writable: true });
          same(e);
          const nested = Object.entries(good).find(([, x]) => x && typeof x === 'object');
          if (nested) {
            const [nk, nv] = nested;
            const inner: any = Array.isArray(nv) ? nv.map((x: any) => ({ ...x })) : { ...(nv as object) };
            const target = Array.isArray(inner) ? (inner[0] ?? (inner[0] = {})) : inner;
            for (const ik of [...Object.keys(target), 'extra'])
              same({ ...good, [nk]: Array.isArray(inner) ? [{ ...target, [ik]: v }] : { ...target, [ik]: v } });
          }
        }
      expect(n).toBeGreaterThan(250);
    },
  );
});

describe('topic tree', () => {
  test('routes events to the v1 topics with QoS 1; progress retained', () => {
    const e = buildEvent(valid.call_started);
    expect(route(e)).toMatchObject({ topic: 'ai-dialer/v1/calls/42/events', qos: 1, retain: false });
    const p = buildEvent(valid.campaign_progress);
    expect(route(p)).toMatchObject({ topic: 'ai-dialer/v1/campaigns/7/status', qos: 1, retain: true });
    expect(topics.callControl('abc-1')).toBe('ai-dialer/v1/calls/abc-1/control');
    expect(topics.campaignControl(3)).toBe('ai-dialer/v1/campaigns/3/control');
  });
  test('ids that would escape a topic level are refused', () => {
    for (const bad of ['a/b', '+', '#', '', 'x y', 'a\u0000', 'x'.repeat(129)])
      expect(() => topics.callEvents(bad)).toThrow(/cannot be used in an MQTT topic/);
    expect(() => new Topics('bad/#')).toThrow(/not valid/);
  });
  test('parse recognises the four topic kinds and nothing else', () => {
    const t = new Topics('test/run1');
    expect(t.parse('test/run1/calls/5/control')).toEqual({ kind: 'call_control', id: '5' });
    expect(t.parse('test/run1/campaigns/5/status')).toEqual({ kind: 'campaign_status', id: '5' });
    expect(t.parse('test/run1/calls/5/other')).toBeUndefined();
    expect(t.parse('ai-dialer/v1/calls/5/control')).toBeUndefined();
    expect(t.isControl('test/run1/campaigns/x/control')).toBe(true);
  });
});

test('conversation_turn says when the caller text was simulated (demo STT), and only then', () => {
  const base = {
    call: { id: 7, campaignId: 1 },
    turn: { seq: 1, userText: 'Yes, this is me.', botText: 'Great.', timing: { sttMs: 1 } },
  };
  const sim = buildEvent(
    { ...base, turn: { ...base.turn, simulated: true } },
    'conversation_turn',
  ) as unknown as Record<string, unknown>;
  expect(sim.simulated).toBe(true);
  expect(validateEvent(JSON.parse(JSON.stringify(sim)))).toEqual([]);
  const real = JSON.parse(JSON.stringify(buildEvent(base, 'conversation_turn'))) as Record<string, unknown>;
  expect('simulated' in real).toBe(false);
  expect(validateEvent({ ...real, simulated: 'yes' })).not.toEqual([]);
});
