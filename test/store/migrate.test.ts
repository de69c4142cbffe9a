import fs from 'fs';
import os from 'os';
import path from 'path';
import { runMigrations, splitSql } from '../../src/store/migrate';
import { loadMigrations, migrations } from '../../src/store/migrations';
import { dbTargets } from '../helpers/db';

describe('migration files', () => {
  test('one file per version, increasing from 1 (gaps allowed: each lane owns a range), names unchanged (they are stored in schema_migrations)', () => {
    const versions = migrations.map((m) => m.version);
    expect(versions[0]).toBe(1);
    for (let i = 1; i < versions.length; i++) expect(versions[i]).toBeGreaterThan(versions[i - 1]);
    expect(migrations.slice(0, 7).map((m) => m.name)).toEqual([
      'initial schema',
      'campaign queue: time zones per campaign, pacing buckets, caller-id rotation',
      'campaign queue: due contacts by time zone (claim scans only open zones)',
      'campaign queue: the claim as a function with a cached generic plan (claim_contacts)',
      'campaign queue: drop calls_worker_open (reconciliation uses calls_open; one index less per claimed call)',
      'campaign queue: max_concurrent per campaign across every worker (settings.concurrency_scope campaign|worker)',
      'campaign queue: drop contacts_due (the claim reads contacts_due_zone; one index less to keep on import and retry)',
    ]);
    // the claim function: 006 defined it, 018 (maintained open-call slots), 031 (per-zone LATERAL,
    // no do-not-call probe), 032 (attempts in the due index), 033 (the due contacts in contact_queue) and 034 (the
    // queue's per-zone low-water mark), 036 (less executor work per call), 066 (its room as a fourth column) and
    // 067 (the calls' id sequence looked up once per claim) replace it; no other file
    expect(
      migrations.filter((m) => /create (or replace )?function claim_contacts/i.test(m.sql)).map((m) => m.version),
    ).toEqual([6, 18, 31, 32, 33, 34, 36, 66, 67]);
  });

  test('a file without its name line or with a version used twice is refused', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-mig-'));
    try {
      fs.writeFileSync(path.join(dir, '001-a.sql'), 'select 1;');
      expect(() => loadMigrations(dir)).toThrow(/name/);
      fs.writeFileSync(path.join(dir, '001-a.sql'), '-- name: a\nselect 1;');
      fs.writeFileSync(path.join(dir, 'README.md'), 'not a migration');
      expect(loadMigrations(dir)).toEqual([{ version: 1, name: 'a', sql: '-- name: a\nselect 1;' }]);
      fs.writeFileSync(path.join(dir, '0001-b.sql'), '-- name: b\nselect 2;');
      expect(() => loadMigrations(dir)).toThrow(/twice/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('statements split at top-level semicolons only', () => {
    const sql = [
      '-- name: x; not a statement',
      "insert into t values ('a;b', 'it''s; fine');",
      'create function f() returns int language plpgsql as $$ begin return 1; end $$;',
      'create function g() returns int language plpgsql as $fn$',
      'begin',
      '  -- a comment; inside the body',
      '  return 2;',
      'end',
      '$fn$;',
      '/* block; comment */ select "a;b" from t',
      '-- trailing comment only;',
    ].join('\n');
    const stmts = splitSql(sql);
    expect(stmts).toHaveLength(4);
    expect(stmts[0]).toMatch(/^-- name: x; not a statement\ninsert into t values \('a;b', 'it''s; fine'\)$/);
    expect(stmts[1]).toBe('create function f() returns int language plpgsql as $$ begin return 1; end $$');
    expect(stmts[2]).toMatch(/^create function g\(\)[\s\S]*return 2;\nend\n\$fn\$$/);
    expect(stmts[3]).toBe('/* block; comment */ select "a;b" from t\n-- trailing comment only;');
    expect(splitSql('-- only a comment;\n  \n')).toEqual([]);
  });
});

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
      // the claim function of the last claim migration (018: the campaign's open-call slot rows) is installed
      const fn = await db.query<{ src: string }>(`select prosrc as src from pg_proc where proname = 'claim_contacts'`);
      expect(fn.rows).toHaveLength(1);
      expect(fn.rows[0].src).toContain('from campaign_slots s');
      expect(fn.rows[0].src).not.toContain('pg_advisory_xact_lock');
    } finally {
      await db.close();
    }
  });

  test('two runtimes starting at once on an empty database: both succeed, each migration applied once', async () => {
    if (target.name !== 'postgres') return; // PGlite: one process holds the data directory
    const fresh = make();
    const [a, b] = [await fresh.open({ migrate: false }), await fresh.open({ migrate: false })];
    try {
      const reports = await Promise.all([runMigrations(a), runMigrations(b)]);
      expect([...reports[0].applied, ...reports[1].applied].sort((x, y) => x - y)).toEqual(
        migrations.map((m) => m.version),
      );
    } finally {
      await a.close();
      await b.close();
      await fresh.cleanup();
    }
  });

  test('a database stopped at an older version upgrades to the same schema', async () => {
    const db = await target.open({ migrate: false });
    try {
      await db.query('drop schema public cascade');
      await db.query('create schema public');
      const old = await runMigrations(
        db,
        migrations.filter((m) => m.version <= 3),
      );
      expect(old.current).toBe(3);
      const up = await runMigrations(db);
      expect(up.applied).toEqual(migrations.filter((m) => m.version > 3).map((m) => m.version));
      const fn = await db.query<{ n: number }>(
        `select count(*)::int as n from pg_proc where proname = 'claim_contacts'`,
      );
      expect(fn.rows[0].n).toBe(1);
    } finally {
      await db.close();
    }
  });
});
