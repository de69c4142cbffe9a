/**
 * Databases the store suites run on: PGlite always, and the PostgreSQL server when DATABASE_URL is set.
 * Each PostgreSQL run gets its own schema-isolated database so suites can run in parallel.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { Client } from 'pg';
import { openDb, type Db, type StoreOptions } from '../../src/store/db';
import { requireTool } from './tools';

export interface DbTarget {
  name: string;
  open(opts?: Partial<StoreOptions>): Promise<Db>;
  /** Options that open the same database again (a second runtime / worker). */
  options(): StoreOptions;
  cleanup(): Promise<void>;
}

let counter = 0;

export function pgliteTarget(): DbTarget {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-pglite-'));
  return {
    name: 'pglite',
    options: () => ({ dataDir: dir }),
    open: (opts) => openDb({ dataDir: dir, ...opts }),
    cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** A fresh database on the server named in DATABASE_URL, dropped on cleanup. */
export function postgresTarget(baseUrl: string): DbTarget {
  const name = `aid_test_${process.pid}_${Date.now().toString(36)}_${counter++}`;
  const url = new URL(baseUrl);
  const adminUrl = baseUrl;
  url.pathname = `/${name}`;
  let created = false;
  const ensure = async () => {
    if (created) return;
    const c = new Client({ connectionString: adminUrl });
    await c.connect();
    await c.query(`create database ${name}`);
    await c.end();
    created = true;
  };
  return {
    name: 'postgres',
    options: () => ({ url: url.toString() }),
    open: async (opts) => {
      await ensure();
      return openDb({ url: url.toString(), ...opts });
    },
    cleanup: async () => {
      if (!created) return;
      const c = new Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

/**
 * Whether the PostgreSQL cases run (DATABASE_URL set). Without it: locally a visible skip note, under
 * CI=true a failure (requireTool), so a green CI never hides the PostgreSQL half of a suite.
 */
export function hasPostgres(): boolean {
  return requireTool(
    'PostgreSQL (DATABASE_URL)',
    !!process.env.DATABASE_URL,
    'DATABASE_URL=postgres://postgres@127.0.0.1:5432/test',
  );
}

/** The targets to run a store suite on: [pglite] plus [postgres] when DATABASE_URL is set. */
export function dbTargets(): Array<() => DbTarget> {
  const list: Array<() => DbTarget> = [pgliteTarget];
  if (hasPostgres()) list.push(() => postgresTarget(process.env.DATABASE_URL!));
  return list;
}

/**
 * A store suite on every target of dbTargets(): one `describe` per target (`<title> on pglite`, `... on
 * postgres`), its database opened with `opts` before the tests and closed and dropped after. `db()` is the open
 * database (inside tests and hooks).
 */
export function describeOnDbs(
  title: string,
  opts: Partial<StoreOptions>,
  body: (db: () => Db, target: string) => void,
): void {
  describe.each(dbTargets().map((t) => [t().name, t] as const))(`${title} on %s`, (name, make) => {
    const target = make();
    let open: Db | undefined;
    beforeAll(async () => {
      open = await target.open(opts);
    });
    afterAll(async () => {
      await open?.close();
      await target.cleanup();
    });
    body(() => {
      if (!open) throw new Error(`${title}: the ${name} database is not open`);
      return open;
    }, name);
  });
}
