/**
 * Status texts fit under a node in the editor (STATUS_MAX characters; longer ones run into the nodes
 * beside and below): every status text in the catalogues, rendered with the longest values it shows,
 * every status builder given hostile input, and no status object built outside the builders.
 */
import fs from 'fs';
import path from 'path';
import { STATUS_MAX, failureStatus, fitStatus, status, statusOf } from '../../src/controllers/view';
import { originateStatus } from '../../src/controllers/ari-originate';
import { queueStatus } from '../../src/controllers/campaign-queue';
import { StageError } from '../../src/util/errors';
import type { Translate } from '../../src/util/i18n';

const ROOT = path.resolve(__dirname, '..', '..');
const NODES = path.join(ROOT, 'nodes');

type Cat = { [k: string]: string | Cat };
/** Every node's English catalogue. */
const catalogues: [string, Cat][] = fs
  .readdirSync(NODES)
  .filter((ns) => fs.existsSync(path.join(NODES, ns, 'locales', 'en-US', `${ns}.json`)))
  .map((ns) => [
    ns,
    (JSON.parse(fs.readFileSync(path.join(NODES, ns, 'locales', 'en-US', `${ns}.json`), 'utf8')) as Cat)[ns] as Cat,
  ]);

/** The longest value each placeholder of a status text takes in practice. */
const LONGEST: Record<string, string> = {
  n: '9999',
  active: '9999',
  sent: '9999999',
  buffered: '99999',
  dropped: '99999',
  percent: '100',
  state: 'completed',
  where: '192.168.100.200:4573', // fastagi-in's listening address
  to: '+123456789012345', // a transfer's extension (E.164 at most 15 digits)
  seconds: '999.9',
  digit: '#',
  s: '300',
  name: 'ARI_PASSWORD',
  status: 'CHANUNAVAIL', // an agent's DIALSTATUS when not reached
};

const render = (text: string): string =>
  text.replace(/__(\w+)__/g, (_m, k: string) => {
    if (!(k in LONGEST)) throw new Error(`status placeholder __${k}__ has no longest value in this test`);
    return LONGEST[k];
  });

/** The English translator of node `ns`, as the kit gives it. */
const english =
  (cat: Cat): Translate =>
  (key, vars) => {
    let v: string | Cat | undefined = cat;
    for (const part of key.split('.')) v = typeof v === 'object' ? v[part] : undefined;
    if (typeof v !== 'string') throw new Error(`no text ${key}`);
    return v.replace(/__(\w+)__/g, (_m, name: string) => String(vars?.[name] ?? ''));
  };
const cat = (ns: string): Cat => catalogues.find(([n]) => n === ns)![1];

test('STATUS_MAX is short (Node-RED cuts its own debug status at 32)', () => {
  expect(STATUS_MAX).toBeLessThanOrEqual(32);
});

test('every status text in every catalogue fits with its longest values', () => {
  const long: string[] = [];
  let seen = 0;
  for (const [ns, c] of catalogues) {
    const texts = c.status;
    if (!texts || typeof texts !== 'object') continue;
    for (const [key, text] of Object.entries(texts)) {
      if (typeof text !== 'string') continue;
      seen++;
      const shown = render(text);
      if (shown.length > STATUS_MAX) long.push(`${ns}.status.${key}: "${shown}" (${shown.length})`);
    }
  }
  expect(seen).toBeGreaterThan(30);
  expect(long).toEqual([]);
});

test('every builder fits any text: whitespace folded, cut with an ellipsis', () => {
  const hostile = `${'a very long engine error message '.repeat(10)}\n\tand more`;
  for (const make of Object.values(status)) expect(make(hostile).text!.length).toBeLessThanOrEqual(STATUS_MAX);
  expect(statusOf('red', 'dot', hostile).text).toMatch(/^a very long engine error .*…$/);
  expect(fitStatus('  two\n lines ')).toBe('two lines');
  expect(fitStatus('x'.repeat(STATUS_MAX))).toBe('x'.repeat(STATUS_MAX));
  expect(fitStatus('x'.repeat(STATUS_MAX + 1))).toHaveLength(STATUS_MAX);
  expect(failureStatus(new Error(hostile)).text!.length).toBeLessThanOrEqual(STATUS_MAX);
  expect(failureStatus(new StageError('tts', 'timeout', hostile)).text).toBe('tts timeout');
});

test("ari-originate's and campaign-queue's statuses fit in every state, with the longest values", () => {
  const t = english(cat('ari-originate'));
  const states = ['idle', 'connecting', 'connected', 'reconnecting', 'unauthorized', 'unreachable', 'error'] as const;
  for (const s of states)
    for (const info of [{ retryInMs: 300_000 }, { error: 'x'.repeat(300) }, { missing: 'ARI_PASSWORD' }]) {
      const st = originateStatus(s, 99_999, t, info);
      expect(st.text!.length).toBeLessThanOrEqual(STATUS_MAX);
    }
  expect(originateStatus('error', 0, t, { missing: 'ARI_URL', error: 'long' }).text).toBe('ARI_URL not set');

  const q = english(cat('campaign-queue'));
  const run = { state: 'running', inFlight: { size: 9999 } };
  const progress = { state: 'completed', percent: 100, queued: 99_999, completed: 99_999, failed: 99_999 };
  const shown = [
    queueStatus([], undefined, q),
    queueStatus([run], undefined, q),
    queueStatus([run, run], progress as never, q),
    queueStatus([{ ...run, lastError: 'y'.repeat(500) }], undefined, q),
  ];
  for (const st of shown) expect(st.text!.length).toBeLessThanOrEqual(STATUS_MAX);
});

test('no node or controller builds a status with a text outside the builders', () => {
  const files = [
    ...fs.readdirSync(path.join(ROOT, 'src', 'controllers')).map((f) => path.join(ROOT, 'src', 'controllers', f)),
    ...fs
      .readdirSync(NODES)
      .flatMap((ns) =>
        fs.statSync(path.join(NODES, ns)).isDirectory()
          ? fs.readdirSync(path.join(NODES, ns)).map((f) => path.join(NODES, ns, f))
          : [],
      ),
  ].filter((f) => f.endsWith('.ts') && !f.endsWith(path.join('controllers', 'view.ts')));
  expect(files.length).toBeGreaterThan(20);
  const literal = /\bstatus\(\s*\{\s*(fill|shape|text)\b|\btext:\s*[^,}]*\b(fill|shape):|\{\s*fill:\s*'/;
  const offenders = files.filter((f) => literal.test(fs.readFileSync(f, 'utf8'))).map((f) => path.relative(ROOT, f));
  expect(offenders).toEqual([]);
});
