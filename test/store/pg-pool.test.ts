/**
 * The PostgreSQL pool keeps the connections it opened (issue #17): pg-pool closes a connection idle for 10 s
 * by default, and each reopened one cost the server a backend start, the claim warm-up and the planning of
 * every named statement again, in bursts, when calls ended together after a quiet stretch.
 */
import { postgresTarget, type DbTarget } from '../helpers/db';
import { describeWith } from '../helpers/tools';
import type { Db } from '../../src/store/db';

/** pg-pool's default idle timeout (node_modules/pg-pool): the wait below is what is tested. */
const PG_POOL_DEFAULT_IDLE_MS = 10_000;

describeWith('PostgreSQL (DATABASE_URL)', !!process.env.DATABASE_URL)('the main pool (PostgreSQL)', () => {
  let target: DbTarget;
  let db: Db;
  beforeAll(async () => {
    target = postgresTarget(process.env.DATABASE_URL!);
    db = await target.open({ poolSize: 3 });
  });
  afterAll(async () => {
    await db?.close();
    await target?.cleanup();
  });

  /** The backends of three statements run at once (each holds its connection for 100 ms). */
  async function threeBackends(): Promise<number[]> {
    const r = await Promise.all(
      [0, 1, 2].map(() => db.query<{ pid: number }>('select pg_backend_pid() as pid from pg_sleep(0.1)')),
    );
    return r.map((x) => x.rows[0].pid).sort((a, b) => a - b);
  }

  test('connections idle for longer than pg-pool closes them by default are kept: the same backends serve', async () => {
    const before = await threeBackends();
    expect(new Set(before).size).toBe(3);
    await new Promise((r) => setTimeout(r, PG_POOL_DEFAULT_IDLE_MS + 1500));
    const alive = await db.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity where pid = any($1::int[])`,
      [before],
    );
    expect(alive.rows[0].n).toBe(3);
    expect(await threeBackends()).toEqual(before);
  }, 30_000);
});
