/** Campaign telephony settings over the HTTP API (issue 15): AMD parameters, voicemail, recording. */
import express from 'express';
import type { Db } from '../../src/store/db';
import { createApiRouter } from '../../src/api/router';
import { pgliteTarget, type DbTarget } from '../helpers/db';
import { request, serve, type Srv } from '../helpers/http';

let target: DbTarget;
let db: Db;
let srv: Srv;
beforeAll(async () => {
  target = pgliteTarget();
  db = await target.open();
  const app = express();
  app.use(createApiRouter({ getDb: async () => db, token: '', log: () => undefined }));
  srv = await serve(app);
});
afterAll(async () => {
  await srv?.close();
  await db?.close();
  await target?.cleanup();
});

test('valid settings are stored; a bad AMD, voicemail or recording value is a 400 naming it', async () => {
  const ok = await request(srv.url, 'POST', '/api/v1/campaigns', {
    name: 'vm',
    amd_enabled: true,
    retry_policy: { machine: 7200 },
    settings: {
      amd: { maxWords: 6, betweenWordsSilenceMs: 80 },
      voicemail: { message: 'Hi {{contact.name}}, please call us back.', beepSilenceMs: 1200 },
      recording: { enabled: true, retentionDays: 14 },
    },
  });
  expect(ok.status).toBe(201);
  expect(ok.body.retry_policy).toMatchObject({ machine: 7200, busy: 600 });
  expect(ok.body.settings.amd).toEqual({ maxWords: 6, betweenWordsSilenceMs: 80 });
  const cases: Array<[unknown, RegExp]> = [
    [{ amd: { maxWords: 99 } }, /settings\.amd\.maxWords must be an integer from 1 to 20/],
    [{ amd: { maxWords: '5' } }, /settings\.amd\.maxWords/],
    [{ amd: { evil: 1 } }, /settings\.amd\.evil is not an AMD parameter/],
    [{ amd: [1, 2] }, /settings\.amd must be an object/],
    [{ voicemail: { message: 'x'.repeat(1001) } }, /settings\.voicemail\.message/],
    [{ voicemail: { beepSilenceMs: 50 } }, /beepSilenceMs must be an integer from 200/],
    [{ voicemail: 'leave a message' }, /settings\.voicemail must be an object/],
    [{ recording: { enabled: 'yes' } }, /settings\.recording\.enabled must be true or false/],
    [{ recording: { retentionDays: -1 } }, /retentionDays must be an integer from 0/],
    // before: accepted and silently read as "not allowed"
    [{ allowPremium: 'yes' }, /settings\.allowPremium must be true or false/],
  ];
  for (const [settings, why] of cases) {
    const r = await request(srv.url, 'PATCH', `/api/v1/campaigns/${ok.body.id}`, { settings });
    expect([JSON.stringify(settings).slice(0, 60), r.status]).toEqual([JSON.stringify(settings).slice(0, 60), 400]);
    expect(r.body.error).toMatch(why);
  }
  expect(
    (await request(srv.url, 'PATCH', `/api/v1/campaigns/${ok.body.id}`, { retry_policy: { robot: 5 } })).body.error,
  ).toMatch(/allowed: .*machine/);
  // unchanged by the refused patches
  const now = await request(srv.url, 'GET', `/api/v1/campaigns/${ok.body.id}`);
  expect(now.body.settings.recording).toEqual({ enabled: true, retentionDays: 14 });
});
