/**
 * Versioned schema migrations: one plain SQL file per version in `migrations/`, named
 * `NNN-short-name.sql` (NNN is the version, zero-padded). The first line is `-- name: <description>`
 * (stored in schema_migrations.name). Plain SQL that PostgreSQL 13+ and PGlite both run; statements
 * end with `;` (semicolons inside quotes, comments and $$ bodies are fine).
 *
 * Add a file with the next number; never edit an applied one (a database that ran a version never runs
 * it again). The build copies the folder to dist/src/store/migrations/.
 */
import fs from 'fs';
import path from 'path';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** The folder beside this module (src/store/migrations in tests, dist/src/store/migrations when built). */
export const MIGRATIONS_DIR = path.join(__dirname, 'migrations');

const FILE = /^(\d{3,})-[a-z0-9][a-z0-9-]*\.sql$/;

/** Read every `NNN-name.sql` of a folder, sorted by version. Throws on a duplicate version or a missing name. */
export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const list: Migration[] = [];
  for (const file of fs.readdirSync(dir)) {
    const m = FILE.exec(file);
    if (!m) continue;
    const sql = fs.readFileSync(path.join(dir, file), 'utf8');
    const name = /^--\s*name:\s*(.+)$/m.exec(sql.split('\n', 1)[0])?.[1]?.trim();
    if (!name) throw new Error(`migration ${file}: the first line must be "-- name: <description>"`);
    const version = Number(m[1]);
    if (list.some((x) => x.version === version)) throw new Error(`migration ${file}: version ${version} twice`);
    list.push({ version, name, sql });
  }
  return list.sort((a, b) => a.version - b.version);
}

export const migrations: Migration[] = loadMigrations();
