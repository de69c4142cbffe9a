/**
 * Whole-call recordings (issue 15 item 4): the file named on the call, in GET /api/v1/calls/:id, served
 * with the API's credentials, and deleted after the campaign's retention. The dialplan side (MixMonitor,
 * both directions) is proven on a real Asterisk: test/real-asterisk/voicemail-recording.test.ts.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import express from 'express';
import type { Db } from '../../src/store/db';
import { createApiRouter } from '../../src/api/router';
import { recordingPathFor, resolveRecording, setRecordingPath, sweepRecordings } from '../../src/calls/call-recordings';
import { encodeWav } from '../../src/audio/wav';
import { dbTargets, type DbTarget } from '../helpers/db';
import { request, serve, type Srv } from '../helpers/http';

const FULL = 'full-token-recordings';
const READ = 'read-token-recordings';

describe.each(dbTargets())('call recordings on db target %#', (mk) => {
  let target: DbTarget;
  let db: Db;
  let srv: Srv;
  let dir: string;
  const get = (p: string, token: string | null = READ) =>
    request(srv.url, 'GET', p, undefined, token ? { authorization: `Bearer ${token}` } : {});

  async function call(campaignId: number, endedDaysAgo: number | null): Promise<number> {
    const r = await db.query<{ id: number }>(
      `insert into calls (campaign_id, phone, status, ended_at) values ($1, '+12125550100', $2, $3) returning id`,
      [
        campaignId,
        endedDaysAgo === null ? 'in_progress' : 'completed',
        endedDaysAgo === null ? null : new Date(Date.now() - endedDaysAgo * 86_400_000),
      ],
    );
    return r.rows[0].id;
  }
  function writeFile(id: number): string {
    const f = path.join(dir, recordingPathFor(id));
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, encodeWav({ sampleRate: 8000, channels: 1, samples: new Int16Array(800).fill(1000) }));
    return f;
  }

  beforeAll(async () => {
    target = mk();
    db = await target.open();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-callrec-'));
    const app = express();
    app.use(
      createApiRouter({
        getDb: async () => db,
        token: FULL,
        readToken: READ,
        recordingsDir: dir,
        log: () => undefined,
      }),
    );
    srv = await serve(app);
  });
  afterAll(async () => {
    await srv?.close();
    await db?.close();
    await target?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the call names its file; the API serves it with the credential; not recorded / not on disk are 404', async () => {
    const k = await db.query<{ id: number }>(
      `insert into campaigns (name, settings) values ('rec', '{"recording":{"enabled":true,"retentionDays":30}}') returning id`,
    );
    const cid = k.rows[0].id;
    const id = await call(cid, null);
    await setRecordingPath(db, id);
    const file = writeFile(id);
    const one = await get(`/api/v1/calls/${id}`);
    expect(one.status).toBe(200);
    expect(one.body.call.recording_path).toBe(`calls/call-${id}.wav`);
    expect(one.body.recording).toEqual({
      path: `calls/call-${id}.wav`,
      url: `/api/v1/calls/${id}/recording`,
      available: true,
      deletedAt: null,
    });
    const r = await fetch(`${srv.url}/api/v1/calls/${id}/recording`, { headers: { authorization: `Bearer ${READ}` } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('audio/wav');
    expect(Buffer.from(await r.arrayBuffer()).equals(fs.readFileSync(file))).toBe(true);
    // the API's token rules: none -> 401, a wrong one -> 403
    expect((await get(`/api/v1/calls/${id}/recording`, null)).status).toBe(401);
    expect((await get(`/api/v1/calls/${id}/recording`, 'wrong')).status).toBe(403);
    // a call without a recording, an unknown call, a bad id
    const plain = await call(cid, 1);
    expect((await get(`/api/v1/calls/${plain}`)).body.recording).toBeNull();
    expect((await get(`/api/v1/calls/${plain}/recording`)).status).toBe(404);
    expect((await get('/api/v1/calls/999999/recording')).status).toBe(404);
    expect((await get('/api/v1/calls/..%2F..%2Fetc%2Fpasswd/recording')).status).toBe(400);
    // recorded but the file is not there (yet)
    const later = await call(cid, null);
    await setRecordingPath(db, later);
    expect((await get(`/api/v1/calls/${later}/recording`)).status).toBe(404);
    // a row pointing outside the directory (not one of ours) is never served
    await db.query(`update calls set recording_path = '../../../etc/passwd' where id = $1`, [later]);
    expect((await get(`/api/v1/calls/${later}/recording`)).status).toBe(404);
    expect(resolveRecording(dir, 'calls/call-1.wav')).toBe(path.join(dir, 'calls', 'call-1.wav'));
    for (const bad of ['../x.wav', 'calls/../../x.wav', '/etc/passwd', 'calls/call-1.wav\0', 'calls/call-a.wav', 42])
      expect(resolveRecording(dir, bad)).toBeUndefined();
  });

  test('retention: files of calls that ended longer ago than retentionDays are deleted; 0 keeps them', async () => {
    const mkCampaign = async (settings: unknown) =>
      (
        await db.query<{ id: number }>(`insert into campaigns (name, settings) values ('r', $1::jsonb) returning id`, [
          JSON.stringify(settings),
        ])
      ).rows[0].id;
    const week = await mkCampaign({ recording: { enabled: true, retentionDays: 7 } });
    const keep = await mkCampaign({ recording: { enabled: true, retentionDays: 0 } });
    const dflt = await mkCampaign({ recording: { enabled: true } }); // 30 days
    const ids = {
      old: await call(week, 8),
      fresh: await call(week, 6),
      open: await call(week, null),
      kept: await call(keep, 400),
      dfltOld: await call(dflt, 31),
      dfltFresh: await call(dflt, 29),
      gone: await call(week, 9),
    };
    for (const [k, id] of Object.entries(ids)) {
      await setRecordingPath(db, id);
      if (k !== 'gone') writeFile(id);
    }
    const r = await sweepRecordings(db, dir);
    expect(r.deleted).toBeGreaterThanOrEqual(2);
    const exists = (id: number) => fs.existsSync(path.join(dir, recordingPathFor(id)));
    expect([ids.old, ids.dfltOld].map(exists)).toEqual([false, false]);
    expect([ids.fresh, ids.open, ids.kept, ids.dfltFresh].map(exists)).toEqual([true, true, true, true]);
    const oldRow = await get(`/api/v1/calls/${ids.old}`);
    expect(oldRow.body.recording).toMatchObject({ available: false });
    expect((await get(`/api/v1/calls/${ids.old}/recording`)).status).toBe(410);
    const goneRow = await db.query('select recording_deleted_at from calls where id = $1', [ids.gone]);
    expect(goneRow.rows[0].recording_deleted_at).not.toBeNull();
    // a second sweep has nothing left to do
    expect(await sweepRecordings(db, dir)).toEqual({ deleted: 0, missing: 0 });
  });
});
