import type { Db, Queryable } from '../../src/store/db';
import { dbTargets, type DbTarget } from '../helpers/db';
import { importContacts, importDnc, ImportError } from '../../src/campaign/import';
import { normalizePhone, zoneForNumber, isValidTimeZone, nanpAreaCodes } from '../../src/campaign/phone';

describe('phone helpers', () => {
  test('E.164 with the default country; reasons for bad numbers', () => {
    expect(normalizePhone('(212) 555-0123', 'US')).toEqual({
      ok: true,
      e164: '+12125550123',
      country: 'US',
      type: 'FIXED_LINE_OR_MOBILE',
    });
    expect(normalizePhone('020 7946 0958', 'GB')).toMatchObject({ ok: true, e164: '+442079460958' });
    expect(normalizePhone('0044 20 7946 0958', 'US')).toMatchObject({ ok: true, e164: '+442079460958' });
    expect(normalizePhone('12', 'US')).toMatchObject({ ok: false });
    expect(normalizePhone('abc', 'US')).toEqual({ ok: false, reason: '"abc" is not a phone number (no digits)' });
    expect(normalizePhone('', 'US')).toEqual({ ok: false, reason: 'phone number is empty' });
    expect(normalizePhone('212555\n0123', 'US')).toMatchObject({ ok: false, reason: expect.stringMatching(/control/) });
  });
  test('zones from numbers: NANP by area code, single-zone countries, unknown otherwise', () => {
    expect(zoneForNumber('+12125550123', 'US')).toBe('America/New_York');
    expect(zoneForNumber('+14155550100', 'US')).toBe('America/Los_Angeles');
    expect(zoneForNumber('+13125550100', 'US')).toBe('America/Chicago');
    expect(zoneForNumber('+16025550100', 'US')).toBe('America/Phoenix');
    expect(zoneForNumber('+14165550100', 'CA')).toBe('America/Toronto');
    expect(zoneForNumber('+12085550100', 'US')).toBeUndefined(); // Idaho is split
    expect(zoneForNumber('+442079460958', 'GB')).toBe('Europe/London');
    expect(zoneForNumber('+34928123456', 'ES')).toBe('Atlantic/Canary');
    expect(zoneForNumber('+34911234567', 'ES')).toBe('Europe/Madrid');
    expect(zoneForNumber('+61212345678', 'AU')).toBeUndefined();
    for (const z of new Set(Object.values(nanpAreaCodes()))) expect(isValidTimeZone(z)).toBe(true);
    expect(isValidTimeZone('Mars/Base')).toBe(false);
    expect(isValidTimeZone("America/New_York'; drop table x")).toBe(false);
  });
});

