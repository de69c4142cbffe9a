import { memoTranslate } from '../../src/util/i18n';

test('texts without variables are translated once; texts with variables every time', () => {
  const calls: string[] = [];
  const t = memoTranslate((key, vars) => {
    calls.push(key);
    return vars ? `${key}:${JSON.stringify(vars)}` : key.toUpperCase();
  });
  expect([t('a.status.done'), t('a.status.done'), t('a.status.done')]).toEqual([
    'A.STATUS.DONE',
    'A.STATUS.DONE',
    'A.STATUS.DONE',
  ]);
  expect(t('a.status.n', { n: 1 })).toBe('a.status.n:{"n":1}');
  expect(t('a.status.n', { n: 2 })).toBe('a.status.n:{"n":2}');
  expect(calls).toEqual(['a.status.done', 'a.status.n', 'a.status.n']);
});
