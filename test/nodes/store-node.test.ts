import fs from 'fs';
import os from 'os';
import path from 'path';
import helper from 'node-red-node-test-helper';
import type { Db } from '../../src/store/db';

import storeNode from '../../nodes/ai-dialer-store/ai-dialer-store';
import { testWith } from '../helpers/tools';

helper.init(require.resolve('node-red'));

describe('ai-dialer-store config node in the Node-RED runtime', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-store-node-'));
  beforeAll((done) => {
    helper.startServer(done);
  });
  afterAll((done) => {
    fs.rmSync(dir, { recursive: true, force: true });
    helper.stopServer(done);
  });
  afterEach(() => helper.unload());

  test('embedded mode opens a migrated PGlite database in the directory given', async () => {
    await helper.load(storeNode, [{ id: 's1', type: 'ai-dialer-store', mode: 'embedded', dataDir: dir }]);
    const n = helper.getNode('s1') as unknown as { getDb(): Promise<Db>; description: string };
    const db = await n.getDb();
    expect(db.kind).toBe('pglite');
    const r = await db.query<{ n: number }>('select count(*)::int as n from schema_migrations');
    expect(r.rows[0].n).toBeGreaterThan(0);
    expect(n.description).toContain(dir);
  });

  const url = process.env.DATABASE_URL;
  testWith(
    'PostgreSQL (DATABASE_URL)',
    !!url,
    'DATABASE_URL=postgres://postgres@127.0.0.1:5432/test',
  )('postgres mode takes the URL from credentials, not from the flow', async () => {
    await helper.load(storeNode, [{ id: 's2', type: 'ai-dialer-store', mode: 'postgres' }], { s2: { url } });
    const n = helper.getNode('s2') as unknown as { getDb(): Promise<Db>; credentials: { url?: string } };
    expect(n.credentials.url).toBe(url);
    const db = await n.getDb();
    expect(db.kind).toBe('pg');
    expect(db.description).not.toMatch(/:[^/@]+@/); // never a password in descriptions
    const r = await db.query<{ v: number }>('select max(version)::int as v from schema_migrations');
    expect(r.rows[0].v).toBeGreaterThan(0);
  });

  test('postgres mode without a URL fails with a clear error', async () => {
    await helper.load(storeNode, [{ id: 's3', type: 'ai-dialer-store', mode: 'postgres' }]);
    const n = helper.getNode('s3') as unknown as { getDb(): Promise<Db> };
    await expect(n.getDb()).rejects.toThrow('needs a connection URL');
  });

  test('an unreachable server is one clear error', async () => {
    await helper.load(storeNode, [{ id: 's4', type: 'ai-dialer-store', mode: 'postgres' }], {
      s4: { url: 'postgresql://nobody@127.0.0.1:1/none' },
    });
    const n = helper.getNode('s4') as unknown as { getDb(): Promise<Db> };
    await expect(n.getDb()).rejects.toThrow(/cannot reach PostgreSQL at postgresql:\/\/nobody@127\.0\.0\.1:1\/none/);
  });
});
