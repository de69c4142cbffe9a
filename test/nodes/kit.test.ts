/**
 * The node kit with stand-ins for RED and a node: translations fall back to the node's English
 * catalogue, the runtime's settings reach the nodes through RED.settings.aiDialer (never
 * process.env), and onInput's failure rule: the failure output when wired, else done(err), never both.
 */
import { EventEmitter } from 'events';
import type { Node, NodeAPI } from 'node-red';
import { dialerEnv, dialerSettings, onInput, translator } from '../../nodes/lib/kit';
import { StageError } from '../../src/util/errors';

function fakeRED(catalog: Record<string, string> = {}, settings: Record<string, unknown> = {}): NodeAPI {
  return {
    _: (key: string) => catalog[key] ?? key,
    settings,
  } as unknown as NodeAPI;
}

test('translator: the runtime catalogue first, else the English file of the node, with variables', () => {
  const t = translator(fakeRED({ 'ari-originate.status.connected': 'verbunden' }), 'ari-originate');
  expect(t('status.connected')).toBe('verbunden');
  expect(t('status.live', { n: 3 })).toBe('3 live');
  expect(t('status.unauthorized', { s: 5 })).toBe('ARI login refused, retry 5 s');
  expect(t('no.such.key')).toBe('no.such.key');
  expect(translator(fakeRED(), 'ai-dialer-store')('warn.turnFailed', { error: 'x' })).toBe(
    'could not record the turn: x',
  );
});

test('settings: RED.settings.aiDialer over the environment, which is never written', () => {
  const before = { ...process.env };
  const RED = fakeRED(
    {},
    {
      aiDialer: {
        dataDir: '/data',
        ari: { url: 'http://sim', username: 'u', password: 'p' },
        simulated: true,
        mqttTcp: false,
      },
    },
  );
  expect(dialerSettings(RED).dataDir).toBe('/data');
  const env = dialerEnv(RED);
  expect(env).toMatchObject({
    DATA_DIR: '/data',
    ARI_URL: 'http://sim',
    ARI_USERNAME: 'u',
    ARI_PASSWORD: 'p',
    AI_DIALER_SIMULATED: '1',
    MQTT_TCP_DISABLED: '1',
  });
  expect(process.env).toEqual(before);
  expect(dialerSettings(fakeRED())).toEqual({});
  expect(dialerEnv(fakeRED())).toEqual(process.env);
});

function fakeNode(wires: string[][]) {
  const n = new EventEmitter() as EventEmitter & { wires: string[][] };
  n.wires = wires;
  return n;
}

async function run(node: ReturnType<typeof fakeNode>, msg: Record<string, unknown>) {
  const sent: unknown[] = [];
  const done = await new Promise<Error | undefined>((resolve) =>
    node.emit(
      'input',
      msg,
      (m: unknown) => sent.push(m),
      (err?: Error) => resolve(err),
    ),
  );
  return { sent, done };
}

test('onInput: result sent then done; a failure to the wired failure output with msg.error, else done(err), never both', async () => {
  const failures: Error[] = [];
  const handler = (msg: Record<string, unknown>) => {
    if (msg.fail) throw new StageError('tts', 'network', 'down', { engine: 'x' });
    return [msg, null] as never;
  };
  const wired = fakeNode([['a'], ['b']]);
  onInput(wired as unknown as Node, handler, {
    failureOutput: 1,
    outputs: 2,
    stage: 'tts',
    onFailure: (e) => failures.push(e),
  });
  expect(await run(wired, { ok: 1 })).toEqual({ sent: [[{ ok: 1 }, null]], done: undefined });
  const f = await run(wired, { fail: 1 });
  expect(f.done).toBeUndefined();
  expect(f.sent).toEqual([
    [null, { fail: 1, error: { stage: 'tts', kind: 'network', engine: 'x', message: 'tts (x): down' } }],
  ]);

  const unwired = fakeNode([['a'], []]);
  onInput(unwired as unknown as Node, handler, { failureOutput: 1, outputs: 2, stage: 'tts' });
  const u = await run(unwired, { fail: 1 });
  expect(u.sent).toEqual([]);
  expect(u.done).toBeInstanceOf(StageError);
  expect(failures).toHaveLength(1);

  // without a stage, errors reach done() as thrown
  const plain = fakeNode([['a']]);
  onInput(plain as unknown as Node, () => Promise.reject(new TypeError('nope')));
  const p = await run(plain, {});
  expect(p.done).toBeInstanceOf(TypeError);
});

test('onInput: a node removed by a Deploy aborts the handlers in flight, whose failure is then dropped', async () => {
  const node = Object.assign(fakeNode([['a'], ['b']]), { id: 'kit-removed' });
  let signal: AbortSignal | undefined;
  onInput(
    node as unknown as Node,
    (_m, ctx) =>
      new Promise((_r, reject) => {
        signal = ctx.signal;
        ctx.signal.addEventListener('abort', () => reject(new Error('aborted')));
      }),
    { failureOutput: 1, outputs: 2, stage: 'llm' },
  );
  const pending = run(node, {});
  await new Promise<void>((r) => node.emit('close', true, () => r()));
  expect(signal?.aborted).toBe(true);
  expect(await pending).toEqual({ sent: [], done: undefined });
});

test('onInput: a redeployed node lets its handlers in flight finish; what they send, and msgs that still reach it, go through its next instance', async () => {
  const sentByNext: unknown[] = [];
  const received: unknown[] = [];
  const old = Object.assign(fakeNode([['a']]), { id: 'kit-redeployed' });
  let finishStep!: (v: unknown) => void;
  onInput(old as unknown as Node, () => new Promise((r) => (finishStep = r)) as never);
  const pending = run(old, { step: 'record' });
  await new Promise<void>((r) => old.emit('close', false, () => r()));
  // a msg on its way when the flows stopped
  const late = run(old, { step: 'late' });
  // the Deploy starts the node's next instance (same id)
  const next = Object.assign(fakeNode([['a']]), {
    id: 'kit-redeployed',
    send: (m: unknown) => sentByNext.push(m),
    receive: (m: unknown) => received.push(m),
  });
  onInput(next as unknown as Node, (m) => m as never);
  finishStep({ step: 'record', done: true });
  const r = await pending;
  expect(r.sent).toEqual([]); // not through the closed instance
  await new Promise((res) => setImmediate(res));
  expect(sentByNext).toEqual([{ step: 'record', done: true }]);
  expect((await late).sent).toEqual([]);
  expect(received).toEqual([{ step: 'late' }]);
});
