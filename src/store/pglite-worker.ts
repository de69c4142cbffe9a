/**
 * PGlite in a worker thread. PGlite is Postgres compiled to WASM: every statement runs synchronously
 * on the thread that owns it, so a large statement (an import's upsert, a checkpoint) on the main thread
 * stops every socket and timer of the runtime (issue 11: 100-500 ms stalls during a 10 MB import).
 * Here the database lives in its own thread and the main thread only posts messages: a query costs one
 * round trip (~0.1 ms) more, and no statement can hold the event loop.
 *
 * Protocol (one message each way per request, answered by id):
 *   query {sql, params, tx?}   -> rows / affectedRows (inside the open transaction `tx` when given)
 *   begin                      -> a transaction id (PGlite's own transaction: other queries wait for it)
 *   end {tx, commit}           -> COMMIT or ROLLBACK
 *   close                      -> the database is closed; the thread then ends
 * Errors cross as plain objects with every field of Postgres' error (code, detail, constraint...).
 */
import fs from 'fs';
import path from 'path';
import { Worker } from 'worker_threads';
import type { Db, Queryable, QueryResult } from './db';
import { resolveOptional } from '../util/optional';

/** The thread's code: plain CommonJS, evaluated (so it runs the same from src/ under ts-jest and from dist/). */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('worker_threads');
const { PGlite } = require(workerData.entry);
const ROLLBACK = Symbol('rollback');
const txs = new Map();
let lite;
function ser(err) {
  const e = err && typeof err === 'object' ? err : new Error(String(err));
  const out = { message: String(e.message), name: String(e.name || 'Error') };
  for (const k of Object.keys(e)) {
    const v = e[k];
    if (v === undefined || typeof v === 'function' || (typeof v === 'object' && v !== null)) continue;
    out[k] = v;
  }
  return out;
}
const reply = (id, ok, value) => parentPort.postMessage(ok ? { id, ok, value } : { id, ok, error: ser(value) });
const result = (r) => ({ rows: r.rows, rowCount: r.affectedRows ?? r.rows.length });
function begin(id) {
  let started = false;
  let end;
  const ended = new Promise((r) => (end = r));
  lite
    .transaction(async (t) => {
      started = true;
      txs.set(id, { t, end });
      reply(id, true, id);
      const e = await ended;
      txs.delete(id);
      if (!e.commit) throw ROLLBACK;
    })
    .then(
      () => ended.then((e) => reply(e.id, true, null)),
      (err) => {
        txs.delete(id);
        if (!started) return reply(id, false, err);
        return ended.then((e) => reply(e.id, err === ROLLBACK, err === ROLLBACK ? null : err));
      },
    );
}
parentPort.on('message', (m) => {
  if (m.op === 'query') {
    const tx = m.tx === undefined ? undefined : txs.get(m.tx);
    if (m.tx !== undefined && !tx) return reply(m.id, false, new Error('the transaction is closed'));
    (tx ? tx.t : lite).query(m.sql, m.params).then((r) => reply(m.id, true, result(r)), (e) => reply(m.id, false, e));
  } else if (m.op === 'begin') begin(m.id);
  else if (m.op === 'end') {
    const tx = txs.get(m.tx);
    if (!tx) return reply(m.id, false, new Error('the transaction is closed'));
    tx.end({ id: m.id, commit: m.commit });
  } else if (m.op === 'close') {
    lite.close().then(() => reply(m.id, true, null), (e) => reply(m.id, false, e));
  }
});
PGlite.create(workerData.dataDir || undefined, {
  pgliteWasmModule: workerData.pgliteWasm,
  initdbWasmModule: workerData.initdbWasm,
}).then(
  (db) => { lite = db; parentPort.postMessage({ id: 0, ok: true, value: null }); },
  (e) => parentPort.postMessage({ id: 0, ok: false, error: ser(e) }),
);
`;

interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: Record<string, unknown> & { message: string; name: string };
}

/** An Error again, with every field the thread sent (code, detail, constraint, ...). */
function revive(e: NonNullable<Reply['error']>): Error {
  const err = new Error(e.message);
  Object.assign(err, e);
  return err;
}

/**
 * PGlite's two WASM modules, compiled once per process and handed to every thread (a compiled module
 * crosses to a worker without being compiled again): opening a database costs no compilation after the first.
 */
let modules: Promise<{ pgliteWasm?: WebAssembly.Module; initdbWasm?: WebAssembly.Module }> | undefined;
function compiled(dir: string): Promise<{ pgliteWasm?: WebAssembly.Module; initdbWasm?: WebAssembly.Module }> {
  const one = (file: string) =>
    fs.promises.readFile(path.join(dir, file)).then(
      (b) => WebAssembly.compile(b),
      () => undefined, // not found: PGlite loads its own
    );
  modules ??= Promise.all([one('pglite.wasm'), one('initdb.wasm')]).then(([pgliteWasm, initdbWasm]) => ({
    pgliteWasm,
    initdbWasm,
  }));
  return modules;
}

/** The main thread's side: a Db whose every statement runs in the worker. */
export class PgliteWorkerDb implements Db {
  readonly kind = 'pglite' as const;
  readonly description: string;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private nextId = 1;
  private dead: Error | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly worker: Worker,
    dataDir: string,
    private unlock: () => void,
  ) {
    this.description = `pglite:${dataDir}`;
    worker.on('message', (m: Reply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (!this.pending.size) worker.unref();
      if (m.ok) p.resolve(m.value);
      else p.reject(revive(m.error!));
    });
    const fail = (err: Error) => {
      this.dead ??= err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      this.release();
    };
    worker.on('error', (err) => fail(new Error(`the embedded database thread failed: ${err.message}`)));
    worker.on('exit', (code) => fail(new Error(`the embedded database is closed (thread exit ${code})`)));
  }

  /** Start the thread and open the database in it (`memory://`: a throwaway in-memory one). */
  static async open(dataDir: string, unlock: () => void): Promise<PgliteWorkerDb> {
    const entry = resolveOptional('@electric-sql/pglite'); // optional: a clear error when not installed
    const wasm = await compiled(path.dirname(entry));
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { entry, dataDir: dataDir === 'memory://' ? '' : dataDir, ...wasm },
    });
    const db = new PgliteWorkerDb(worker, dataDir, unlock);
    const opened = new Promise<unknown>((resolve, reject) => db.pending.set(0, { resolve, reject }));
    try {
      await opened;
    } catch (err) {
      await worker.terminate();
      throw err;
    }
    return db;
  }

  private call<T>(msg: Record<string, unknown>): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.ref(); // a request in flight keeps the process alive; an idle database does not
      this.worker.postMessage({ ...msg, id });
    });
  }

  query<T>(sql: string, params?: unknown[], tx?: number): Promise<QueryResult<T>> {
    return this.call<QueryResult<T>>({ op: 'query', sql, params: params ?? [], tx });
  }

  async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    const tx = await this.call<number>({ op: 'begin' });
    const q: Queryable = { query: <R>(sql: string, params?: unknown[]) => this.query<R>(sql, params, tx) };
    let out: T;
    try {
      out = await fn(q);
    } catch (err) {
      await this.call({ op: 'end', tx, commit: false }).catch(() => undefined);
      throw err;
    }
    await this.call({ op: 'end', tx, commit: true });
    return out;
  }

  private release(): void {
    this.unlock();
    this.unlock = () => undefined;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        if (!this.dead) await this.call({ op: 'close' });
      } finally {
        this.dead ??= new Error('the embedded database is closed');
        await this.worker.terminate();
        this.release();
      }
    })();
    return this.closing;
  }
}
