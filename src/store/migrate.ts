import type { Queryable } from './db';
import { migrations, type Migration } from './migrations';

export interface MigrationReport {
  applied: number[];
  current: number;
}

/** Advisory lock key shared by every process migrating the same database. */
const LOCK_KEY = 7421001;

/**
 * Apply pending migrations in order, each in its own transaction, under an advisory lock so
 * two runtimes starting together do not race. Idempotent: a second run applies nothing.
 */
export async function runMigrations(
  db: Queryable & { tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> },
  list: Migration[] = migrations,
): Promise<MigrationReport> {
  await db.query(`create table if not exists schema_migrations (
    version integer primary key,
    name text not null,
    applied_at timestamptz not null default now()
  )`);
  const applied: number[] = [];
  for (const m of [...list].sort((a, b) => a.version - b.version)) {
    const did = await db.tx(async (q) => {
      await q.query('select pg_advisory_xact_lock($1)', [LOCK_KEY]);
      const seen = await q.query('select 1 from schema_migrations where version = $1', [m.version]);
      if (seen.rows.length) return false;
      for (const stmt of splitSql(m.sql)) await q.query(stmt);
      await q.query('insert into schema_migrations (version, name) values ($1, $2)', [m.version, m.name]);
      return true;
    });
    if (did) applied.push(m.version);
  }
  const cur = await db.query<{ v: number | null }>('select max(version) as v from schema_migrations');
  return { applied, current: Number(cur.rows[0]?.v ?? 0) };
}

/** Split a migration into statements (our migrations hold no semicolons inside literals or bodies). */
export function splitSql(sql: string): string[] {
  return sql
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