describe.each(dbTargets())('import on %#', (mk) => {
  let target: DbTarget;
  let db: Db;
  let campaignId: number;
  let n = 0;
  const newCampaign = async (country = 'US') =>
    (
      await db.query<{ id: number }>('insert into campaigns (name, default_country) values ($1, $2) returning id', [
        `c${n++}`,
        country,
      ])
    ).rows[0].id;
  const contacts = (id: number) =>
    db
      .query<any>(
        'select phone, name, timezone, timezone_source, fields, status from contacts where campaign_id = $1 order by phone',
        [id],
      )
      .then((r) => r.rows);

  beforeAll(async () => {
    target = mk();
    db = await target.open();
  });
  afterAll(async () => {
    await db?.close();
    await target?.cleanup();
  });
  beforeEach(async () => {
    campaignId = await newCampaign();
  });

  test('CSV: good rows kept, bad rows reported with line and reason, custom fields, zones', async () => {
    const csv = [
      '\ufeffPhone,Name,Timezone,Plan,Notes',
      '(212) 555-0123,"Smith, ""Jo""",,gold,',
      'not-a-number,Bad,,,',
      '415 555 0100,"Multi',
      'line",Europe/Paris,silver,"a,b"',
      '12,Short,,,',
      '3125550100,Chi,Mars/Base,,',
      '"x"y,broken,,,',
      '2085550100,Idaho,,,',
      '',
      '6025550100,Az,,,,,extra',
    ].join('\r\n');
    const r = await importContacts(db, campaignId, csv);
    expect(r).toMatchObject({
      kind: 'contacts',
      campaignId,
      rows: 8,
      inserted: 4,
      updated: 0,
      duplicates: 0,
      invalid: 4,
      errorsTruncated: false,
    });
    expect(r.errors.map((e) => e.line)).toEqual([3, 6, 8, 11]);
    expect(r.errors[0].reason).toMatch(/not a phone number/);
    expect(r.errors[1].reason).toMatch(/not a valid number/);
    expect(r.errors[2].reason).toMatch(/after a closing quote/);
    expect(r.errors[3].reason).toMatch(/7 fields but the header has 5/);
    expect(r.warnings).toEqual([
      { line: 7, reason: 'unknown time zone "Mars/Base": using America/Chicago (from the number)' },
    ]);
    const rows = await contacts(campaignId);
    expect(rows).toEqual([
      { phone: '+12085550100', name: 'Idaho', timezone: null, timezone_source: null, fields: {}, status: 'pending' },
      {
        phone: '+12125550123',
        name: 'Smith, "Jo"',
        timezone: 'America/New_York',
        timezone_source: 'number',
        fields: { Plan: 'gold' },
        status: 'pending',
      },
      {
        phone: '+13125550100',
        name: 'Chi',
        timezone: 'America/Chicago',
        timezone_source: 'number',
        fields: {},
        status: 'pending',
      },
      {
        phone: '+14155550100',
        name: 'Multi\r\nline',
        timezone: 'Europe/Paris',
        timezone_source: 'contact',
        fields: { Plan: 'silver', Notes: 'a,b' },
        status: 'pending',
      },
    ]);
  });

  test('duplicates merged within the file and with stored rows; status untouched', async () => {
    await importContacts(db, campaignId, 'phone,name,timezone,tier\n2125550123,Old,America/Denver,1\n');
    await db.query("update contacts set status = 'done', attempts = 2 where campaign_id = $1", [campaignId]);
    const r = await importContacts(
      db,
      campaignId,
      'phone,name,city\n+1 212 555 0123,,NYC\n212.555.0123,New,\n4155550100,A,\n(415) 555-0100,B,SF\n',
    );
    expect(r).toMatchObject({ rows: 4, inserted: 1, updated: 1, duplicates: 2, invalid: 0 });
    const rows = await db.query<any>(
      'select phone, name, timezone, timezone_source, fields, status, attempts from contacts where campaign_id = $1 order by phone',
      [campaignId],
    );
    expect(rows.rows).toEqual([
      {
        phone: '+12125550123',
        name: 'New',
        timezone: 'America/Denver',
        timezone_source: 'contact',
        fields: { tier: '1', city: 'NYC' },
        status: 'done',
        attempts: 2,
      },
      {
        phone: '+14155550100',
        name: 'B',
        timezone: 'America/Los_Angeles',
        timezone_source: 'number',
        fields: { city: 'SF' },
        status: 'pending',
        attempts: 0,
      },
    ]);
  });

  test('JSON arrays: objects and bare numbers; item numbers in errors; zone case normalised', async () => {
    const r = await importContacts(db, campaignId, [
      { phone: '2125550123', name: 'A', fields: { plan: 'x' }, vip: true },
      '4155550100',
      { phone: 'nope' },
      42,
      [1, 2],
      { phone: '3125550100', timezone: 'america/los_angeles' },
      { phone: '6025550100', fields: 'bad' },
    ]);
    expect(r).toMatchObject({ rows: 7, inserted: 3, invalid: 4 });
    expect(r.errors.map((e) => e.line)).toEqual([3, 4, 5, 7]);
    const rows = await contacts(campaignId);
    expect(rows.map((x: any) => [x.phone, x.timezone, x.timezone_source, x.fields])).toEqual([
      ['+12125550123', 'America/New_York', 'number', { plan: 'x', vip: 'true' }],
      ['+13125550100', 'America/Los_Angeles', 'contact', {}],
      ['+14155550100', 'America/Los_Angeles', 'number', {}],
    ]);
  });

  test('the campaign default country applies to national numbers', async () => {
    const gb = await newCampaign('GB');
    const r = await importContacts(db, gb, 'phone\n020 7946 0958\n');
    expect(r.inserted).toBe(1);
    expect((await contacts(gb))[0]).toMatchObject({
      phone: '+442079460958',
      timezone: 'Europe/London',
      timezone_source: 'number',
    });
  });

  test('header-less single-column files, missing phone column, unknown campaign', async () => {
    const r = await importContacts(db, campaignId, '2125550123\n4155550100,Ann\n');
    expect(r.inserted).toBe(2);
    expect((await contacts(campaignId)).map((x: any) => x.name)).toEqual([null, 'Ann']);
    await expect(importContacts(db, campaignId, 'email,name\na@b.c,x\n')).rejects.toThrow(/no phone column/);
    await expect(importContacts(db, campaignId, '')).resolves.toMatchObject({ rows: 0, inserted: 0 });
    await expect(importContacts(db, 999999, 'phone\n2125550123\n')).rejects.toMatchObject({
      code: 'campaign_not_found',
    });
    await expect(importContacts(db, -1, 'phone\n')).rejects.toBeInstanceOf(ImportError);
  });

  test('atomic per file: a database failure mid-file leaves nothing', async () => {
    const lines = ['phone'];
    for (let i = 0; i < 50; i++) lines.push(`212555${String(1000 + i)}`);
    let inserts = 0;
    const failing: Db = {
      ...db,
      kind: db.kind,
      description: db.description,
      query: (sql, p) => db.query(sql, p),
      tx: (fn) =>
        db.tx((q) =>
          fn({
            query: async (sql: string, params?: unknown[]) => {
              if (/insert into contacts/.test(sql) && ++inserts === 3) throw new Error('disk full (injected)');
              return q.query(sql, params);
            },
          } as Queryable),
        ),
      close: async () => undefined,
    };
    await expect(importContacts(failing, campaignId, lines.join('\n'), { chunkSize: 10 })).rejects.toThrow(/disk full/);
    expect(inserts).toBe(3);
    expect(await contacts(campaignId)).toEqual([]);
  });

  test('DNC: global and per-campaign lists, reasons, duplicates, bad rows', async () => {
    const g = await importDnc(db, 'phone,reason\n2125550123,asked\n(212) 555-0123,again\nxx,\n3125550100,\n');
    expect(g).toMatchObject({ kind: 'dnc', campaignId: null, rows: 4, inserted: 2, duplicates: 1, invalid: 1 });
    expect(g.errors[0].line).toBe(4);
    const again = await importDnc(db, ['+12125550123']);
    expect(again).toMatchObject({ inserted: 0, updated: 1 });
    const c = await importDnc(db, '2125550123\n', { campaignId });
    expect(c).toMatchObject({ inserted: 1, campaignId });
    const rows = await db.query<any>(
      "select phone, campaign_id, reason, source from dnc where phone = '+12125550123' order by campaign_id nulls first",
    );
    expect(rows.rows).toEqual([
      { phone: '+12125550123', campaign_id: null, reason: 'again', source: 'import' },
      { phone: '+12125550123', campaign_id: campaignId, reason: null, source: 'import' },
    ]);
    await expect(importDnc(db, 'phone\n1\n', { campaignId: 999999 })).rejects.toMatchObject({
      code: 'campaign_not_found',
    });
  });

  test('100k-row file: imported in one transaction, duplicates and bad rows counted', async () => {
    const lines = ['phone,name,segment'];
    for (let i = 0; i < 100000; i++) {
      if (i % 1000 === 999) lines.push(`bad${i},x,y`);
      else
        lines.push(
          `+1${['212', '415', '312', '602'][i % 4]}55${String(i % 99990).padStart(5, '0')},Name ${i},s${i % 7}`,
        );
    }
    const r = await importContacts(db, campaignId, lines.join('\n'));
    expect(r.rows).toBe(100000);
    expect(r.invalid).toBe(100);
    expect(r.errors[0]).toEqual({ line: 1001, reason: expect.stringMatching(/bad999/) });
    expect(r.inserted + r.duplicates).toBe(99900);
    const count = await db.query<{ n: number }>('select count(*)::int as n from contacts where campaign_id = $1', [
      campaignId,
    ]);
    expect(count.rows[0].n).toBe(r.inserted);
  }, 180000);
});
