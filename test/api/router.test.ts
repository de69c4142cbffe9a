import http from 'http';
import express from 'express';
import type { Db } from '../../src/store/db';
import { dbTargets, type DbTarget } from '../helpers/db';
import { request, serve, type Srv } from '../helpers/http';
import { createApiRouter, type CampaignControlApi } from '../../src/api/router';
import { DialerError } from '../../src/util/errors';
import { appendTurn, closeCall } from '../../src/store/calls';

/** A control double that records calls (the real engine is tested by the campaign suite). */
function fakeControl() {
  const calls: string[] = [];
  const c: CampaignControlApi & { calls: string[] } = {
    calls,
    start: async (id) => {
      calls.push(`start ${id}`);
      if (id === 424242) throw new DialerError('campaign_no_caller_id', 'campaign has no caller-ID numbers');
      return { state: 'running' };
    },
    stop: async (id) => {
      calls.push(`stop ${id}`);
      return { state: 'stopped' };
    },
    pause: async (id) => {
      calls.push(`pause ${id}`);
      return { state: 'paused' };
    },
    resume: async (id) => {
      calls.push(`resume ${id}`);
      return { state: 'running' };
    },
    status: async (id) => ({ state: 'running', inFlight: 0, id }),
  };
  return c;
}

const req = request;

