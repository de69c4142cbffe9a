/**
 * Suites that need something outside npm (a browser, docker-compose, PostgreSQL, Mosquitto, espeak-ng,
 * a real Asterisk...) ask here whether to run. Locally a missing tool skips the suite with a visible
 * note; under CI=true it fails instead, so a green CI run cannot hide a suite that never ran.
 */

/** True under CI (CI=true or CI=1, as .ci/run and most CI services set it). */
export function isCi(): boolean {
  return /^(true|1)$/i.test(process.env.CI ?? '');
}

/**
 * `available`: whether `name` is there. Returns true to run; false (locally) to skip, after printing
 * why and how to get it (`hint`). Under CI it throws: call it at module level or in beforeAll so the
 * suite fails.
 */
export function requireTool(name: string, available: boolean, hint = ''): boolean {
  if (available) return true;
  const why = `${name} is not available${hint ? ` (${hint})` : ''}`;
  if (isCi()) throw new Error(`CI=true and ${why}: the suites that need it must run in CI`);
  process.stderr.write(`SKIPPED (${name}): ${why}\n`);
  return false;
}

/** `describe` when the tool is there, else `describe.skip` (see requireTool). */
export function describeWith(name: string, available: boolean, hint = ''): jest.Describe {
  return requireTool(name, available, hint) ? describe : describe.skip;
}

/** `test` when the tool is there, else `test.skip` (see requireTool). */
export function testWith(name: string, available: boolean, hint = ''): jest.It {
  return requireTool(name, available, hint) ? test : test.skip;
}
