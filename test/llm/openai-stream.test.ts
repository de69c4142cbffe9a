/**
 * OpenAI-compatible chat with `stream: true` against a real HTTP server that writes server-sent events
 * piece by piece (and holds the rest until the test releases it), plus the scripted engine and runTurn in
 * stream mode.
 */
import http from 'http';
import type { AddressInfo } from 'net';
import { OpenAiChatEngine, type OpenAiChatOptions } from '../../src/llm/openai';
import { ScriptedEngine } from '../../src/llm/scripted';
import { runTurn } from '../../src/llm/turn';
import { ConversationStore } from '../../src/llm/history';
import { SseParser } from '../../src/llm/sse';
import { SpeakableFilter, streamDecision } from '../../src/llm/stream';
import { splitSentences } from '../../src/media/sentences';
import type { LlmRequest } from '../../src/llm/types';

interface Script {
  status?: number;
  contentType?: string;
  /** Pieces written in order; a function piece is awaited (a gate) before the next is written. */
  pieces: Array<string | (() => Promise<void>)>;
  /** Leave the connection open after the pieces. */
  hang?: boolean;
  /** Destroy the socket after the pieces. */
  drop?: boolean;
}
let next: Script[] = [];
const seen: any[] = [];
let server: http.Server;
let base: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', async () => {
      seen.push({ headers: req.headers, body: JSON.parse(raw) });
      const s = next.shift() ?? { pieces: [sse({ content: 'OK.' }, 'stop'), 'data: [DONE]\n\n'] };
      res.writeHead(s.status ?? 200, { 'content-type': s.contentType ?? 'text/event-stream' });
      for (const p of s.pieces) {
        if (typeof p === 'function') await p();
        else res.write(p);
      }
      if (s.drop) res.socket?.destroy();
      else if (!s.hang) res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(
  () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
);
beforeEach(() => {
  next = [];
  seen.length = 0;
});

/** One `chat.completion.chunk` event. */
function sse(delta: Record<string, unknown>, finish: string | null = null): string {
  const chunk = {
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1732490000,
    model: 'llama3.2',
    choices: [{ index: 0, delta, finish_reason: finish }],
  };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}
function gate(): { wait: () => Promise<void>; open: () => void } {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  return { wait: () => p, open };
}

function engine(o: Partial<OpenAiChatOptions> = {}) {
  return new OpenAiChatEngine({
    baseUrl: base,
    model: 'llama3.2',
    apiKey: 'sk-llm',
    systemPrompt: 'You call people.',
    mode: 'tools',
    transferTargets: ['sales'],
    ...o,
  });
}
function request(o: Partial<LlmRequest> = {}): LlmRequest {
  return {
    callId: 'c1',
    userText: 'Hello?',
    greeting: false,
    context: {},
    history: [],
    state: {},
    timeoutMs: 5000,
    ...o,
  };
}

