/**
 * The contact and campaign a call's templates need (src/llm/context.ts): read in one statement, once per
 * call, on PGlite and PostgreSQL (when DATABASE_URL is set).
 */
import type { Db, Queryable } from '../../src/store/db';
import { dbTargets, type DbTarget } from '../helpers/db';
import { makeCampaign, makeContacts, waitFor } from '../campaign/fixtures';
import { loadCallContext, takeCallContext } from '../../src/llm/context';
import { CampaignManager, type PlaceCall } from '../../src/campaign/manager';

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

  test("a placed call's context, remembered from its claim, is what the store read gives; forgotten when the call ends", async () => {
    const cid = await makeCampaign(db, {
      status: 'draft',
      name: 'Placed drive',
      timezone: 'America/Chicago',
      callsPerSecond: 1000,
      settings: { company: 'Acme', name: 'shadow' },
    });
    await makeContacts(db, cid, 2, { prefix: '+1651', tz: null });
    await db.query(`update contacts set timezone = 'America/Denver' where campaign_id = $1 and name = 'Contact 2'`, [
      cid,
    ]);
    const m = new CampaignManager({ db, worker: 'ctx', tickMs: 5, idleMs: 20, progressIntervalMs: 50 });
    const placed: PlaceCall[] = [];
    m.on('call', (c: PlaceCall) => placed.push(c));
    try {
      await m.start(cid);
      await waitFor(() => placed.length === 2, 15000, 'two calls placed');
      // a: the contact without a zone of its own (its claim's effective zone is the campaign's: not its own)
      const [a, b] = placed[0].contact.name === 'Contact 1' ? placed : [placed[1], placed[0]];
      const known = takeCallContext(a.id);
      expect(known).toEqual(await loadCallContext(db, { contactId: a.contactId, campaignId: cid }));
      expect(known?.contact?.timezone).toBeNull();
      expect(takeCallContext(a.id)).toBeUndefined(); // taken once
      // a call that ends before its session comes: dropped with the call
      await m.handleOutcome({ id: b.id, outcome: 'no_answer' });
      expect(takeCallContext(b.id)).toBeUndefined();
    } finally {
      await m.close();
    }
  });
});
