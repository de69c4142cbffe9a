/**
 * Issue 11 item 6: an import holds one batch of rows in memory whatever the file's size (the rows go to
 * a staging table of the import), merges the file's duplicates across batches exactly as within one,
 * and leaves no staging behind: after success, after a failure, and after a process that died mid-import.
 */
import type { Db } from '../../src/store/db';
import { dbTargets, type DbTarget } from '../helpers/db';
import { importContacts, importDnc, type ImportStats } from '../../src/campaign/import';
import { sweepImportStaging } from '../../src/store/import-staging';

describe.each(dbTargets())('import staging on %#', (mk) => {
  let target: DbTarget;
  let db: Db;
  let n = 0;
  const newCampaign = async () =>
    (await db.query<{ id: number }>('insert into campaigns (name) values ($1) returning id', [`s${n++}`])).rows[0].id;
  const leftovers = async () => ({
    tables: (await db.query("select tablename from pg_tables where schemaname = 'import_staging'")).rows.length,
    runs: (await db.query('select id from import_runs')).rows.length,
  });
  const csvOf = (rows: number) => {
    const lines = ['phone,name,plan'];
    for (let i = 0; i < rows; i++) lines.push(`+1212${String(5000000 + (i % Math.ceil(rows * 0.9)))},N${i},p${i % 3}`);
    return lines.join('\n');
  };

  beforeAll(async () => {
    target = mk();
    db = await target.open();
  });
  afterAll(async () => {
    await db?.close();
    await target?.cleanup();
  });

  test('memory holds one batch whatever the row count: the rows go through the staging table', async () => {
    const peaks: ImportStats[] = [];
    for (const rows of [1000, 8000]) {
      const id = await newCampaign();
      const r = await importContacts(db, id, csvOf(rows), { chunkSize: 100, onDone: (s) => peaks.push(s) });
      expect(r).toMatchObject({ rows, inserted: Math.ceil(rows * 0.9), duplicates: rows - Math.ceil(rows * 0.9) });
      const stored = await db.query<{ n: number }>('select count(*)::int as n from contacts where campaign_id = $1', [
        id,
      ]);
      expect(stored.rows[0].n).toBe(r.inserted);
    }
    // held at once: one batch (100 distinct numbers, plus at most the 25 rows prepared between two
    // looks at the batch), for 1000 rows as for 8000
    for (const p of peaks) expect(p.peakHeld).toBeGreaterThanOrEqual(100);
    for (const p of peaks) expect(p.peakHeld).toBeLessThan(125);
    // every distinct number of a batch was written to the staging table
    expect(peaks[1].stagedBatches).toBeGreaterThanOrEqual(80);
    expect(peaks[1].stagedRows).toBeGreaterThanOrEqual(8000 - 100);
    expect(await leftovers()).toEqual({ tables: 0, runs: 0 });
  }, 120000);

  test('duplicates across batches merge exactly as within one batch (rows, zones, fields, warnings)', async () => {
    const csv = [
      'phone,name,timezone,plan,city',
      '2125550123,Ann,,gold,',
      '4155550100,,Mars/Base,,SF',
      '(212) 555-0123,,Europe/Paris,,NYC',
      '415.555.0100,Bob,,silver,',
      '2125550123,,,,Boston',
      '3125550100,Cy,America/denver,,',
      '+1 312 555 0100,,,bronze,',
      '2085550100,Id,,,',
      '4155550100,,Also/Bad,,',
      '2085550100,,America/Boise,,',
      'bad,,,,',
      '2125550123,Ann2,,,',
    ].join('\n');
    const results = [];
    const stored = [];
    for (const chunkSize of [1, 2, 3, 1000]) {
      const id = await newCampaign();
      const r = await importContacts(db, id, csv, { chunkSize });
      results.push({ ...r, campaignId: 0 });
      stored.push(
        (
          await db.query(
            'select phone, name, timezone, timezone_source, fields from contacts where campaign_id = $1 order by id',
            [id],
          )
        ).rows,
      );
    }
    expect(results[0]).toMatchObject({ rows: 12, inserted: 4, duplicates: 7, invalid: 1 });
    expect(results[0].warnings).toEqual([
      { line: 3, reason: 'unknown time zone "Mars/Base": using America/Los_Angeles (from the number)' },
    ]);
    expect(stored[0]).toEqual([
      {
        phone: '+12125550123',
        name: 'Ann2',
        timezone: 'Europe/Paris',
        timezone_source: 'contact',
        fields: { plan: 'gold', city: 'Boston' },
      },
      {
        phone: '+14155550100',
        name: 'Bob',
        timezone: 'America/Los_Angeles',
        timezone_source: 'number',
        fields: { plan: 'silver', city: 'SF' },
      },
      {
        phone: '+13125550100',
        name: 'Cy',
        timezone: 'America/Denver',
        timezone_source: 'contact',
        fields: { plan: 'bronze' },
      },
      { phone: '+12085550100', name: 'Id', timezone: 'America/Boise', timezone_source: 'contact', fields: {} },
    ]);
    for (let i = 1; i < results.length; i++) {
      expect(results[i]).toEqual(results[0]);
      expect(stored[i]).toEqual(stored[0]);
    }
    // do-not-call: the last non-empty reason wins across batches too
    const d1 = await importDnc(db, 'phone,reason\n2125550199,first\n2125550198,\n(212) 555-0199,\n2125550198,later\n', {
      chunkSize: 1,
      campaignId: await newCampaign(),
    });
    expect(d1).toMatchObject({ rows: 4, inserted: 2, duplicates: 2 });
    const reasons = await db.query<{ phone: string; reason: string }>(
      'select phone, reason from dnc where campaign_id = $1 order by phone',
      [d1.campaignId],
    );
    expect(reasons.rows).toEqual([
      { phone: '+12125550198', reason: 'later' },
      { phone: '+12125550199', reason: 'first' },
    ]);
    expect(await leftovers()).toEqual({ tables: 0, runs: 0 });
  }, 120000);

  test('a failure while applying or reading leaves neither rows nor staging', async () => {
    const id = await newCampaign();
    const failing: Db = {
      ...db,
      kind: db.kind,
      description: db.description,
      query: (sql, p) => db.query(sql, p),
      tx: (fn) =>
        db.tx((q) =>
          fn({
            query: async (sql: string, params?: unknown[]) => {
              if (/insert into contacts/.test(sql)) throw new Error('disk full (injected)');
              return q.query(sql, params);
            },
          }),
        ),
      close: async () => undefined,
    };
    await expect(importContacts(failing, id, csvOf(300), { chunkSize: 50 })).rejects.toThrow(/disk full/);
    expect(await leftovers()).toEqual({ tables: 0, runs: 0 });
    // the input fails mid-stream (an upload cut off): staged batches are dropped
    async function* cut() {
      yield Buffer.from(csvOf(5000)); // > 64 KB: batches are staged before the failure
      throw new Error('connection reset (injected)');
    }
    let stats: ImportStats | undefined;
    await expect(importContacts(db, id, cut(), { chunkSize: 50, onDone: (s) => (stats = s) })).rejects.toThrow(
      /connection reset/,
    );
    expect(stats!.stagedBatches).toBeGreaterThan(0);
    const stored = await db.query('select id from contacts where campaign_id = $1', [id]);
    expect(stored.rows).toEqual([]);
    expect(await leftovers()).toEqual({ tables: 0, runs: 0 });
  }, 120000);

  test('a dead import is swept, never applied; a live one of another runtime is kept', async () => {
    const id = await newCampaign();
    const dead = async (ageMinutes: number) => {
      const r = await db.query<{ id: number }>(
        `insert into import_runs (kind, campaign_id, owner, touched_at)
         values ('contacts', $1, 'gone-host:1:x', now() - $2::integer * interval '1 minute') returning id`,
        [id, ageMinutes],
      );
      const run = Number(r.rows[0].id);
      await db.query(`create unlogged table import_staging.rows_${run} (line integer primary key, phone text)`);
      await db.query(`insert into import_staging.rows_${run} values (2, '+12125550100')`);
      return run;
    };
    const old = await dead(30);
    const recent = await dead(1);
    const r = await importContacts(db, id, 'phone\n4155550100\n');
    expect(r.inserted).toBe(1);
    const phones = await db.query<{ phone: string }>('select phone from contacts where campaign_id = $1', [id]);
    expect(phones.rows).toEqual([{ phone: '+14155550100' }]);
    const runs = (await db.query<{ id: number }>('select id from import_runs order by id')).rows.map((x) =>
      Number(x.id),
    );
    if (db.kind === 'pglite') {
      // one process per embedded database: every run of another owner died with it
      expect(runs).toEqual([]);
    } else {
      // PostgreSQL: another runtime may be importing; only a run untouched for 15 minutes is dead
      expect(runs).toEqual([recent]);
      expect(await sweepImportStaging(db, 0)).toBe(1);
    }
    expect(await db.query('select tablename from pg_tables where tablename = $1', [`rows_${old}`])).toMatchObject({
      rows: [],
    });
    expect(await leftovers()).toEqual({ tables: 0, runs: 0 });
  }, 120000);

  test('an unterminated quote stops the read at 1 MB: a 400-style error naming its line, nothing applied, the rest never read', async () => {
    const id = await newCampaign();
    let pulled = 0;
    async function* upload(): AsyncGenerator<string> {
      yield 'phone,name\n+12125550100,Ann\n+12125550101,"Bob\n';
      // the open quote never closes: without a bound the record would grow to the end of the upload
      for (let i = 0; i < 2000; i++) {
        pulled++;
        yield 'x'.repeat(64 * 1024);
      }
    }
    await expect(importContacts(db, id, upload())).rejects.toMatchObject({
      code: 'import_invalid',
      message: expect.stringMatching(
        /^line 3: a record runs past 1024 KB \(an unterminated quote\?\); nothing was imported$/,
      ),
    });
    expect(pulled).toBeLessThan(20); // 1 MiB of 64 KiB pieces, not the 125 MB that followed
    const stored = await db.query('select 1 from contacts where campaign_id = $1', [id]);
    expect(stored.rows).toHaveLength(0);
    expect(await leftovers()).toEqual({ tables: 0, runs: 0 });
  }, 60000);
});
