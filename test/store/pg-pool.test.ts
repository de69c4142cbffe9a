/**
 * The PostgreSQL pool keeps the connections it opened (issue #17): pg-pool closes a connection idle for 10 s
 * by default, and each reopened one cost the server a backend start, the claim warm-up and the planning of
 * every named statement again, in bursts, when calls ended together after a quiet stretch.
 */
import { spawnSync } from 'child_process';
import { postgresTarget, type DbTarget } from '../helpers/db';
import { describeWith, testWith } from '../helpers/tools';
import { KEEPALIVE_MS, type Db } from '../../src/store/db';

/** iproute2's `ss`: it shows a socket's keepalive timer (Debian: apt-get install iproute2). */
const hasSs = spawnSync('ss', ['-V']).status === 0;

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

  testWith(
    'ss (iproute2)',
    hasSs,
    'apt-get install iproute2',
  )(
    'every connection, of the pool and of a lane, has TCP keepalive on (a silent middlebox cannot leave a dead one)',
    async () => {
      const lane = db.lane!('keepalive-test', 1);
      const ports = [
        (await db.query<{ port: number }>('select inet_client_port() as port')).rows[0].port,
        (await lane.query<{ port: number }>('select inet_client_port() as port')).rows[0].port,
      ];
      for (const port of ports) {
        // this process's end of the connection, as the kernel has it: `timer:(keepalive,<left>,0)`
        const out = spawnSync('ss', ['-tnoH', 'state', 'established', `( sport = :${port} )`], {
          encoding: 'utf8',
        }).stdout;
        expect(out).toContain(`:${port}`);
        const m = /timer:\(keepalive,(?:(\d+)min)?(?:(\d+)(?:\.\d+)?sec)?/.exec(out);
        expect(m).not.toBeNull();
        const leftMs = (Number(m![1] ?? 0) * 60 + Number(m![2] ?? 0)) * 1000;
        expect(leftMs).toBeLessThanOrEqual(KEEPALIVE_MS);
      }
    },
  );
});
