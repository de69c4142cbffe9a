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
  // under the lock too: two runtimes creating it at once on an empty database collide in pg_type
  await db.tx(async (q) => {
    await q.query('select pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await q.query(`create table if not exists schema_migrations (
      version integer primary key,
      name text not null,
      applied_at timestamptz not null default now()
    )`);
  });
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

/**
 * Split a migration into statements at top-level `;`. Semicolons inside '...' and "..." literals,
 * dollar-quoted bodies ($$ ... $$, $fn$ ... $fn$), -- line comments and block comments do not split.
 * Pieces that hold only comments and whitespace are dropped.
 */
export function splitSql(sql: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  const n = sql.length;
  const push = (end: number) => {
    const stmt = sql.slice(start, end).trim();
    if (stripComments(stmt).trim()) out.push(stmt);
  };
  while (i < n) {
    const c = sql[i];
    if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? n : nl + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      const e = sql.indexOf('*/', i + 2);
      i = e < 0 ? n : e + 2;
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      for (;;) {
        const e = sql.indexOf(c, j);
        if (e < 0) {
          j = n;
          break;
        }
        if (sql[e + 1] === c)
          j = e + 2; // doubled quote inside the literal
        else {
          j = e + 1;
          break;
        }
      }
      i = j;
    } else if (c === '$') {
      const tag = /^\$[A-Za-z_][A-Za-z0-9_]*\$|^\$\$/.exec(sql.slice(i, i + 64))?.[0];
      if (tag) {
        const e = sql.indexOf(tag, i + tag.length);
        i = e < 0 ? n : e + tag.length;
      } else i++;
    } else if (c === ';') {
      push(i);
      start = ++i;
    } else i++;
  }
  push(n);
  return out;
}

/** The SQL without -- and block comments (only used to tell an empty piece). */
function stripComments(sql: string): string {
  return sql.replace(/--[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '');
}