describe('OpenAI-compatible chat, stream: true', () => {
  test('the first sentence is out before the server has sent the rest; the request asks for a stream', async () => {
    const g = gate();
    next.push({
      pieces: [
        sse({ role: 'assistant', content: '' }),
        sse({ content: 'Hello Ann' }),
        sse({ content: ', this is Dr. Lee. ' }),
        g.wait,
        sse({ content: 'Can you make it at 3.5' }),
        sse({ content: ' past two?' }, 'stop'),
        'data: [DONE]\n\n',
      ],
    });
    const s = streamDecision(engine(), request());
    const it = splitSentences(s.text)[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ value: 'Hello Ann, this is Dr. Lee.', done: false });
    g.open();
    expect(await it.next()).toEqual({ value: 'Can you make it at 3.5 past two?', done: false });
    expect((await it.next()).done).toBe(true);
    const d = await s.decision;
    expect(d.text).toBe('Hello Ann, this is Dr. Lee. Can you make it at 3.5 past two?');
    expect(d.firstTokenMs).toBeGreaterThan(0);
    expect(seen[0].body.stream).toBe(true);
    expect(seen[0].headers.accept).toMatch(/text\/event-stream/);
    expect(seen[0].headers.authorization).toBe('Bearer sk-llm');
  });

  test('tool calls streamed in fragments become the action; text before it is spoken', async () => {
    next.push({
      pieces: [
        sse({ content: 'Let me transfer you.' }),
        sse({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'trans', arguments: '' } }] }),
        sse({ tool_calls: [{ index: 0, function: { name: 'fer', arguments: '{"destin' } }] }),
        sse({ tool_calls: [{ index: 0, function: { arguments: 'ation":"sales"}' } }] }, 'tool_calls'),
        'data: [DONE]\n\n',
      ],
    });
    const parts: string[] = [];
    const d = await engine().stream(request(), (t) => parts.push(t));
    expect(d).toEqual({ text: 'Let me transfer you.', action: { type: 'transfer', destination: 'sales' } });
    expect(parts.join('')).toBe('Let me transfer you.');
  });

  test('an action without words speaks its default line', async () => {
    next.push({
      pieces: [
        sse({
          tool_calls: [{ index: 0, id: 'c', type: 'function', function: { name: 'add_to_dnc', arguments: '{}' } }],
        }),
        sse({}, 'tool_calls'),
        'data: [DONE]\n\n',
      ],
    });
    const parts: string[] = [];
    const d = await engine().stream(request(), (t) => parts.push(t));
    expect(d.action).toEqual({ type: 'add_to_dnc' });
    expect(parts.join('')).toBe(d.text);
    expect(d.text.length).toBeGreaterThan(0);
  });

  test('events split at any byte (CRLF, comments, a UTF-8 character cut in two) parse the same', async () => {
    const body =
      ': keep-alive\r\n\r\n' +
      sse({ content: 'Grüße, ' }).replace(/\n/g, '\r\n') +
      sse({ content: 'José.' }, 'stop') +
      'data: [DONE]\n\n';
    const bytes = Buffer.from(body, 'utf8');
    const pieces: string[] = [];
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 7) chunks.push(bytes.subarray(i, i + 7));
    const p = new SseParser();
    const events = chunks.flatMap((c) => p.push(c)).concat(p.end());
    expect(events.map((e) => e.data)).toEqual([
      JSON.stringify(JSON.parse(sse({ content: 'Grüße, ' }).slice(6))),
      JSON.stringify(JSON.parse(sse({ content: 'José.' }, 'stop').slice(6))),
      '[DONE]',
    ]);
    // and end to end through the server, one character per write
    next.push({ pieces: [...body].map((ch) => ch) });
    const d = await engine().stream(request(), (t) => pieces.push(t));
    expect(d.text).toBe('Grüße, José.');
    expect(pieces.join('')).toBe('Grüße, José.');
  });

  test('reasoning blocks are never spoken, even when a tag is split across deltas', async () => {
    next.push({
      pieces: [
        sse({ content: '<thi' }),
        sse({ content: 'nk>the user wants' }),
        sse({ content: ' a time</th' }),
        sse({ content: 'ink>Sure, **Tuesday** works.' }, 'stop'),
        'data: [DONE]\n\n',
      ],
    });
    const parts: string[] = [];
    const d = await engine().stream(request(), (t) => parts.push(t));
    expect(parts.join('')).toBe('Sure, Tuesday works.');
    expect(d.text).toBe('Sure, Tuesday works.');
    const f = new SpeakableFilter();
    expect(f.push('a <thinking') + f.end()).toBe('a <thinking');
  });

  test('JSON mode speaks the reply whole at the end, never the raw JSON', async () => {
    next.push({
      pieces: [
        sse({ content: '{"reply": "Goodbye', finish: null }),
        sse({ content: ' then.", "action": "end_call"}' }, 'stop'),
        'data: [DONE]\n\n',
      ],
    });
    const parts: string[] = [];
    const d = await engine({ mode: 'json' }).stream(request(), (t) => parts.push(t));
    expect(parts).toEqual(['Goodbye then.']);
    expect(d.action).toEqual({ type: 'end_call' });
  });

  test('a server that ignores stream: true and answers one JSON object still works', async () => {
    next.push({
      contentType: 'application/json',
      pieces: [
        JSON.stringify({
          choices: [{ message: { role: 'assistant', content: 'Fine, thanks.' }, finish_reason: 'stop' }],
        }),
      ],
    });
    const parts: string[] = [];
    expect((await engine().stream(request(), (t) => parts.push(t))).text).toBe('Fine, thanks.');
    expect(parts).toEqual(['Fine, thanks.']);
  });

  test.each([
    [
      'an error event mid-stream',
      { pieces: [sse({ content: 'Hi' }), 'data: {"error":{"message":"model overloaded"}}\n\n'] },
      /llm_bad_response/,
      /overloaded/,
    ],
    [
      'a stream that ends before [DONE]',
      { pieces: [sse({ content: 'Hi there' })] },
      /llm_bad_response/,
      /ended before/,
    ],
    ['a dropped connection', { pieces: [sse({ content: 'Hi' })], drop: true }, /llm_(network|bad_response)/, /./],
    ['an event that is not JSON', { pieces: ['data: {not json\n\n'] }, /llm_bad_response/, /not JSON/],
    [
      'HTTP 401',
      { status: 401, contentType: 'application/json', pieces: ['{"error":{"message":"bad key"}}'] },
      /llm_unauthorized/,
      /bad key/,
    ],
    [
      'HTTP 500',
      { status: 500, contentType: 'application/json', pieces: ['{"error":"boom"}'] },
      /llm_bad_response/,
      /500.*boom/,
    ],
  ])('%s is a typed failure, on the text stream and the decision', async (_n, script, code, message) => {
    next.push(script as Script);
    const s = streamDecision(engine(), request());
    const read = (async () => {
      for await (const t of s.text) void t;
    })();
    await expect(read).rejects.toMatchObject({
      code: expect.stringMatching(code),
      message: expect.stringMatching(message),
    });
    await expect(s.decision).rejects.toMatchObject({ code: expect.stringMatching(code) });
  });

  test('a stalled stream times out (streamIdleMs); the whole answer has a deadline (timeoutMs)', async () => {
    next.push({ pieces: [sse({ content: 'Hel' })], hang: true });
    await expect(engine({ streamIdleMs: 200 }).stream(request(), () => undefined)).rejects.toMatchObject({
      code: 'llm_timeout',
      message: expect.stringMatching(/stalled for 200 ms/),
    });
    const g = gate();
    next.push({ pieces: [sse({ content: 'Hel' }), g.wait], hang: true });
    let ticks = 0;
    await expect(
      engine({ streamIdleMs: 10000 }).stream(request({ timeoutMs: 300 }), () => ticks++),
    ).rejects.toMatchObject({ code: 'llm_timeout', message: expect.stringMatching(/within 300 ms/) });
    g.open();
    expect(ticks).toBe(1);
  });

  test('abort ends the request at once (barge-in during generation)', async () => {
    next.push({ pieces: [sse({ content: 'A long answer' })], hang: true });
    const ac = new AbortController();
    const p = engine().stream(request({ signal: ac.signal }), () => ac.abort());
    await expect(p).rejects.toMatchObject({ code: 'llm_network', message: expect.stringMatching(/aborted/) });
  });
});

