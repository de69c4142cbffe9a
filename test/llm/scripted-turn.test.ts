import { ScriptedEngine, isDoNotCallRequest, DEFAULT_SCRIPT } from '../../src/llm/scripted';
import { runTurn } from '../../src/llm/turn';
import { ConversationStore, trimHistory, conversations, dropConversation } from '../../src/llm/history';
import { queueSupervisorLine } from '../../src/events/control-bus';
import { templateContext } from '../../src/util/template';
import type { LlmEngine, LlmRequest } from '../../src/llm/types';

const ctx = templateContext({
  call: { id: 1, phone: '+1555', contact: { name: 'Maria', fields: { day: 'Friday' } } },
  campaign: { name: 'City Clinic' },
});

describe('scripted engine', () => {
  const engine = new ScriptedEngine({
    greeting: 'Hi {{contact.name}}, City Clinic here about {{contact.day}}. Can you come?',
    intents: [
      {
        name: 'yes',
        match: 'yes, sure, that works',
        reply: 'Great, see you {{contact.day}}. Goodbye.',
        action: 'end_call',
      },
      {
        name: 'time',
        match: '/\\b(\\d{1,2})( ?(am|pm))?\\b/i',
        reply: 'Noted. We will call you back.',
        action: 'schedule_callback',
      },
      {
        name: 'human',
        match: 'agent, real person',
        reply: 'Transferring you now.',
        action: 'transfer',
        destination: '600@agents',
      },
      { name: 'price', match: 'how much, price, cost', reply: 'The visit is covered by your plan.' },
    ],
  });
  const run = (callId: string, userText: string, store: ConversationStore, greeting = false) =>
    runTurn(engine, { callId, userText, greeting, context: ctx }, {}, store);

  test('greeting, keyword intent with a templated reply and an action', async () => {
    const store = new ConversationStore();
    await expect(run('a', '', store, true)).resolves.toMatchObject({
      text: 'Hi Maria, City Clinic here about Friday. Can you come?',
      done: false,
      engine: 'scripted',
      source: 'greeting',
    });
    await expect(run('a', 'What does it cost?', store)).resolves.toMatchObject({
      text: 'The visit is covered by your plan.',
      done: false,
    });
    await expect(run('a', 'Yes, that works!', store)).resolves.toMatchObject({
      text: 'Great, see you Friday. Goodbye.',
      done: true,
      action: { type: 'end_call' },
    });
    expect(store.has('a')).toBe(false); // dropped when the call is done
  });

  test('keywords match whole words, ignoring case, punctuation and curly apostrophes', () => {
    expect(engine.match('YES!')?.name).toBe('yes');
    expect(engine.match('yesterday was fine')).toBeUndefined();
    expect(engine.match('Can I talk to a REAL person?')?.name).toBe('human');
    expect(
      new ScriptedEngine({ intents: [{ match: "can't", reply: 'x' }] }).match('I can\u2019t make it'),
    ).toBeDefined();
  });

  test('regular expression intents, transfer and callback actions', async () => {
    const store = new ConversationStore();
    await expect(run('b', 'maybe at 3 pm', store)).resolves.toMatchObject({
      action: { type: 'schedule_callback', time: 'maybe at 3 pm' },
      done: true,
    });
    await expect(run('c', 'put me through to an agent', store)).resolves.toMatchObject({
      text: 'Transferring you now.',
      action: { type: 'transfer', destination: '600@agents' },
    });
  });

  test('fallback, then goodbye after too many misses in a row', async () => {
    const store = new ConversationStore();
    await expect(run('d', 'purple monkey', store)).resolves.toMatchObject({
      text: DEFAULT_SCRIPT.fallback,
      done: false,
    });
    await expect(run('d', 'what does it cost', store)).resolves.toMatchObject({ done: false }); // a hit resets the count
    await expect(run('d', 'blah', store)).resolves.toMatchObject({ text: DEFAULT_SCRIPT.fallback, done: false });
    await expect(run('d', 'blah blah', store)).resolves.toMatchObject({ text: DEFAULT_SCRIPT.fallback, done: false });
    await expect(run('d', 'blah blah blah', store)).resolves.toMatchObject({
      text: DEFAULT_SCRIPT.goodbye,
      done: true,
      action: { type: 'end_call', reason: 'not understood' },
    });
  });

  test('"do not call me" puts the number on the do-not-call list and says goodbye (any engine, before the engine)', async () => {
    const store = new ConversationStore();
    for (const said of [
      'Please do not call me again.',
      "Don't call this number!",
      'stop calling me',
      'Stop calling!',
      "please don't call again, thanks",
      'Never phone us again',
      'Take me off your list',
      'unsubscribe',
      'I want to be on the do not call list',
    ]) {
      const r = await run(`dnc-${said}`, said, store);
      expect(r).toMatchObject({ done: true, action: { type: 'add_to_dnc' }, source: 'dnc' });
      expect(r.text).toMatch(/not call you again.*Goodbye/);
    }
    for (const said of [
      'Yes, call me on Friday',
      'I do not know',
      'please call me back later',
      'You can stop by anytime',
      'I never call anyone on Sundays',
      "I don't call people back",
      'Stop, call me tomorrow instead',
    ]) {
      expect([said, isDoNotCallRequest(said)]).toEqual([said, false]);
    }
  });

  test('the default script works without any configuration (the demo)', async () => {
    const store = new ConversationStore();
    const e = new ScriptedEngine();
    const g = await runTurn(e, { callId: 'demo', greeting: true, context: ctx }, {}, store);
    expect(g.text).toBe('Hello Maria, this is a reminder call from City Clinic. Can you still make your appointment?');
    await expect(
      runTurn(e, { callId: 'demo', userText: 'Yes, this is me.', greeting: false, context: ctx }, {}, store),
    ).resolves.toMatchObject({ done: true, action: { type: 'end_call' } });
    await expect(
      runTurn(
        e,
        { callId: 'demo2', userText: 'Please do not call me again.', greeting: false, context: ctx },
        {},
        store,
      ),
    ).resolves.toMatchObject({ action: { type: 'add_to_dnc' } });
  });

  test('invalid configuration is a clear not_configured error', () => {
    expect(() => new ScriptedEngine({ intents: [{ match: '/(unclosed/', reply: 'x' }] })).toThrow(
      expect.objectContaining({
        stage: 'llm',
        kind: 'not_configured',
        message: expect.stringContaining('invalid regular expression'),
      }),
    );
    expect(() => new ScriptedEngine({ intents: [{ match: ' , ', reply: 'x' }] })).toThrow(/no keywords/);
    expect(() => new ScriptedEngine({ intents: [{ match: 'a', reply: 'x', action: 'launch' as any }] })).toThrow(
      /unknown action/,
    );
    expect(() => new ScriptedEngine({ intents: [{ match: 'a', reply: 'x', action: 'transfer' }] })).toThrow(
      /needs a destination/,
    );
    expect(
      () => new ScriptedEngine({ intents: [{ match: 'a', reply: 'x', action: 'transfer', destination: '1;Dial(x)' }] }),
    ).toThrow(/needs a destination/);
  });
});

