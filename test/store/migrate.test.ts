import { runMigrations } from '../../src/store/migrate';
import { migrations } from '../../src/store/migrations';
import { dbTargets } from '../helpers/db';

describe.each(dbTargets().map((t) => [t().name, t] as const))('migrations on %s', (_name, make) => {
  const target = make();
  afterAll(() => target.cleanup());

  test('apply once, then are idempotent (also when run concurrently)', async () => {
    const db = await target.open({ migrate: false });
    try {
      const first = await runMigrations(db);
      expect(first.applied).toEqual(migrations.map((m) => m.version));
      const again = await Promise.all([runMigrations(db), runMigrations(db)]);
      expect(again.map((r) => r.applied)).toEqual([[], []]);
      expect(again[0].current).toBe(migrations[migrations.length - 1].version);
      const tables = await db.query<{ table_name: string }>(
        `select table_name from information_schema.tables where table_schema = 'public' order by 1`,
      );
      expect(tables.rows.map((r) => r.table_name)).toEqual(
        expect.arrayContaining([
          'campaigns',
          'contacts',
          'phone_numbers',
          'dnc',
          'calls',
          'call_turns',
          'schema_migrations',
        ]),
      );
    } finally {
      await db.close();
    }
  });
});