describe('scripted engine and runTurn in stream mode', () => {
  test('the scripted engine streams its reply word by word', async () => {
    const e = new ScriptedEngine({});
    const parts: string[] = [];
    const d = await e.stream(request({ userText: 'yes that works' }), (t) => parts.push(t));
    expect(parts.length).toBeGreaterThan(3);
    expect(parts.join('')).toBe(d.text);
    expect(d.action).toEqual({ type: 'end_call' });
  });

  test('runTurn hands engine text piece by piece and rule replies whole, with firstTokenMs', async () => {
    const store = new ConversationStore();
    const parts: string[] = [];
    const r = await runTurn(
      new ScriptedEngine({}),
      { callId: 'x', userText: 'no I cannot', greeting: false, context: {}, onText: (t) => parts.push(t) },
      {},
      store,
    );
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.join('')).toBe(r.text);
    expect(r.firstTokenMs).toBeGreaterThanOrEqual(0);
    const dnc: string[] = [];
    const r2 = await runTurn(
      new ScriptedEngine({}),
      {
        callId: 'x',
        userText: 'please do not call me again',
        greeting: false,
        context: {},
        onText: (t) => dnc.push(t),
      },
      {},
      store,
    );
    expect(dnc).toEqual([r2.text]);
    expect(r2.action).toEqual({ type: 'add_to_dnc' });
  });

  test('an engine without stream() is one piece', async () => {
    const e = { name: 'x', label: 'x', decide: async () => ({ text: 'Just this.' }) };
    const s = streamDecision(e, request());
    const parts: string[] = [];
    for await (const t of s.text) parts.push(t);
    expect(parts).toEqual(['Just this.']);
  });
});
