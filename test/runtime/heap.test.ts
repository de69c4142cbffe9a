/**
 * HEAP_GROWING_PERCENT (src/runtime/heap.ts): the V8 flag the packaged runtime sets at start, and when it
 * sets none; the flag checked against the V8 of the Node.js running the tests. What it changes under load
 * is measured by bench/calls (docs/contributing/benchmarks.md), not asserted here: V8's own factor is larger
 * than 3 for small synthetic loads and smaller under a busy runtime's.
 */
import { execFileSync, spawnSync } from 'child_process';
import { DEFAULT_HEAP_GROWING_PERCENT, heapGrowingFlag } from '../../src/runtime/heap';

test('the default is a growth of 200 %; 0 leaves it to V8; a whole number from 1 to 400 is taken', () => {
  expect(DEFAULT_HEAP_GROWING_PERCENT).toBe(200);
  expect(heapGrowingFlag({}, [])).toBe('--heap-growing-percent=200');
  expect(heapGrowingFlag({ HEAP_GROWING_PERCENT: ' ' }, [])).toBe('--heap-growing-percent=200');
  expect(heapGrowingFlag({ HEAP_GROWING_PERCENT: '0' }, [])).toBeUndefined();
  expect(heapGrowingFlag({ HEAP_GROWING_PERCENT: '50' }, [])).toBe('--heap-growing-percent=50');
  expect(heapGrowingFlag({ HEAP_GROWING_PERCENT: '400' }, [])).toBe('--heap-growing-percent=400');
});

test.each(['-1', '1.5', '401', 'lots', '100; rm -rf /', '0x10'])('HEAP_GROWING_PERCENT=%s is refused by name', (v) => {
  expect(() => heapGrowingFlag({ HEAP_GROWING_PERCENT: v }, [])).toThrow(
    `HEAP_GROWING_PERCENT must be a whole number from 0 to 400 (got "${v}")`,
  );
});

test('a --heap-growing-percent on the command line of Node.js itself wins: none is set', () => {
  expect(heapGrowingFlag({}, ['--heap-growing-percent=30'])).toBeUndefined();
  expect(
    heapGrowingFlag({ HEAP_GROWING_PERCENT: '200' }, ['--expose-gc', '--heap_growing_percent=30']),
  ).toBeUndefined();
  // a flag of another name that starts alike is not it
  expect(heapGrowingFlag({}, ['--heap-growing-percentage=30'])).toBe('--heap-growing-percent=200');
  // Node.js refuses the flag in NODE_OPTIONS (exit code 9), so only the command line can carry it
  const r = spawnSync(process.execPath, ['-e', '1'], {
    env: { ...process.env, NODE_OPTIONS: '--heap-growing-percent=30' },
    encoding: 'utf8',
  });
  expect(r.status).toBe(9);
  expect(r.stderr).toContain('is not allowed in NODE_OPTIONS');
});

test("the flag is one this Node.js's V8 knows (a Node.js upgrade that drops it fails here, not silently)", () => {
  const help = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
  expect(help).toMatch(/--heap-growing-percent \(specifies heap growing factor/);
  // and setting it at run time, as startRuntime does, is accepted (an unknown flag prints an error)
  const set = (flag: string) =>
    spawnSync(process.execPath, ['-e', `require('v8').setFlagsFromString(${JSON.stringify(flag)})`], {
      encoding: 'utf8',
    });
  expect(set(heapGrowingFlag({}, [])!)).toMatchObject({ status: 0, stderr: '' });
  expect(set('--heap-growing-percentage=200').stderr).toContain('unrecognized flag'); // what a wrong one does
});
