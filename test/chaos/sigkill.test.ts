/**
 * Chaos: the runtime is killed with SIGKILL at random moments (seeded) in the middle of a simulated
 * campaign, and restarted. PostgreSQL when DATABASE_URL is set, PGlite otherwise. What is asserted:
 * test/chaos/harness.ts (books).
 */
import { assertReport, runChaos } from './harness';
import { hasPostgres } from '../helpers/db';

jest.setTimeout(300000);

test('SIGKILL three times mid-campaign: no do-not-call request and no heard turn is lost', async () => {
  const r = await runChaos({
    label: `sigkill/${hasPostgres() ? 'postgres' : 'pglite'}`,
    fault: 'sigkill',
    faults: 3,
    contacts: 32,
    databaseUrl: process.env.DATABASE_URL || undefined,
  });
  expect(r.faults).toBe(3);
  expect(r.restarts).toBe(3);
  expect(r.answered).toBeGreaterThan(0);
  expect(r.dncUnderstood).toBeGreaterThan(0); // the run exercised what it checks
  assertReport(r);
});
