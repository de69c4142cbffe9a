/**
 * One small interface over PostgreSQL (`pg`) and PGlite (embedded Postgres in WASM).
 * Both run the same SQL; migrations run on open.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { Pool, types as pgTypes, type PoolClient } from 'pg';
import type { PGlite as PGliteType } from '@electric-sql/pglite';
import { DialerError } from '../util/errors';
import { MissingPackageError, resolveOptional } from '../util/optional';
import { runMigrations } from './migrate';
import { PgliteWorkerDb } from './pglite-worker';
import { sweepImportStaging } from './import-staging';

export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<T>>;
}

export interface Db extends Queryable {
  readonly kind: 'pg' | 'pglite';
  /** Human description without secrets (e.g. `postgresql://host:5432/db` or `pglite:/data/db`). */
  readonly description: string;
  /** Run `fn` inside one transaction on one connection; commits on success, rolls back on throw. */
  tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /**
   * PostgreSQL: a separate lane of `size` connections of its own for one hot path (the turn writes, the
   * call's context read at the greeting), so its statements never wait in the pool's queue behind
   * everything else; opened at once and kept open. Undefined on PGlite (one connection anyway): use the
   * Db itself.
   */
  lane?(name: string, size: number): Queryable;
  /** PostgreSQL: the pool's connections and the queries waiting for one (undefined on PGlite). */
  poolLoad?(): { size: number; busy: number; waiting: number };
}

/** pg-pool's error when no connection of a full pool came free within `connectionTimeoutMillis`. */
const POOL_ACQUIRE_TIMEOUT = 'timeout exceeded when trying to connect';

/** How long a query waits for a free pool connection (and a new connection may take to open). */
export const POOL_WAIT_MS = 5000;

/**
 * A pool acquire timeout says the pool is full and busy, not that the server is down: say so
 * (`store_busy`). Other errors pass unchanged.
 */
export function poolError(err: unknown, pool: { totalCount: number; waitingCount: number }, waitMs: number): unknown {
  if ((err as Error | undefined)?.message !== POOL_ACQUIRE_TIMEOUT) return err;
  return new DialerError(
    'store_busy',
    `database busy: no connection free within ${waitMs} ms (${pool.totalCount} connections in use, ${pool.waitingCount} queries waiting)`,
    { cause: err },
  );
}

export interface StoreOptions {
  /** postgres:// URL; absent: embedded PGlite in `dataDir`. */
  url?: string;
  /** Directory of the embedded database (PGlite); `memory://` for a throwaway in-memory one. */
  dataDir?: string;
  /** Pool size for PostgreSQL (default 10). */
  poolSize?: number;
  /** PostgreSQL: how long a query waits for a free connection, and a new connection may take (default 5000 ms). */
  poolWaitMs?: number;
  /** Skip migrations (tests of the migrator itself). */
  migrate?: boolean;
  /**
   * Where PGlite runs: 'worker' in its own thread, so no statement holds the event loop (what `npm start`
   * uses); 'main' (default) on the event loop. Values read in a worker are objects of the main realm
   * (a Jest sandbox's `instanceof Date` is false for them), so library callers and tests keep 'main'.
   */
  pglite?: 'worker' | 'main';
}

// int8 (count(*), sums) as JS numbers: our ids are int4 and counts stay far below 2^53.
pgTypes.setTypeParser(20, (v: string) => Number(v));
// numeric as number (rates, percentages)
pgTypes.setTypeParser(1700, (v: string) => Number(v));

/** Remove credentials from a database URL for logs and status lines. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

/**
 * Statements sent by name on PostgreSQL (parsed and planned once per connection instead of on every
 * call): a hot statement registers its text here once (`namedStatement`), and every query with exactly
 * that text goes out as a named prepared statement. PGlite ignores it.
 */
const NAMED = new Map<string, string>();

/** Register `sql` to be sent as the prepared statement `name` (returns `sql`). */
export function namedStatement(name: string, sql: string): string {
  NAMED.set(sql, name);
  return sql;
}

function pgQuery(sql: string, params?: unknown[]): string | { name: string; text: string; values?: unknown[] } {
  const name = NAMED.get(sql);
  return name ? { name, text: sql, values: params } : sql;
}

async function poolQuery<T>(pool: Pool, sql: string, params?: unknown[]): Promise<QueryResult<T>> {
  const q = pgQuery(sql, params);
  try {
    const r = typeof q === 'string' ? await pool.query(q, params as unknown[]) : await pool.query(q);
    return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
  } catch (err) {
    throw poolError(err, pool, pool.options.connectionTimeoutMillis ?? POOL_WAIT_MS);
  }
}

