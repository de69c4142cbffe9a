import { describeWith, isCi, requireTool, testWith } from './tools';

describe('requireTool: a missing tool skips locally and fails under CI', () => {
  const saved = process.env.CI;
  afterEach(() => {
    if (saved === undefined) delete process.env.CI;
    else process.env.CI = saved;
    jest.restoreAllMocks();
  });

  test('present: run, whatever CI says', () => {
    process.env.CI = 'true';
    expect(requireTool('sh', true)).toBe(true);
    expect(describeWith('sh', true)).toBe(describe);
    expect(testWith('sh', true)).toBe(test);
  });

  test('missing, not CI: skip with a note naming the tool and how to get it', () => {
    delete process.env.CI;
    const lines: string[] = [];
    jest.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => (lines.push(String(c)), true));
    expect(isCi()).toBe(false);
    expect(requireTool('frobnicator', false, 'apt-get install frobnicator')).toBe(false);
    expect(describeWith('frobnicator', false)).toBe(describe.skip);
    expect(testWith('frobnicator', false)).toBe(test.skip);
    expect(lines[0]).toBe('SKIPPED (frobnicator): frobnicator is not available (apt-get install frobnicator)\n');
  });

  test.each(['true', '1', 'TRUE'])('missing under CI=%s: throws, so the suite fails', (ci) => {
    process.env.CI = ci;
    expect(() => requireTool('frobnicator', false, 'apt-get install frobnicator')).toThrow(
      'CI=true and frobnicator is not available (apt-get install frobnicator): the suites that need it must run in CI',
    );
    expect(() => describeWith('frobnicator', false)).toThrow(/must run in CI/);
  });
});
