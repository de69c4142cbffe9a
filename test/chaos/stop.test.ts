/**
 * Chaos: SIGTERM (then a restart) and a full Deploy in place of SIGKILL, at random moments (seeded).
 * PostgreSQL when DATABASE_URL is set, PGlite otherwise. The drain itself (calls finished or ended
 * politely, recorded, exit 0) is the crash-lease branch's: see LANDED in test/chaos/harness.ts.
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
  assertReport(r);
});