/** The warm-up every new main-pool connection runs once migration 35 is in (PgDb.warmClaims). */
const WARM_SQL = 'select claim_warm()';

interface WarmState {
  claims: boolean;
}

/** pg-pool `verify`: a new connection runs the warm-up (if on) before it is handed out; never fails it. */
function warmVerify(warm: WarmState): (client: PoolClient, done: (err?: Error) => void) => void {
  return (client, done) => {
    if (!warm.claims) return done();
    client.query(WARM_SQL).then(
      () => done(),
      () => done(),
    );
  };
}

class PgDb implements Db {
  readonly kind = 'pg' as const;
  readonly description: string;
  private readonly lanes = new Map<string, Pool>();
  constructor(
    private readonly pool: Pool,
    private readonly url: string,
    private readonly warm: WarmState = { claims: false },
  ) {
    this.description = redactUrl(url);
  }
  query<T>(sql: string, params?: unknown[]): Promise<QueryResult<T>> {
    return poolQuery<T>(this.pool, sql, params);
  }
  lane(name: string, size: number): Queryable {
    let pool = this.lanes.get(name);
    if (!pool) {
      // its connections open now and stay open (never closed for being idle): the first statements of a
      // hot path do not pay for a connection, nor do those after a quiet minute
      pool = newPool(this.url, size, this.pool.options.connectionTimeoutMillis ?? POOL_WAIT_MS, {
        min: size,
        idleTimeoutMillis: 0,
      });
      this.lanes.set(name, pool);
      const p = pool;
      for (let i = 0; i < size; i++)
        p.connect().then(
          (c) => c.release(),
          () => undefined, // the database is down: the lane's first statements say so
        );
    }
    const p = pool;
    return { query: <T>(sql: string, params?: unknown[]) => poolQuery<T>(p, sql, params) };
  }
  poolLoad(): { size: number; busy: number; waiting: number } {
    const p = this.pool;
    return { size: p.options.max, busy: p.totalCount - p.idleCount, waiting: p.waitingCount };
  }
  /**
   * From now on every new connection of the main pool runs `claim_warm()` (migration 35) before the pool
   * hands it out (pg-pool's `verify`: the statement that asked for the connection waits for it, once), and
   * the connections already open run it now: the claim path is compiled and planned per connection, and a
   * connection's first claim cost 40-50 ms of backend CPU against 2-4 ms for the next (statement p99 of
   * paced claims, issue #17). Nothing of the warm-up is kept (it rolls itself back); an error in it only
   * leaves that connection's first claim cold. Called by openDb once the schema has the function.
   */
  async warmClaims(): Promise<void> {
    this.warm.claims = true;
    const open: PoolClient[] = [];
    try {
      for (let i = this.pool.idleCount; i > 0; i--) open.push(await this.pool.connect());
      await Promise.all(open.map((c) => c.query(WARM_SQL).catch(() => undefined)));
    } finally {
      for (const c of open) c.release();
    }
  }
  async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw poolError(err, this.pool, this.pool.options.connectionTimeoutMillis ?? POOL_WAIT_MS);
    }
    try {
      await client.query('BEGIN');
      const q: Queryable = {
        query: async <R>(sql: string, params?: unknown[]) => {
          const pq = pgQuery(sql, params);
          const r = typeof pq === 'string' ? await client.query(pq, params as unknown[]) : await client.query(pq);
          return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
        },
      };
      const out = await fn(q);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }
  async close(): Promise<void> {
    const lanes = [...this.lanes.values()];
    this.lanes.clear();
    await Promise.all([this.pool.end(), ...lanes.map((l) => l.end())]);
  }
}

/** TCP keepalive of every PostgreSQL connection: the first probe after this much silence. */
export const KEEPALIVE_MS = 30_000;

function newPool(
  url: string,
  max: number,
  waitMs: number,
  more: {
    min?: number;
    idleTimeoutMillis?: number;
    verify?: (client: PoolClient, done: (err?: Error) => void) => void;
  } = {},
): Pool {
  // TCP keepalive from 30 s of silence: connections are kept open while idle (above, and the lanes), and a
  // firewall, NAT or load balancer that forgets a silent connection would leave a dead one for the next query
  const pool = new Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: waitMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_MS,
    ...more,
  });
  pool.on('error', () => undefined); // idle client errors surface on the next query
  // A connection reset while a connection is checked out (a transaction, the warm-up of a new connection)
  // is emitted on its client, where an error with no listener would end the process. The query in flight
  // is failed with it anyway, the next one on that client fails as "not queryable", and the pool drops the
  // client when it comes back: this listener only keeps the event from being fatal.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** How often the holder of a PGlite folder touches its lock file, and when an untouched one is stale. */
