/**
 * The contact and campaign a call's templates need (src/llm/context.ts): read in one statement, once per
 * call, on PGlite and PostgreSQL (when DATABASE_URL is set).
 */
import type { Db, Queryable } from '../../src/store/db';
import { dbTargets, type DbTarget } from '../helpers/db';
import { makeCampaign, makeContacts } from '../campaign/fixtures';
import { loadCallContext } from '../../src/llm/context';

describe.each(dbTargets())('call context on db target %#', (mk) => {
  let target: DbTarget;
  let db: Db;
  let statements = 0;
  let counted: Queryable;

  beforeAll(async () => {
    target = mk();
    db = await target.open();
    counted = { query: (sql: string, params?: unknown[]) => (statements++, db.query(sql, params)) } as Queryable;
  });
  afterAll(async () => {
    await db?.close();
    await target?.cleanup();
  });

  test('contact and campaign in one statement; a setting never shadows the id or name; unknown ids give nothing', async () => {
    const cid = await makeCampaign(db, {
      name: 'Spring drive',
      timezone: 'Europe/Paris',
      settings: { company: 'Acme', id: 999, name: 'shadow' },
    });
    await makeContacts(db, cid, 1, { prefix: '+3312', tz: 'Europe/Paris' });
    const contactId = (await db.query<{ id: number }>('select id from contacts where campaign_id = $1', [cid])).rows[0]
      .id;
    statements = 0;
    const c = await loadCallContext(counted, { contactId, campaignId: cid });
    expect(statements).toBe(1);
    expect(c.contact).toEqual({
      id: contactId,
      name: 'Contact 1',
      phone: '+33120000001',
      timezone: 'Europe/Paris',
      fields: { n: 1 },
    });
    expect(c.campaign).toEqual({
      company: 'Acme',
      id: cid,
      name: 'Spring drive',
      timezone: 'Europe/Paris',
      settings: { company: 'Acme', id: 999, name: 'shadow' },
    });
    statements = 0;
    expect(await loadCallContext(counted, { contactId: 987654, campaignId: cid })).toEqual({ campaign: c.campaign });
    expect(await loadCallContext(counted, { contactId, campaignId: 987654 })).toEqual({ contact: c.contact });
    expect(statements).toBe(2);
    statements = 0;
    expect(await loadCallContext(counted, { contactId: null, campaignId: 0 })).toEqual({});
    expect(statements).toBe(0);
  });
});
