/**
 * Chaos: SIGTERM (then a restart) and a full Deploy in place of SIGKILL, at random moments (seeded).
 * PostgreSQL when DATABASE_URL is set, PGlite otherwise. Conversations under way at a SIGTERM or a Deploy
 * run to their end (every utterance heard and answered), every call is recorded, SIGTERM exits 0.
 */
import { assertReport, chaosSeed, runChaos, type ChaosOptions, type ChaosReport } from './harness';
import { hasPostgres } from '../helpers/db';

jest.setTimeout(600000);

const db = hasPostgres() ? 'postgres' : 'pglite';

/**
 * Run until a run exercised what the test is about (`enough`), at most 3 runs: the faults come at random
 * moments, and one may find nothing under way. Every run's books are asserted in full, not just the last.
 */
async function exercised(o: ChaosOptions, enough: (r: ChaosReport) => boolean): Promise<ChaosReport> {
  const first = o.seed ?? chaosSeed();
  let r: ChaosReport | undefined;
  for (let i = 0; i < 3; i++) {
    r = await runChaos({ ...o, seed: first + i });
    assertReport(r);
    if (enough(r)) return r;
    process.stdout.write(`chaos ${o.label}: seed ${r.seed} found nothing under way at its faults; next seed\n`);
  }
  return r!;
}

test('SIGTERM twice mid-campaign', async () => {
  const r = await exercised(
    {
      label: `sigterm/${db}`,
      fault: 'sigterm',
      faults: 2,
      contacts: 24,
      databaseUrl: process.env.DATABASE_URL || undefined,
    },
    (x) => x.liveAtStop > 0,
  );
  expect(r.restarts).toBe(2);
  expect(r.liveAtStop).toBeGreaterThan(0); // the run exercised what it checks
});

test('SIGTERM with a 1 s drain timeout: every conversation under way hears its goodbye, wherever it was', async () => {
  const r = await exercised(
    {
      label: `sigterm-goodbye/${db}`,
      fault: 'sigterm',
      faults: 2,
      contacts: 16,
      drainTimeout: 1,
      databaseUrl: process.env.DATABASE_URL || undefined,
    },
    (x) => x.endedPolitely > 0,
  );
  expect(r.restarts).toBe(2);
  expect(r.endedPolitely).toBeGreaterThan(0); // the drain did end conversations
});

test('Deploy (full) twice mid-campaign', async () => {
  const r = await exercised(
    {
      label: `deploy/${db}`,
      fault: 'deploy',
      faults: 2,
      contacts: 24,
      databaseUrl: process.env.DATABASE_URL || undefined,
    },
    (x) => x.liveAtStop > 0,
  );
  expect(r.faults).toBe(2);
  expect(r.liveAtStop).toBeGreaterThan(0); // conversations were under way at the Deploys
});