const LOCK_TOUCH_MS = 5000;
const LOCK_STALE_MS = 20000;
const LOCK_FILE = '.ai-dialer.lock';
const heldLocks = new Map<string, { refs: number; timer: NodeJS.Timeout }>();

interface LockHolder {
  pid: number;
  host: string;
  since: string;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // killed but not yet reaped by its parent (a zombie, seen for ~1.5 s after a SIGKILL when the parent is
  // an init that reaps late): it holds nothing any more. Without /proc (not Linux), alive as before.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat[stat.lastIndexOf(')') + 2];
    return state !== 'Z' && state !== 'X';
  } catch {
    return true;
  }
}

/**
 * One process per embedded database: PGlite has no locking of its own, and two processes on one folder
 * corrupt it (issue 12: a campaign and its contacts vanished). The folder gets a lock file with the
 * holder's pid and host, touched every 5 s. Another process refuses to open the folder while the holder
 * is alive (same host: the pid is checked; another host: the file was touched in the last 20 s).
 * A lock left by a crash is taken over. Returns the release function.
 */
export async function lockDataDir(dir: string): Promise<() => void> {
  const file = path.join(dir, LOCK_FILE);
  const key = path.resolve(dir);
  const mine = heldLocks.get(key);
  const release = (): void => {
    const h = heldLocks.get(key);
    if (!h || --h.refs > 0) return;
    clearInterval(h.timer);
    heldLocks.delete(key);
    try {
      const cur = JSON.parse(fs.readFileSync(file, 'utf8')) as LockHolder;
      if (cur.pid === process.pid && cur.host === os.hostname()) fs.unlinkSync(file);
    } catch {
      /* gone already */
    }
  };
  if (mine) {
    mine.refs++;
    return release;
  }
  const deadline = Date.now() + LOCK_STALE_MS + 1000;
  for (;;) {
    try {
      const fd = fs.openSync(file, 'wx', 0o600);
      fs.writeSync(
        fd,
        JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString() }) + '\n',
      );
      fs.closeSync(fd);
      const timer = setInterval(() => {
        const now = new Date();
        try {
          fs.utimesSync(file, now, now);
        } catch {
          /* the folder went away: nothing to keep */
        }
      }, LOCK_TOUCH_MS);
      timer.unref();
      heldLocks.set(key, { refs: 1, timer });
      return release;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder: LockHolder | undefined;
    let ageMs = Infinity;
    try {
      ageMs = Date.now() - fs.statSync(file).mtimeMs;
      holder = JSON.parse(fs.readFileSync(file, 'utf8')) as LockHolder;
    } catch {
      holder = undefined; // gone, or being written right now: look again shortly
    }
    if (!holder && ageMs <= LOCK_STALE_MS) {
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    const sameHost = holder?.host === os.hostname();
    // same host: the holder's pid is gone, or is this very process (a container restarted with the same
    // pid: not held here, so the lock is a previous incarnation's)
    const stale =
      !holder ||
      ageMs > LOCK_STALE_MS ||
      (sameHost && (!Number.isInteger(holder.pid) || holder.pid === process.pid || !processAlive(holder.pid)));
    if (stale) {
      if (holder || ageMs > LOCK_STALE_MS) fs.rmSync(file, { force: true });
      continue;
    }
    if (!sameHost && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1000)); // another host: alive only while it keeps touching the file
      continue;
    }
    throw new DialerError(
      'store_locked',
      `the embedded database in ${dir} is in use by another runtime (pid ${holder!.pid} on ${holder!.host}, since ${holder!.since}). ` +
        'The embedded database (PGlite) allows one process per folder: stop the other runtime, give this one its own DATA_DIR, ' +
        'or set DATABASE_URL to a PostgreSQL server to run several runtimes on one database.',
    );
  }
}

