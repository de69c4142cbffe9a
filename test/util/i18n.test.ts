import { memoTranslate } from '../../src/util/i18n';

/** A stand-in for RED._: `__name__` placeholders, like Node-RED's i18next set-up. */
function catalogue(calls: string[]) {
  const texts: Record<string, string> = {
    'a.status.done': 'done',
    'a.status.live': '__n__ live, __state__',
    'a.status.twice': '__n__ and __n__ again',
    'a.status.count': '__count__ item(s)',
  };
  return (key: string, vars?: Record<string, unknown>) => {
    calls.push(key);
    const s = texts[key] ?? key;
    return s.replace(/__(\w+)__/g, (_m, n: string) => String(vars?.[n] ?? ''));
  };
}

test('texts without variables are translated once', () => {
  const calls: string[] = [];
  const t = memoTranslate(catalogue(calls));
  expect([t('a.status.done'), t('a.status.done'), t('a.status.done')]).toEqual(['done', 'done', 'done']);
  expect(calls).toEqual(['a.status.done']);
});

test('texts with variables are translated once per key and variable names, values put in per call', () => {
  const calls: string[] = [];
  const t = memoTranslate(catalogue(calls));
  expect(t('a.status.live', { n: 1, state: 'up' })).toBe('1 live, up');
  expect(t('a.status.live', { n: 2000, state: 'a $& __n__ \u0001' })).toBe('2000 live, a $& __n__ \u0001');
  expect(t('a.status.live', { n: undefined, state: null })).toBe(' live, ');
  expect(t('a.status.twice', { n: 7 })).toBe('7 and 7 again');
  expect(t('a.status.twice', { n: 8 })).toBe('8 and 8 again');
  expect(t('unknown.key', { n: 3 })).toBe('unknown.key');
  expect(calls).toEqual(['a.status.live', 'a.status.twice', 'unknown.key']);
  // a value holding the marker character does not confuse the next call
  expect(t('a.status.live', { n: 5, state: 'ok' })).toBe('5 live, ok');
});

test('a count (plural forms) is translated every time', () => {
  const calls: string[] = [];
  const t = memoTranslate(catalogue(calls));
  expect([t('a.status.count', { count: 1 }), t('a.status.count', { count: 2 })]).toEqual(['1 item(s)', '2 item(s)']);
  expect(calls).toEqual(['a.status.count', 'a.status.count']);
});
