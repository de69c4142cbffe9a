/**
 * The do-not-call list API (issue 15 item 6): GET /api/v1/dnc (paged, searchable, global or per
 * campaign), GET /api/v1/dnc/:phone (entries + audit trail), DELETE /api/v1/dnc/:phone (reason, who,
 * when), on PGlite and PostgreSQL, with hostile input.
 */
import express from 'express';
import type { Db } from '../../src/store/db';
import { createApiRouter } from '../../src/api/router';
import { storeDnc } from '../../src/store/turns';
import { dbTargets, type DbTarget } from '../helpers/db';
import { request, serve, type Srv } from '../helpers/http';

const FULL = 'full-token-for-dnc-tests';
const READ = 'read-token-for-dnc-tests';
const auth = { authorization: `Bearer ${FULL}` };
const readAuth = { authorization: `Bearer ${READ}` };
const csv = { ...auth, 'content-type': 'text/csv' };

describe.each(dbTargets())('do-not-call API on db target %#', (mk) => {
  let target: DbTarget;
  let db: Db;
  let srv: Srv;
  let camp = 0;
  const call = (m: string, p: string, b?: unknown, h: Record<string, string> = auth) => request(srv.url, m, p, b, h);

  beforeAll(async () => {
    target = mk();
    db = await target.open();
    const app = express();
    app.use(createApiRouter({ getDb: async () => db, token: FULL, readToken: READ, log: () => undefined }));
    srv = await serve(app);
    camp = (await call('POST', '/api/v1/campaigns', { name: 'dnc api' })).body.id;
    expect(camp).toBeGreaterThan(0);
    expect((await call('POST', '/api/v1/dnc', 'phone,reason\n2125550101,asked on the phone\n', csv)).status).toBe(200);
    expect((await call('POST', '/api/v1/dnc', 'phone,reason\n2125550102,complaint by letter\n', csv)).status).toBe(200);
    const c = await call('POST', `/api/v1/dnc?campaignId=${camp}`, 'phone,reason\n2125550103,campaign opt-out\n', csv);
    expect(c.status).toBe(200);
    // a callee's request understood in a conversation (src/store/turns.ts), global list
    await storeDnc(db, {
      phone: '+12125550104',
      campaignId: null,
      reason: 'caller asked not to be called',
      source: 'conversation',
    });
  });
  afterAll(async () => {
    await srv?.close();
    await db?.close();
    await target?.cleanup();
  });

  test('the list: every list by default, newest first, with who added each number', async () => {
    const r = await call('GET', '/api/v1/dnc');
    expect(r.status).toBe(200);
    expect(r.body.total).toBe(4);
    expect(r.body.entries.map((e: any) => e.phone)).toEqual([
      '+12125550104',
      '+12125550103',
      '+12125550102',
      '+12125550101',
    ]);
    const byPhone = Object.fromEntries(r.body.entries.map((e: any) => [e.phone, e]));
    expect(byPhone['+12125550101']).toMatchObject({
      campaignId: null,
      reason: 'asked on the phone',
      source: 'api',
      addedBy: 'api-token',
    });
    expect(byPhone['+12125550103']).toMatchObject({ campaignId: camp, addedBy: 'api-token' });
    expect(byPhone['+12125550104']).toMatchObject({ source: 'conversation', addedBy: 'conversation' });
    expect(typeof byPhone['+12125550101'].createdAt).toBe('string');
    // the read-only token reads it (dashboards, reporting)
    expect((await call('GET', '/api/v1/dnc', undefined, readAuth)).status).toBe(200);
    // without a credential: refused (phone numbers are personal data)
    expect((await call('GET', '/api/v1/dnc', undefined, {})).status).toBe(401);
  });

  test('scope, paging and search', async () => {
    const g = await call('GET', '/api/v1/dnc?campaignId=global');
    expect(g.body.total).toBe(3);
    expect(g.body.entries.every((e: any) => e.campaignId === null)).toBe(true);
    const c = await call('GET', `/api/v1/dnc?campaignId=${camp}`);
    expect(c.body.entries.map((e: any) => e.phone)).toEqual(['+12125550103']);
    const p1 = await call('GET', '/api/v1/dnc?limit=2');
    const p2 = await call('GET', '/api/v1/dnc?limit=2&offset=2');
    expect(p1.body).toMatchObject({ total: 4, limit: 2, offset: 0 });
    expect([...p1.body.entries, ...p2.body.entries].map((e: any) => e.phone)).toEqual(
      (await call('GET', '/api/v1/dnc')).body.entries.map((e: any) => e.phone),
    );
    expect((await call('GET', '/api/v1/dnc?offset=100')).body).toMatchObject({ total: 4, entries: [] });
    // digits anywhere in the number, whatever the formatting of the search
    expect((await call('GET', '/api/v1/dnc?q=555-0102')).body.entries.map((e: any) => e.phone)).toEqual([
      '+12125550102',
    ]);
    expect((await call('GET', `/api/v1/dnc?q=${encodeURIComponent('(212) 555')}`)).body.total).toBe(4);
    // words in the reason, case-insensitive
    expect((await call('GET', '/api/v1/dnc?q=COMPLAINT')).body.entries.map((e: any) => e.phone)).toEqual([
      '+12125550102',
    ]);
  });

  test('hostile list queries get a 400 or an empty page, never a SQL error', async () => {
    for (const q of [
      'limit=100000',
      'limit=0',
      'limit=-1',
      'limit=abc',
      'limit=1e3',
      'offset=-5',
      'offset=99999999999',
      'campaignId=abc',
      'campaignId=0',
      `q=${'x'.repeat(101)}`,
      'q=%00',
    ])
      expect([q, (await call('GET', `/api/v1/dnc?${q}`)).status]).toEqual([q, 400]);
    expect((await call('GET', '/api/v1/dnc?campaignId=999999')).status).toBe(404);
    expect((await call('GET', '/api/v1/dnc?limit=1&limit=2')).status).toBe(400);
    for (const inj of ["'; drop table dnc; --", "%' or '1'='1", '%', '_', '\\', "1' union select null--"]) {
      const r = await call('GET', `/api/v1/dnc?q=${encodeURIComponent(inj)}`);
      expect([inj, r.status, r.body.total]).toEqual([inj, 200, 0]);
    }
    expect((await call('GET', '/api/v1/dnc')).body.total).toBe(4);
  });

  test('one number: its entries and its audit trail; a bad or unknown number', async () => {
    const r = await call('GET', `/api/v1/dnc/${encodeURIComponent('+12125550101')}`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ phone: '+12125550101', listed: true, entries: [{ campaignId: null }] });
    expect(r.body.history).toEqual([
      expect.objectContaining({ action: 'added', reason: 'asked on the phone', source: 'api', actor: 'api-token' }),
    ]);
    // national format is the same number
    expect((await call('GET', '/api/v1/dnc/(212)%20555-0101')).body.phone).toBe('+12125550101');
    expect((await call('GET', '/api/v1/dnc/2125550199')).status).toBe(404);
    for (const bad of ['abc', '%0A%0D123', 'x'.repeat(300), "1'%3Bdrop"])
      expect([bad, (await call('GET', `/api/v1/dnc/${bad}`)).status]).toEqual([bad, 400]);
    expect((await call('GET', '/api/v1/dnc/2125550101?country=zzz')).status).toBe(400);
  });

  test('a changed reason is in the trail', async () => {
    expect((await call('POST', '/api/v1/dnc', 'phone,reason\n2125550102,complaint by email\n', csv)).body.updated).toBe(
      1,
    );
    const h = (await call('GET', '/api/v1/dnc/2125550102')).body.history;
    expect(h.map((x: any) => [x.action, x.reason])).toEqual([
      ['added', 'complaint by letter'],
      ['updated', 'complaint by email'],
    ]);
  });

  test('DELETE: reason required, read token refused, the removal kept with who and why, contacts reopened', async () => {
    // a contact of the campaign with a globally listed number is closed as dnc...
    const up = await call(
      'POST',
      `/api/v1/campaigns/${camp}/contacts`,
      'phone,name\n2125550101,Ann\n2125550103,Bob\n',
      csv,
    );
    expect(up.status).toBe(200);
    await db.query(`update contacts set status = 'dnc' where campaign_id = $1`, [camp]);

    const p = '/api/v1/dnc/2125550101';
    expect((await call('DELETE', p)).status).toBe(400); // no reason
    expect((await call('DELETE', p, { reason: '   ' })).status).toBe(400);
    expect((await call('DELETE', p, { reason: 'x'.repeat(501) })).status).toBe(400);
    expect((await call('DELETE', p, { reason: 'bad\u0007' })).status).toBe(400);
    expect((await call('DELETE', p, { reason: 42 })).status).toBe(400);
    expect(
      (await call('DELETE', p, { reason: 'ok' }, { ...readAuth, 'content-type': 'application/json' })).status,
    ).toBe(403);
    expect((await call('DELETE', p, { reason: 'ok' }, {})).status).toBe(401);
    expect((await call('DELETE', '/api/v1/dnc/abc', { reason: 'ok' })).status).toBe(400);
    expect((await call('DELETE', `${p}?campaignId=${camp}`, { reason: 'ok' })).status).toBe(404); // not on that list
    expect((await call('DELETE', `${p}?campaignId=all`, { reason: 'ok' })).status).toBe(400);
    expect((await call('DELETE', `${p}?campaignId=999999`, { reason: 'ok' })).status).toBe(404);
    expect((await call('GET', '/api/v1/dnc/2125550101')).body.listed).toBe(true); // nothing removed so far

    const d = await call('DELETE', p, { reason: 'added by mistake (ticket 42)', by: 'jane' });
    expect(d.status).toBe(200);
    expect(d.body).toMatchObject({
      phone: '+12125550101',
      campaignId: null,
      removed: true,
      actor: 'api-token (jane)',
      contactsReopened: 1,
    });
    const st = await db.query<{ phone: string; status: string }>(
      'select phone, status from contacts where campaign_id = $1 order by phone',
      [camp],
    );
    // Bob's number is still on the campaign's list: it stays closed
    expect(st.rows).toEqual([
      { phone: '+12125550101', status: 'pending' },
      { phone: '+12125550103', status: 'dnc' },
    ]);
    expect((await call('DELETE', p, { reason: 'again' })).status).toBe(404);
    const after = await call('GET', p);
    expect(after.body.listed).toBe(false);
    expect(after.body.history.map((x: any) => [x.action, x.reason, x.actor])).toEqual([
      ['added', 'asked on the phone', 'api-token'],
      ['removed', 'added by mistake (ticket 42)', 'api-token (jane)'],
    ]);
    expect(new Date(after.body.history[1].at).getTime()).toBeGreaterThanOrEqual(
      new Date(after.body.history[0].at).getTime(),
    );
    expect((await call('GET', '/api/v1/dnc')).body.total).toBe(3);

    // the campaign's own list, reason as a query parameter
    const dc = await call(
      'DELETE',
      `/api/v1/dnc/2125550103?campaignId=${camp}&reason=${encodeURIComponent('opt-in again')}`,
    );
    expect(dc.status).toBe(200);
    expect(dc.body.contactsReopened).toBe(1);
  });

  test('a list deleted with its campaign stays in the trail', async () => {
    const c2 = (await call('POST', '/api/v1/campaigns', { name: 'gone' })).body.id;
    expect((await call('POST', `/api/v1/dnc?campaignId=${c2}`, 'phone,reason\n2125550177,opt-out\n', csv)).status).toBe(
      200,
    );
    await db.query('delete from campaigns where id = $1', [c2]);
    const h = (await call('GET', '/api/v1/dnc/2125550177')).body;
    expect(h.listed).toBe(false);
    expect(h.history.map((x: any) => [x.action, x.campaignId, x.reason])).toEqual([
      ['added', c2, 'opt-out'],
      ['removed', c2, 'removed with its campaign'],
    ]);
  });
});