describe('turn layer', () => {
  function counting(reply = 'engine reply'): LlmEngine & { calls: LlmRequest[] } {
    const calls: LlmRequest[] = [];
    return {
      name: 'fake',
      label: 'fake:1',
      calls,
      decide: async (r) => (calls.push({ ...r, history: r.history.slice() }), { text: reply }),
    };
  }

  test('a queued supervisor line is the reply and the engine is skipped', async () => {
    const store = new ConversationStore();
    const e = counting();
    queueSupervisorLine('sup-1', 'A supervisor will join the call shortly.');
    const r = await runTurn(e, { callId: 'sup-1', userText: 'hello?', greeting: false, context: {} }, {}, store);
    expect(r).toMatchObject({ text: 'A supervisor will join the call shortly.', done: false, source: 'supervisor' });
    expect(r.action).toBeUndefined();
    expect(e.calls).toHaveLength(0);
    const r2 = await runTurn(e, { callId: 'sup-1', userText: 'ok', greeting: false, context: {} }, {}, store);
    expect(r2.source).toBe('engine');
    expect(e.calls[0].history).toEqual([
      { role: 'user', content: 'hello?' },
      { role: 'assistant', content: 'A supervisor will join the call shortly.' },
    ]);
  });

  test('silence: the no-input line without an engine call, then goodbye', async () => {
    const store = new ConversationStore();
    const e = counting();
    await expect(
      runTurn(e, { callId: 's', userText: '', greeting: false, context: {} }, { maxSilences: 1 }, store),
    ).resolves.toMatchObject({ source: 'silence', done: false });
    await expect(
      runTurn(
        e,
        { callId: 's', userText: '  ', greeting: false, context: {} },
        { maxSilences: 1, goodbye: 'Bye {{contact.name|now}}.' },
        store,
      ),
    ).resolves.toMatchObject({ text: 'Bye now.', done: true, action: { type: 'end_call', reason: 'no input' } });
    expect(e.calls).toHaveLength(0);
  });

  test('history is kept per call, trimmed to the budget, and separate between calls', async () => {
    const store = new ConversationStore();
    const e = counting('x'.repeat(100));
    for (let i = 0; i < 20; i++)
      await runTurn(
        e,
        { callId: 'h1', userText: `turn ${i} ` + 'y'.repeat(100), greeting: false, context: {} },
        { historyChars: 1000 },
        store,
      );
    await runTurn(e, { callId: 'h2', userText: 'other call', greeting: false, context: {} }, {}, store);
    const last = e.calls[19];
    const size = last.history.reduce((n, m) => n + m.content.length + 16, 0);
    expect(size).toBeLessThanOrEqual(1000);
    expect(last.history[last.history.length - 1].content).toBe('x'.repeat(100));
    expect(last.history[last.history.length - 2].content).toMatch(/^turn 18 /);
    expect(e.calls[20].history).toEqual([]);
    dropConversation('h1');
    expect(conversations.has('h1')).toBe(false);
  });

  test('trimHistory keeps the newest message even when alone over budget', () => {
    const h = [
      { role: 'user' as const, content: 'a'.repeat(50) },
      { role: 'assistant' as const, content: 'b'.repeat(500) },
    ];
    expect(trimHistory(h, 100)).toEqual([h[1]]);
  });

  test('the store is bounded: idle calls expire and the least recently used goes at the cap', () => {
    let now = 0;
    const store = new ConversationStore({ maxCalls: 3, idleMs: 1000, now: () => now });
    store.get('a');
    store.get('b');
    store.get('c');
    store.get('a'); // a is recent again
    store.get('d'); // evicts b
    expect(['a', 'b', 'c', 'd'].filter((k) => store.has(k))).toEqual(['a', 'c', 'd']);
    now = 5000;
    store.get('e'); // the idle ones go
    expect(store.size).toBe(1);
  });
});

test("the default flow's script answers the demo talker's lines each with a reply that fits, never the same twice", async () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const flow = require('../../flows/ai-dialer.json') as Array<Record<string, any>>;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { demoPersona } = require('../../src/sim/persona') as typeof import('../../src/sim/persona');
  const node = flow.find((n) => n.type === 'llm-turn' && Array.isArray(n.intents))!;
  const e = new ScriptedEngine({ greeting: node.greeting, goodbye: node.goodbye, intents: node.intents });
  const store = new ConversationStore();
  const lines = demoPersona('+12125550009').utterances!.map((u) => (typeof u === 'string' ? u : u.text));
  expect(lines).toHaveLength(3);
  const replies = [];
  for (const userText of lines)
    replies.push(await runTurn(e, { callId: 'talker', userText, greeting: false, context: ctx }, {}, store));
  expect(new Set(replies.map((r) => r.text)).size).toBe(lines.length);
  const reply = (name: string) => node.intents.find((i: { name: string }) => i.name === name).reply;
  expect(replies.map((r) => r.text)).toEqual([reply('confirm'), reply('time'), reply('done')]);
  expect(replies[2]).toMatchObject({ done: true, action: { type: 'end_call' } });
});
