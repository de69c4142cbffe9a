/**
 * A PostgreSQL connection reset (TCP RST) while a connection is checked out of the pool: inside a
 * transaction, during a query or between two queries. node-postgres emits the socket's error on the
 * client, and an EventEmitter error with no listener ends the process (the chaos outage run died this
 * way: "Unhandled 'error' event ... read ECONNRESET"). Wanted: the transaction fails with the reset, the
 * process lives on, the broken connection is dropped and the next statement gets a new one.
 */
import net from 'net';
import { openDb, type Db } from '../../src/store/db';
import { describeWith } from '../helpers/tools';
import { waitFor } from '../helpers/wait';

/** A TCP proxy to PostgreSQL whose client-side sockets can be reset (RST), as a dropped network does. */
async function resettingProxy(target: URL): Promise<{ port: number; reset: () => number; close: () => Promise<void> }> {
  const clients = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const up = net.connect(Number(target.port || 5432), target.hostname);
    clients.add(client);
    const drop = () => {
      clients.delete(client);
      client.destroy();
      up.destroy();
    };
    client.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
    client.pipe(up);
    up.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    reset: () => {
      const n = clients.size;
      for (const c of clients) c.resetAndDestroy();
      clients.clear();
      return n;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** 'committed', or the error's code (else its message). */
const settled = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'committed',
    (e: Error & { code?: string }) => e.code ?? e.message,
  );

describeWith(
  'PostgreSQL (DATABASE_URL)',
  !!process.env.DATABASE_URL,
  'DATABASE_URL=postgres://postgres@127.0.0.1:5432/test',
)('a connection reset while checked out (PostgreSQL)', () => {
  let proxy: Awaited<ReturnType<typeof resettingProxy>>;
  let db: Db;
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown) => uncaught.push(e);

  beforeAll(async () => {
    const real = new URL(process.env.DATABASE_URL!);
    proxy = await resettingProxy(real);
    const url = new URL(real.toString());
    url.hostname = '127.0.0.1';
    url.port = String(proxy.port);
    db = await openDb({ url: url.toString(), migrate: false, poolSize: 2 });
    process.on('uncaughtException', onUncaught);
  });
  afterAll(async () => {
    process.off('uncaughtException', onUncaught);
    await db?.close();
    await proxy?.close();
  });

  test('during a query of a transaction: the transaction fails, nothing escapes, the next statement works', async () => {
    let started = false;
    const tx = db.tx(async (q) => {
      await q.query('select 1');
      started = true;
      await q.query('select pg_sleep(10)');
    });
    const failed = settled(tx);
    // polled from a timer: by then the sleep, sent in the same run as `started`, is on the wire
    await waitFor(() => started, 5000, 'the transaction under way', 5);
    expect(proxy.reset()).toBeGreaterThan(0);
    expect(await failed).toMatch(/ECONNRESET|terminated|connection/i);
    const r = await db.query<{ ok: number }>('select 1 as ok');
    expect(r.rows[0].ok).toBe(1);
    expect(uncaught).toEqual([]);
  });

  test('between two queries of a transaction (no query in flight): the next query fails, nothing escapes', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let between = false;
    const tx = db.tx(async (q) => {
      await q.query('select 1');
      between = true;
      await gate; // the connection is checked out and idle here
      await q.query('select 2');
    });
    const failed = settled(tx);
    await waitFor(() => between, 5000, 'the gap between two queries', 5);
    expect(proxy.reset()).toBeGreaterThan(0);
    // the RST is on the loopback at once; one poll phase of the event loop hands it to the client's socket
    for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
    release();
    expect(await failed).toMatch(/not queryable|ECONNRESET|terminated|connection/i);
    const r = await db.query<{ ok: number }>('select 2 as ok');
    expect(r.rows[0].ok).toBe(2);
    expect(uncaught).toEqual([]);
  });
});