class PgliteDb implements Db {
  readonly kind = 'pglite' as const;
  readonly description: string;
  constructor(
    private readonly lite: PGliteType,
    dataDir: string,
    private unlock: () => void = () => undefined,
  ) {
    this.description = `pglite:${dataDir}`;
  }
  async query<T>(sql: string, params?: unknown[]): Promise<QueryResult<T>> {
    const r = await this.lite.query<T>(sql, params as unknown[]);
    return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
  }
  async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    return this.lite.transaction(async (t) => {
      const q: Queryable = {
        query: async <R>(sql: string, params?: unknown[]) => {
          const r = await t.query<R>(sql, params as unknown[]);
          return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
        },
      };
      return fn(q);
    }) as Promise<T>;
  }
  async close(): Promise<void> {
    try {
      if (!this.lite.closed) await this.lite.close();
    } finally {
      this.unlock();
      this.unlock = () => undefined;
    }
  }
}

/** Open the store and run pending migrations. Throws a DialerError with one clear line on failure. */
export async function openDb(opts: StoreOptions): Promise<Db> {
  let db: Db;
  if (opts.url) {
    if (!/^postgres(ql)?:\/\//.test(opts.url)) {
      throw new DialerError(
        'store_bad_url',
        `DATABASE_URL must start with postgres:// or postgresql:// (got ${redactUrl(opts.url)})`,
      );
    }
    const warm: WarmState = { claims: false };
    // A connection, once opened, stays open (pg-pool closes one idle for 10 s by default): a new backend
    // costs PostgreSQL its start, the claim warm-up (40-65 ms of backend CPU) and the planning of every
    // named statement again, and reconnections came in bursts, when calls ended together after a quiet
    // stretch of turns (whose writes have their own lane): issue #17, docs/contributing/benchmarks.md.
    const pool = newPool(opts.url, opts.poolSize ?? 10, opts.poolWaitMs ?? POOL_WAIT_MS, {
      verify: warmVerify(warm),
      idleTimeoutMillis: 0,
    });
    db = new PgDb(pool, opts.url, warm);
    try {
      await db.query('select 1');
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw new DialerError(
        'store_unreachable',
        `cannot reach PostgreSQL at ${redactUrl(opts.url)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  } else {
    const dataDir = opts.dataDir ?? path.resolve('data', 'db');
    if (dataDir !== 'memory://') fs.mkdirSync(dataDir, { recursive: true });
    const unlock = dataDir === 'memory://' ? () => undefined : await lockDataDir(dataDir);
    try {
      if (opts.pglite !== 'worker') {
        resolveOptional('@electric-sql/pglite'); // optional: a clear error when not installed
        const { PGlite } = await import('@electric-sql/pglite');
        db = new PgliteDb(await PGlite.create(dataDir === 'memory://' ? undefined : dataDir), dataDir, unlock);
      } else db = await PgliteWorkerDb.open(dataDir, unlock);
    } catch (err) {
      unlock();
      if (err instanceof MissingPackageError) throw err; // says what to install
      throw new DialerError(
        'store_open_failed',
        `cannot open the embedded database in ${dataDir}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  if (opts.migrate !== false) {
    try {
      await runMigrations(db);
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err;
    }
    // staging tables of imports whose process died (a crash or a stop mid-import): never applied, removed here
    await sweepImportStaging(db).catch(() => undefined);
  }
  if (db instanceof PgDb) {
    const r = await db.query<{ ok: boolean }>(`select to_regprocedure('claim_warm()') is not null as ok`);
    if (r.rows[0]?.ok) await db.warmClaims();
  }
  return db;
}

/**
 * Process-wide sharing: config nodes, the runtime and the HTTP API share one Db per URL/data dir
 * (a PGlite directory can be opened only once per process). Reference counted.
 */
const shared = new Map<string, { db: Promise<Db>; refs: number }>();

function keyOf(opts: StoreOptions): string {
  return opts.url ? `url:${opts.url}` : `dir:${path.resolve(opts.dataDir ?? path.join('data', 'db'))}`;
}

export function acquireDb(opts: StoreOptions): Promise<Db> {
  const key = keyOf(opts);
  let entry = shared.get(key);
  if (!entry) {
    const p = openDb(opts);
    entry = { db: p, refs: 0 };
    shared.set(key, entry);
    p.catch(() => shared.delete(key));
  }
  entry.refs++;
  return entry.db;
}

export async function releaseDb(opts: StoreOptions): Promise<void> {
  const key = keyOf(opts);
  const entry = shared.get(key);
  if (!entry) return;
  entry.refs--;
  if (entry.refs <= 0) {
    shared.delete(key);
    const db = await entry.db.catch(() => undefined);
    await db?.close();
  }
}
