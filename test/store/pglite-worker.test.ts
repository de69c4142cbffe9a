/**
 * PGlite in its worker thread (src/store/pglite-worker.ts), the default embedded database: the same
 * answers as on the event loop (rows, types, errors with their Postgres fields), transactions whole,
 * other queries waiting for an open transaction, and the event loop free while a long statement runs.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { openDb, type Db } from '../../src/store/db';

jest.setTimeout(300000);

let db: Db;
beforeAll(async () => {
  db = await openDb({ dataDir: 'memory://', pglite: 'worker' });
  await db.query('create table t (id int primary key, v text)');
});
afterAll(() => db.close());

test('rows and types cross the thread as on the event loop (numbers, dates, json, bytea)', async () => {
  const r = await db.query<Record<string, unknown>>(
    `select 1::int as i, count(*) as n, now() as ts, '{"a":[1,2]}'::jsonb as j, 'ab'::bytea as b, null as z from t`,
  );
  expect(r.rows).toHaveLength(1);
  const row = r.rows[0];
  expect(row.i).toBe(1);
  expect(row.n).toBe(0);
  expect(Object.prototype.toString.call(row.ts)).toBe('[object Date]'); // a Date of the main realm
  expect(row.j).toEqual({ a: [1, 2] });
  expect(Array.from(row.b as Uint8Array)).toEqual([97, 98]);
  expect(row.z).toBeNull();
  const ins = await db.query('insert into t (id, v) values ($1, $2), ($3, $4)', [1, 'a', 2, null]);
  expect(ins.rowCount).toBe(2);
});

test('a database error keeps its Postgres fields (code, constraint, detail)', async () => {
  const err = (await db.query('insert into t (id) values (1)').catch((e: unknown) => e)) as Record<string, unknown>;
  expect(err.code).toBe('23505');
  expect(err.constraint).toBe('t_pkey');
  expect(String(err.message)).toMatch(/duplicate key/);
  expect(String(err.detail)).toMatch(/\(id\)=\(1\)/);
  // and the database goes on
  expect((await db.query('select 1 as x')).rows).toEqual([{ x: 1 }]);
});

test('a transaction commits whole, or rolls back whole when its function throws', async () => {
  await db.tx(async (q) => {
    await q.query("insert into t (id, v) values (10, 'x')");
    await q.query("update t set v = 'y' where id = 10");
  });
  expect((await db.query('select v from t where id = 10')).rows).toEqual([{ v: 'y' }]);
  const boom = new Error('boom');
  await expect(
    db.tx(async (q) => {
      await q.query("insert into t (id, v) values (11, 'x')");
      throw boom;
    }),
  ).rejects.toBe(boom);
  await expect(
    db.tx(async (q) => {
      await q.query("insert into t (id, v) values (12, 'x')");
      await q.query('insert into t (id) values (10)'); // duplicate: the database refuses
    }),
  ).rejects.toMatchObject({ code: '23505' });
  expect((await db.query('select id from t where id in (11, 12)')).rows).toEqual([]);
});

test('a query outside an open transaction waits for it and sees it whole', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const tx = db.tx(async (q) => {
    await q.query("insert into t (id, v) values (20, 'a')");
    await gate;
    await q.query("insert into t (id, v) values (21, 'b')");
  });
  await new Promise((r) => setTimeout(r, 50)); // the transaction has begun and holds the database
  const outside = db.query<{ n: number }>('select count(*) as n from t where id in (20, 21)');
  release();
  await tx;
  expect((await outside).rows[0].n).toBe(2);
});

test('the event loop runs while a long statement runs in the thread', async () => {
  // one statement of ~1 s of work: on the event loop no timer fires until it ends (pglite: 'main' shows it)
  const ticksDuring = async (d: Db): Promise<number> => {
    let ticks = 0;
    const iv = setInterval(() => ticks++, 5);
    await new Promise((r) => setTimeout(r, 20)); // the timer is running
    const before = ticks;
    await d.query('select count(*) from generate_series(1, 2000000) g where md5(g::text) like $1', ['a%']);
    clearInterval(iv);
    return ticks - before;
  };
  const main = await openDb({ dataDir: 'memory://', migrate: false, pglite: 'main' });
  try {
    expect(await ticksDuring(main)).toBeLessThanOrEqual(1);
  } finally {
    await main.close();
  }
  expect(await ticksDuring(db)).toBeGreaterThan(5);
});

test('a persistent folder: data survives close and reopen; a closed database refuses queries clearly', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-pglw-'));
  try {
    const a = await openDb({ dataDir: dir, migrate: false, pglite: 'worker' });
    await a.query('create table k (v int)');
    await a.query('insert into k values (7)');
    await a.close();
    await expect(a.query('select 1')).rejects.toThrow(/closed/);
    const b = await openDb({ dataDir: dir, migrate: false, pglite: 'worker' });
    expect((await b.query('select v from k')).rows).toEqual([{ v: 7 }]);
    await b.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
