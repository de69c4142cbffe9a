/**
 * campaign-queue's controller driven directly on PGlite: the command/reply-action dispatch and
 * the status line as functions, then a campaign run from a start command to its completion with
 * outcomes fed back, DNC and callback actions, and the control bus.
 */
import {
  CampaignQueueController,
  commandCampaignId,
  queueStatus,
  replyActionType,
} from '../../src/controllers/campaign-queue';
import { controlBus } from '../../src/events/control-bus';
import type { Db } from '../../src/store/db';
import type { DialerMsg } from '../../src/types/msg';
import { pgliteTarget, type DbTarget } from '../helpers/db';
import { makeCampaign, makeContacts, waitFor } from '../campaign/fixtures';
import { keys, recordingView } from './view';
import { STATUS_MAX } from '../../src/controllers/view';

let target: DbTarget;
let db: Db;
beforeAll(async () => {
  target = pgliteTarget();
  db = await target.open();
});
afterAll(async () => {
  await db.close();
  await target.cleanup();
});

test('dispatch helpers: reply action type, campaign id of a command, the status line', () => {
  expect(replyActionType({ reply: { text: '', done: true, action: 'add_to_dnc' as never } })).toBe('add_to_dnc');
  expect(replyActionType({ reply: { text: '', done: true, action: { type: 'schedule_callback' } } })).toBe(
    'schedule_callback',
  );
  expect(replyActionType({})).toBeUndefined();
  expect(commandCampaignId({ campaignId: 3, payload: 4 })).toBe(3);
  expect(commandCampaignId({ payload: { campaignId: 5 } })).toBe(5);
  expect(commandCampaignId({ payload: '6' })).toBe('6');
  expect(queueStatus([], undefined, keys)).toEqual({ fill: 'grey', shape: 'ring', text: 'status.idle' });
  const run = { state: 'running', inFlight: new Set([1, 2]), lastError: undefined };
  const short: typeof keys = (key, vars) => `${key.replace('status.', '')}${vars ? JSON.stringify(vars) : ''}`;
  expect(queueStatus([run] as never, undefined, short)).toEqual({
    fill: 'green',
    shape: 'dot',
    text: 'running{"n":1,"active":2}',
  });
  // fitted under the node (test/nodes/status-length.test.ts): the text in at most STATUS_MAX characters
  expect(queueStatus([{ ...run, state: 'paused', inFlight: new Set() }] as never, undefined, keys).fill).toBe('yellow');
  expect(queueStatus([{ ...run, lastError: 'x'.repeat(80) }] as never, undefined, keys).text).toHaveLength(STATUS_MAX);
});

test('a campaign run: calls out, outcomes in, DNC and callback actions, bad input refused', async () => {
  const id = await makeCampaign(db, { status: 'draft', maxAttempts: 1 });
  await makeContacts(db, id, 3);
  const view = recordingView();
  const out: { port: 0 | 1; msg: DialerMsg }[] = [];
  const ctl = new CampaignQueueController({ tickMs: '10', worker: 'w1' }, view, keys, {
    getDb: async () => db,
    send: (port, msg) => out.push({ port, msg }),
    nodeId: 'n1',
  });
  await expect(ctl.handle({ topic: 'start' })).rejects.toThrow('error.noCampaign {"topic":"start"}');
  await expect(ctl.handle({ payload: 'hello' })).rejects.toThrow('error.unknownInput');
  expect(await ctl.handle({ topic: 'Start', payload: { campaignId: id } })).toBeUndefined();
  const calls = await waitFor(
    () => {
      const c = out.filter((o) => o.port === 0);
      return c.length === 3 && c;
    },
    10_000,
    'three calls',
  );
  const [c1, c2, c3] = (calls as { msg: DialerMsg }[]).map((c) => c.msg);
  expect(c1).toMatchObject({ topic: 'call', payload: c1.call?.phone });

  // add_to_dnc before the outcome: the number is listed, nothing else happens yet
  await expect(
    ctl.handle({ call: { id: c1.call?.id }, reply: { text: '', done: true, action: { type: 'add_to_dnc' } } }),
  ).rejects.toThrow('error.dncNoPhone');
  await ctl.handle({ call: { ...c1.call }, reply: { text: '', done: true, action: { type: 'add_to_dnc' } } });
  const dnc = await db.query('select 1 from dnc where phone = $1', [c1.call?.phone]);
  expect(dnc.rows).toHaveLength(1);
  // schedule_callback needs a stored call
  await expect(
    ctl.handle({ call: { id: 'x' }, reply: { text: '', done: true, action: { type: 'schedule_callback' } } }),
  ).rejects.toThrow('error.callbackNoCall');
  const cb: DialerMsg = {
    call: { ...c2.call, outcome: 'completed' },
    reply: { text: '', done: true, action: { type: 'schedule_callback', time: 'tomorrow 10:00' } as never },
  };
  await ctl.handle(cb);
  expect(typeof cb.call?.callbackAt).toBe('string');

  for (const c of [c1, c3]) await ctl.handle({ call: { ...c.call, outcome: 'completed' } });
  const status = await ctl.handle({ topic: 'status', campaignId: id });
  expect(status).toMatchObject({ topic: 'campaign_progress', event: 'campaign_progress', campaignId: id });
  const rows = await db.query<{ phone: string; status: string; last_outcome: string }>(
    'select phone, status, last_outcome from contacts where campaign_id = $1',
    [id],
  );
  const byPhone = new Map(rows.rows.map((r) => [r.phone, r]));
  expect(byPhone.get(c1.call?.phone as string)?.status).toBe('dnc');
  expect(byPhone.get(c2.call?.phone as string)?.last_outcome).toBe('callback');
  expect(byPhone.get(c3.call?.phone as string)?.last_outcome).toBe('completed');
  expect(out.some((o) => o.port === 1 && o.msg.event === 'call_started')).toBe(true);
  await ctl.close();
});

test('supervisor commands on the control bus and auto-start; a failing command is a warning', async () => {
  const id = await makeCampaign(db, { status: 'draft' });
  await makeContacts(db, id, 1, { start: 100 });
  const view = recordingView();
  const out: DialerMsg[] = [];
  const ctl = new CampaignQueueController({ autoStart: `${id}, 999999` }, view, keys, {
    getDb: async () => db,
    send: (_p, m) => out.push(m),
    nodeId: 'n2',
  });
  await waitFor(() => out.some((m) => m.topic === 'call'), 10_000, 'the auto-started call');
  await waitFor(() => view.warnings.some((w) => w.startsWith('error.control')), 5000, 'a warning for 999999');
  controlBus.emit('campaign', { action: 'pause', campaignId: id });
  await waitFor(async () => (await ctl.control('status', id)).state === 'paused', 5000, 'paused');
  await ctl.close();
});

test('a store that cannot open: a red status and an error, and inputs fail', async () => {
  const view = recordingView();
  const ctl = new CampaignQueueController({}, view, keys, {
    getDb: () => Promise.reject(new Error('no db')),
    send: () => undefined,
    nodeId: 'n3',
  });
  await expect(ctl.handle({ call: { id: 1, outcome: 'completed' } })).rejects.toThrow('no db');
  expect(view.last()).toMatchObject({ fill: 'red', text: 'status.storeError' });
  expect(view.errors[0].text).toBe('error.store {"message":"no db"}');
  await ctl.close();
});