describe.each(dbTargets())('HTTP API on db target %#', (mk) => {
  let target: DbTarget;
  let db: Db;
  let srv: Srv;
  let control: ReturnType<typeof fakeControl>;
  let dbUp = true;
  const call = (m: string, p: string, b?: unknown, h?: Record<string, string>) => req(srv.url, m, p, b, h);

  beforeAll(async () => {
    target = mk();
    db = await target.open();
    control = fakeControl();
    const app = express();
    app.use(
      createApiRouter({
        getDb: async () => {
          if (!dbUp) throw new Error('connection refused');
          return db;
        },
        control,
        token: '',
        maxUploadBytes: 200000,
        maxJsonBytes: 100000,
        log: () => undefined,
      }),
    );
    srv = await serve(app);
  });
  afterAll(async () => {
    await srv?.close();
    await db?.close();
    await target?.cleanup();
  });

  test('campaign create / list / get / patch happy path', async () => {
    const c = await call('POST', '/api/v1/campaigns', {
      name: 'Spring renewals',
      timezone: 'America/Chicago',
      windowStart: '10:00',
      window_end: '18:30',
      max_concurrent: 3,
      calls_per_second: 0.5,
      max_attempts: 4,
      retry_policy: { busy: 120 },
      caller_id_strategy: 'local_presence',
      default_country: 'us',
      amd_enabled: true,
      settings: { greeting: 'Hi {{name}}', prompt: 'Be brief.' },
    });
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({
      name: 'Spring renewals',
      status: 'draft',
      timezone: 'America/Chicago',
      window_start: '10:00:00',
      window_end: '18:30:00',
      max_concurrent: 3,
      calls_per_second: 0.5,
      max_attempts: 4,
      caller_id_strategy: 'local_presence',
      default_country: 'US',
      amd_enabled: true,
      retry_policy: { busy: 120, no_answer: 3600, failed: 1800, congestion: 600, cancelled: 0 },
      settings: { greeting: 'Hi {{name}}', prompt: 'Be brief.' },
    });
    const id = c.body.id;
    const list = await call('GET', '/api/v1/campaigns');
    expect(list.status).toBe(200);
    expect(list.body.campaigns.find((x: any) => x.id === id)).toMatchObject({ contacts_total: 0, caller_ids: 0 });
    const p = await call('PATCH', `/api/v1/campaigns/${id}`, {
      settings: { prompt: null, voice: 'en-us' },
      retry_policy: { no_answer: 60 },
      window_end: '19:00',
    });
    expect(p.status).toBe(200);
    expect(p.body.settings).toEqual({ greeting: 'Hi {{name}}', voice: 'en-us' });
    expect(p.body.retry_policy).toMatchObject({ busy: 120, no_answer: 60 });
    expect(p.body.window_end).toBe('19:00:00');
    const g = await call('GET', `/api/v1/campaigns/${id}`);
    expect(g.body).toMatchObject({ id, phone_numbers: [], contacts_total: 0, window_end: '19:00:00' });
  });

  test('campaign validation: every bad field is a 400 with a clear message', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{}, /name is required/],
      [{ name: '' }, /name must be text/],
      [{ name: 'x', timezone: 'Mars/Base' }, /timezone must be an IANA time zone/],
      [{ name: 'x', window_start: '25:00' }, /window_start must be a time/],
      [{ name: 'x', window_start: '20:00', window_end: '09:00' }, /must be before window_end/],
      [{ name: 'x', max_concurrent: 0 }, /max_concurrent must be an integer/],
      [{ name: 'x', max_concurrent: 1.5 }, /max_concurrent/],
      [{ name: 'x', calls_per_second: -1 }, /calls_per_second/],
      [{ name: 'x', calls_per_second: '5' }, /calls_per_second/],
      [{ name: 'x', max_attempts: 1000 }, /max_attempts/],
      [{ name: 'x', retry_policy: { sometimes: 5 } }, /retry_policy.sometimes is not an outcome/],
      [{ name: 'x', retry_policy: { busy: -5 } }, /retry_policy.busy/],
      [{ name: 'x', retry_policy: [] }, /retry_policy must be an object/],
      [{ name: 'x', caller_id_strategy: 'random' }, /caller_id_strategy must be one of/],
      [{ name: 'x', default_country: 'XX' }, /default_country/],
      [{ name: 'x', amd_enabled: 'yes' }, /amd_enabled/],
      [{ name: 'x', settings: 'hello' }, /settings must be an object/],
      [{ name: 'x', settings: { greeting: 5 } }, /settings.greeting must be text/],
      [{ name: 'x', settings: { big: 'y'.repeat(70000) } }, /settings must stay under/],
      [{ name: 'x', status: 'running' }, /status cannot be set/],
      [{ name: 'x', bogus: 1 }, /unknown field "bogus"/],
      [[1, 2], /must be a JSON object/],
    ];
    for (const [body, re] of cases) {
      const r = await call('POST', '/api/v1/campaigns', body);
      expect([r.status, r.body.error]).toEqual([400, expect.stringMatching(re)]);
    }
    const badJson = await call('POST', '/api/v1/campaigns', '{"name": ', { 'content-type': 'application/json' });
    expect(badJson.status).toBe(400);
    expect(badJson.body.error).toMatch(/not valid JSON/);
    const wrongType = await call('POST', '/api/v1/campaigns', 'name=x', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(wrongType.status).toBe(415);
    const huge = await call('POST', '/api/v1/campaigns', { name: 'x', settings: { a: 'b'.repeat(200000) } });
    expect(huge.status).toBe(413);
    expect(huge.body.error).toMatch(/larger than the limit/);
    for (const p of [
      '/api/v1/campaigns/abc',
      '/api/v1/campaigns/0',
      '/api/v1/campaigns/99999999999',
      '/api/v1/campaigns/-1',
    ]) {
      const r = await call('GET', p);
      expect([p, r.status, r.body.error]).toEqual([
        p,
        400,
        expect.stringMatching(/campaign id must be a positive integer/),
      ]);
    }
    expect((await call('GET', '/api/v1/campaigns/987654')).status).toBe(404);
    expect((await call('PATCH', '/api/v1/campaigns/987654', { name: 'y' })).status).toBe(404);
    expect((await call('GET', '/api/v1/campaigns/987654/status')).status).toBe(404);
    expect((await call('GET', '/api/v1/nothing-here')).status).toBe(404);
  });

  test('contacts: CSV body, multipart upload, JSON; per-row errors; 4xx cases', async () => {
    const id = (await call('POST', '/api/v1/campaigns', { name: 'imports' })).body.id;
    const csv = 'phone,name,plan\n2125550123,Ann,gold\nnope,Bad,\n4155550100,Bob,\n';
    const a = await call('POST', `/api/v1/campaigns/${id}/contacts`, csv, { 'content-type': 'text/csv' });
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({
      rows: 3,
      inserted: 2,
      invalid: 1,
      errors: [{ line: 3, reason: expect.stringMatching(/not a phone number/) }],
    });

    const fd = new FormData();
    fd.append(
      'file',
      new Blob(['\ufeffPhone;Name\r\n3125550100;Cy\r\n(212) 555-0123;Ann B\r\n'], { type: 'text/csv' }),
      'list.csv',
    );
    const b = await call('POST', `/api/v1/campaigns/${id}/contacts`, fd);
    expect(b.status).toBe(200);
    expect(b.body).toMatchObject({ inserted: 1, updated: 1, invalid: 0 });

    const j = await call('POST', `/api/v1/campaigns/${id}/contacts`, {
      contacts: [{ phone: '6025550100', name: 'Di', tier: 2 }, { phone: 'x' }],
    });
    expect(j.status).toBe(200);
    expect(j.body).toMatchObject({ inserted: 1, invalid: 1, errors: [{ line: 2 }] });
    const j2 = await call('POST', `/api/v1/campaigns/${id}/contacts`, [{ phone: '7135550100' }]);
    expect(j2.body.inserted).toBe(1);

    const none = await call('POST', `/api/v1/campaigns/${id}/contacts`, 'phone\nxx\nyy\n', {
      'content-type': 'text/csv',
    });
    expect(none.status).toBe(422);
    expect(none.body).toMatchObject({ error: expect.stringMatching(/no valid rows/), invalid: 2 });
    const noPhone = await call('POST', `/api/v1/campaigns/${id}/contacts`, 'email\na@b\n', {
      'content-type': 'text/csv',
    });
    expect([noPhone.status, noPhone.body.error]).toEqual([400, expect.stringMatching(/no phone column/)]);
    const noType = await call('POST', `/api/v1/campaigns/${id}/contacts`, 'phone\n1\n', { 'content-type': '' });
    expect(noType.status).toBe(415);
    const xml = await call('POST', `/api/v1/campaigns/${id}/contacts`, '<a/>', { 'content-type': 'application/xml' });
    expect(xml.status).toBe(415);
    const badObj = await call('POST', `/api/v1/campaigns/${id}/contacts`, { hello: 1 });
    expect([badObj.status, badObj.body.error]).toEqual([400, expect.stringMatching(/JSON body must be/)]);
    const tooBig = await call('POST', `/api/v1/campaigns/${id}/contacts`, 'phone\n' + '2125550123\n'.repeat(30000), {
      'content-type': 'text/csv',
    });
    expect(tooBig.status).toBe(413);
    const bigFd = new FormData();
    bigFd.append('file', new Blob(['phone\n' + '2125550123\n'.repeat(30000)]), 'big.csv');
    const tooBigFile = await call('POST', `/api/v1/campaigns/${id}/contacts`, bigFd);
    expect([tooBigFile.status, tooBigFile.body.error]).toEqual([413, expect.stringMatching(/larger than/)]);
    const emptyFd = new FormData();
    emptyFd.append('note', 'x');
    expect((await call('POST', `/api/v1/campaigns/${id}/contacts`, emptyFd)).status).toBe(400);
    const brokenMp = await call('POST', `/api/v1/campaigns/${id}/contacts`, 'garbage', {
      'content-type': 'multipart/form-data',
    });
    expect([brokenMp.status, brokenMp.body.error]).toEqual([400, expect.stringMatching(/multipart/)]);
    const badCountry = await call('POST', `/api/v1/campaigns/${id}/contacts?country=ZZ`, csv, {
      'content-type': 'text/csv',
    });
    expect(badCountry.status).toBe(400);
    expect((await call('POST', '/api/v1/campaigns/999999/contacts', csv, { 'content-type': 'text/csv' })).status).toBe(
      404,
    );
    expect((await call('POST', '/api/v1/campaigns/x/contacts', csv, { 'content-type': 'text/csv' })).status).toBe(400);

    const st = await call('GET', `/api/v1/campaigns/${id}/status`);
    expect(st.status).toBe(200);
    expect(st.body).toMatchObject({
      campaignId: id,
      status: 'draft',
      contacts: { total: 5, pending: 5 },
      activeCalls: 0,
      progressPercent: 0,
    });
    expect(st.body.progress).toEqual({
      campaignId: id,
      status: 'draft',
      total: 5,
      queued: 5,
      retrying: 0,
      nextRetryAt: null,
      dialing: 0,
      active: 0,
      completed: 0,
      failed: 0,
      no_answer: 0,
      busy: 0,
      machine: 0,
      dnc_skipped: 0,
      percent: 0,
    });
  });

  test('phone numbers: add, update, validation', async () => {
    const id = (await call('POST', '/api/v1/campaigns', { name: 'cid' })).body.id;
    const a = await call('POST', `/api/v1/campaigns/${id}/phone-numbers`, {
      numbers: ['(212) 555-0199', { number: '+14155550199', label: 'west' }],
    });
    expect(a.status).toBe(201);
    expect(a.body).toMatchObject({ added: 2, updated: 0 });
    expect(a.body.phone_numbers.map((p: any) => [p.number, p.label, p.active])).toEqual([
      ['+12125550199', null, true],
      ['+14155550199', 'west', true],
    ]);
    const u = await call('POST', `/api/v1/campaigns/${id}/phone-numbers`, { number: '2125550199', active: false });
    expect(u.status).toBe(200);
    expect(u.body).toMatchObject({ added: 0, updated: 1 });
    const bad = await call('POST', `/api/v1/campaigns/${id}/phone-numbers`, [
      '2125550198',
      'nope',
      { number: '3125550100', active: 'yes' },
    ]);
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({
      error: expect.stringMatching(/2 number\(s\) rejected/),
      errors: [{ item: 2 }, { item: 3 }],
    });
    expect((await call('GET', `/api/v1/campaigns/${id}`)).body.phone_numbers).toHaveLength(2);
    expect((await call('POST', `/api/v1/campaigns/${id}/phone-numbers`, { foo: 1 })).status).toBe(400);
    expect((await call('POST', `/api/v1/campaigns/${id}/phone-numbers`, [])).status).toBe(400);
    expect((await call('POST', '/api/v1/campaigns/999999/phone-numbers', { number: '2125550100' })).status).toBe(404);
  });

  test('DNC: global and per-campaign, CSV and JSON, errors', async () => {
    const id = (await call('POST', '/api/v1/campaigns', { name: 'dnc' })).body.id;
    const g = await call('POST', '/api/v1/dnc', 'phone,reason\n2125550111,asked\nbad,\n', {
      'content-type': 'text/csv',
    });
    expect(g.status).toBe(200);
    expect(g.body).toMatchObject({ kind: 'dnc', campaignId: null, inserted: 1, invalid: 1, errors: [{ line: 3 }] });
    const c = await call('POST', `/api/v1/dnc?campaignId=${id}`, 'phone\n2125550112\n', { 'content-type': 'text/csv' });
    expect(c.body).toMatchObject({ campaignId: id, inserted: 1 });
    const j = await call('POST', '/api/v1/dnc', { campaignId: id, numbers: ['2125550113'], reason: 'complaint' });
    expect(j.body).toMatchObject({ campaignId: id, inserted: 1 });
    const row = await db.query<any>("select reason, source, campaign_id from dnc where phone = '+12125550113'");
    expect(row.rows).toEqual([{ reason: 'complaint', source: 'api', campaign_id: id }]);
    const fd = new FormData();
    fd.append('campaignId', String(id));
    fd.append('file', new Blob(['2125550114\n']), 'dnc.csv');
    expect((await call('POST', '/api/v1/dnc', fd)).body).toMatchObject({ campaignId: id, inserted: 1 });
    expect(
      (await call('POST', '/api/v1/dnc?campaignId=abc', 'phone\n1\n', { 'content-type': 'text/csv' })).status,
    ).toBe(400);
    expect(
      (await call('POST', '/api/v1/dnc?campaignId=999999', 'phone\n1\n', { 'content-type': 'text/csv' })).status,
    ).toBe(404);
    expect((await call('POST', '/api/v1/dnc', 'phone\nzz\n', { 'content-type': 'text/csv' })).status).toBe(422);
  });

  test('controls: start/stop/pause/resume/status; engine errors are 409; missing ids 400/404', async () => {
    const id = (await call('POST', '/api/v1/campaigns', { name: 'ctl' })).body.id;
    for (const a of ['start', 'pause', 'resume', 'stop']) {
      const r = await call('POST', `/api/v1/calls/automated/${a}`, { campaignId: id });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ ok: true, action: a, campaignId: id, status: 'draft' });
    }
    expect(control.calls.slice(-4)).toEqual([`start ${id}`, `pause ${id}`, `resume ${id}`, `stop ${id}`]);
    const s = await call('GET', `/api/v1/calls/automated/status?campaignId=${id}`);
    expect(s.body).toMatchObject({
      campaignId: id,
      engineAvailable: true,
      engine: { state: 'running', id },
      contacts: { total: 0 },
    });
    expect((await call('POST', '/api/v1/calls/automated/start', {})).body.error).toMatch(
      /campaignId must be a positive integer \(missing\)/,
    );
    expect((await call('POST', '/api/v1/calls/automated/start', { campaignId: 'x' })).status).toBe(400);
    expect((await call('POST', '/api/v1/calls/automated/start', { campaignId: 999999 })).status).toBe(404);
    expect((await call('GET', '/api/v1/calls/automated/status')).status).toBe(400);
    await db.query('insert into campaigns (id, name) values (424242, $1) on conflict do nothing', ['engine refuses']);
    const refused = await call('POST', '/api/v1/calls/automated/start', { campaignId: 424242 });
    expect(refused.status).toBe(409);
    expect(refused.body).toEqual({ error: 'campaign has no caller-ID numbers', code: 'campaign_no_caller_id' });
  });

  test('calls: list with filters, one call with turns and transcript', async () => {
    const id = (await call('POST', '/api/v1/campaigns', { name: 'calls' })).body.id;
    const k = await db.query<{ id: number }>(
      "insert into contacts (campaign_id, phone, name) values ($1, '+12125550150', 'Eve') returning id",
      [id],
    );
    const c1 = (
      await db.query<{ id: number }>(
        "insert into calls (campaign_id, contact_id, phone, status) values ($1, $2, '+12125550150', 'in_progress') returning id",
        [id, k.rows[0].id],
      )
    ).rows[0].id;
    const c2 = (
      await db.query<{ id: number }>(
        "insert into calls (campaign_id, phone, status) values ($1, '+12125550151', 'initiated') returning id",
        [id],
      )
    ).rows[0].id;
    await appendTurn(db, c1, { seq: 0, botText: 'Hello Eve', timing: { ttsMs: 120 } });
    await appendTurn(db, c1, {
      seq: 1,
      userText: 'Hi',
      botText: 'Great',
      timing: { recordMs: 900, sttMs: 200, llmMs: 300, ttsMs: 100 },
    });
    await closeCall(db, c2, { status: 'busy' });
    const list = await call('GET', `/api/v1/calls?campaignId=${id}`);
    expect(list.body.calls.map((c: any) => [c.id, c.status])).toEqual([
      [c2, 'busy'],
      [c1, 'in_progress'],
    ]);
    expect(list.body.calls[1].contact_name).toBe('Eve');
    const active = await call('GET', `/api/v1/calls?campaignId=${id}&status=active&limit=5`);
    expect(active.body.calls.map((c: any) => c.id)).toEqual([c1]);
    const one = await call('GET', `/api/v1/calls/${c1}`);
    expect(one.status).toBe(200);
    expect(one.body.call).toMatchObject({ id: c1, status: 'in_progress', phone: '+12125550150' });
    expect(one.body.turns.map((t: any) => [t.seq, t.user_text, t.bot_text, t.total_ms])).toEqual([
      [0, null, 'Hello Eve', 120],
      [1, 'Hi', 'Great', 1500],
    ]);
    expect(one.body.transcript).toBe('Agent: Hello Eve\nCaller: Hi\nAgent: Great');
    const st = await call('GET', `/api/v1/campaigns/${id}/status`);
    expect(st.body).toMatchObject({
      activeCalls: 1,
      calls: { total: 2, byStatus: { in_progress: 1, busy: 1 }, byOutcome: { busy: 1 } },
    });
    expect((await call('GET', '/api/v1/calls/999999')).status).toBe(404);
    expect((await call('GET', '/api/v1/calls/abc')).status).toBe(400);
    expect((await call('GET', '/api/v1/calls?limit=0')).status).toBe(400);
    expect((await call('GET', '/api/v1/calls?limit=abc')).status).toBe(400);
    expect((await call('GET', '/api/v1/calls?status=weird')).status).toBe(400);
    expect((await call('GET', '/api/v1/calls?campaignId=1%3Bdrop')).status).toBe(400);
  });

  test('a chunked upload over the limit is a 413 JSON answer while it streams; nothing is stored', async () => {
    const c = await call('POST', '/api/v1/campaigns', { name: 'chunked' });
    const u = new URL(`${srv.url}/api/v1/campaigns/${c.body.id}/contacts`);
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = http.request(
        { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'text/csv' } },
        (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      r.on('error', reject);
      r.write('phone\n');
      let sent = 0;
      const more = () => {
        while (sent < 300000) {
          sent += 10000;
          if (!r.write('2125550100\n'.repeat(909))) return r.once('drain', more);
        }
        r.end();
      };
      more();
    });
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body).error).toMatch(/larger than the limit \(200000 bytes\)/);
    expect((await call('GET', `/api/v1/campaigns/${c.body.id}`)).body.contacts_total).toBe(0);
  });

  test('database down -> 503; engine not loaded -> 503', async () => {
    dbUp = false;
    try {
      const r = await call('GET', '/api/v1/campaigns');
      expect([r.status, r.body.error]).toEqual([
        503,
        expect.stringMatching(/database is unavailable: connection refused/),
      ]);
    } finally {
      dbUp = true;
    }
    const app = express();
    app.use(createApiRouter({ getDb: async () => db, control: () => undefined, token: '' }));
    const s2 = await serve(app);
    try {
      const id = (await req(s2.url, 'POST', '/api/v1/campaigns', { name: 'no engine' })).body.id;
      const r = await req(s2.url, 'POST', '/api/v1/calls/automated/start', { campaignId: id });
      expect([r.status, r.body.error]).toEqual([503, expect.stringMatching(/campaign engine is not available/)]);
      const st = await req(s2.url, 'GET', `/api/v1/calls/automated/status?campaignId=${id}`);
      expect(st.body).toMatchObject({ engineAvailable: false, engine: null });
    } finally {
      await s2.close();
    }
    // The default control is the campaign engine's registry (src/campaign/control.ts); with no
    // campaign-queue deployed it is unavailable -> 503, and status says so.
    const app3 = express();
    app3.use(createApiRouter({ getDb: async () => db, token: '' }));
    const s3 = await serve(app3);
    try {
      const id = (await req(s3.url, 'POST', '/api/v1/campaigns', { name: 'no queue' })).body.id;
      const r = await req(s3.url, 'POST', '/api/v1/calls/automated/start', { campaignId: id });
      expect(r.status).toBe(503);
      expect(r.body).toEqual({ error: 'no campaign-queue node is deployed', code: 'campaign_no_queue' });
      const st = await req(s3.url, 'GET', `/api/v1/calls/automated/status?campaignId=${id}`);
      expect(st.status).toBe(200);
      expect(st.body).toMatchObject({
        engineAvailable: false,
        engine: null,
        engineError: 'no campaign-queue node is deployed',
      });
    } finally {
      await s3.close();
    }
  });

  test('API token protects every route but health (Bearer or X-API-Token); the read-only token only reads', async () => {
    const app = express();
    app.use(createApiRouter({ getDb: async () => db, control, token: 's3cret-token', readToken: 'read-only-tok' }));
    const s2 = await serve(app);
    try {
      const none = await req(s2.url, 'POST', '/api/v1/campaigns', { name: 'x' });
      expect([none.status, none.body.error]).toEqual([401, expect.stringMatching(/needs the API token/)]);
      const wrong = await req(s2.url, 'POST', '/api/v1/campaigns', { name: 'x' }, { authorization: 'Bearer nope' });
      expect(wrong.status).toBe(403);
      const up = await req(s2.url, 'POST', '/api/v1/dnc', 'phone\n2125550100\n', { 'content-type': 'text/csv' });
      expect(up.status).toBe(401);
      const ok = await req(
        s2.url,
        'POST',
        '/api/v1/campaigns',
        { name: 'tok' },
        { authorization: 'Bearer s3cret-token' },
      );
      expect(ok.status).toBe(201);
      const ok2 = await req(
        s2.url,
        'PATCH',
        `/api/v1/campaigns/${ok.body.id}`,
        { name: 'tok2' },
        { 'x-api-token': 's3cret-token' },
      );
      expect(ok2.status).toBe(200);
      const stop = await req(s2.url, 'POST', '/api/v1/calls/automated/stop', { campaignId: ok.body.id });
      expect(stop.status).toBe(401);
      // reads carry personal data: they need a token too (either kind)
      for (const p of [`/api/v1/campaigns/${ok.body.id}`, '/api/v1/calls', '/api/v1/campaigns']) {
        expect((await req(s2.url, 'GET', p)).status).toBe(401);
        expect((await req(s2.url, 'GET', p, undefined, { authorization: 'Bearer read-only-tok' })).status).toBe(200);
        expect((await req(s2.url, 'GET', p, undefined, { 'x-api-token': 's3cret-token' })).status).toBe(200);
      }
      const ro = await req(
        s2.url,
        'POST',
        '/api/v1/campaigns',
        { name: 'x' },
        { authorization: 'Bearer read-only-tok' },
      );
      expect([ro.status, ro.body.error]).toEqual([403, expect.stringMatching(/read-only/)]);
      const health = await req(s2.url, 'GET', '/api/v1/health');
      expect([health.status, health.body.auth]).toEqual([200, 'token']);
    } finally {
      await s2.close();
    }
  });
});
