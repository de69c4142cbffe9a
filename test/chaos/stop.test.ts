/**
 * Chaos: SIGTERM (then a restart) and a full Deploy in place of SIGKILL, at random moments (seeded).
 * PostgreSQL when DATABASE_URL is set, PGlite otherwise. Conversations under way at a SIGTERM or a Deploy
 * run to their end (every utterance heard and answered), every call is recorded, SIGTERM exits 0.
 */
import { assertReport, runChaos } from './harness';

jest.setTimeout(300000);

const db = process.env.DATABASE_URL ? 'postgres' : 'pglite';

test('SIGTERM twice mid-campaign', async () => {
  const r = await runChaos({
    label: `sigterm/${db}`,
    fault: 'sigterm',
    faults: 2,
    contacts: 24,
    databaseUrl: process.env.DATABASE_URL || undefined,
  });
  expect(r.restarts).toBe(2);
  expect(r.liveAtStop).toBeGreaterThan(0); // the run exercised what it checks
  assertReport(r);
});

test('SIGTERM with a 1 s drain timeout: every conversation under way hears its goodbye, wherever it was', async () => {
  const r = await runChaos({
    label: `sigterm-goodbye/${db}`,
    fault: 'sigterm',
    faults: 2,
    contacts: 16,
    drainTimeout: 1,
    databaseUrl: process.env.DATABASE_URL || undefined,
  });
  expect(r.restarts).toBe(2);
  expect(r.endedPolitely).toBeGreaterThan(0); // the drain did end conversations
  assertReport(r);
});

test('Deploy (full) twice mid-campaign', async () => {
  const r = await runChaos({
    label: `deploy/${db}`,
    fault: 'deploy',
    faults: 2,
    contacts: 24,
    databaseUrl: process.env.DATABASE_URL || undefined,
  });
  expect(r.faults).toBe(2);
  expect(r.liveAtStop).toBeGreaterThan(0); // conversations were under way at the Deploys
  assertReport(r);
});
