import fs from 'fs';
import os from 'os';
import path from 'path';
import helper from 'node-red-node-test-helper';
import type { Db } from '../../src/store/db';
import { controlBus } from '../../src/events/control-bus';
import { campaignControl } from '../../src/campaign/control';
import { makeCampaign, makeContacts, waitFor } from './fixtures';
import { hasPostgres, postgresTarget } from '../helpers/db';

import storeNode from '../../nodes/ai-dialer-store/ai-dialer-store';
import queueNode from '../../nodes/campaign-queue/campaign-queue';

helper.init(require.resolve('node-red'));

type AnyMsg = Record<string, any>;

const targets: Array<[string, () => Promise<{ store: AnyMsg; creds: AnyMsg; cleanup: () => Promise<void> }>]> = [
  [
    'pglite',
    async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-queue-node-'));
      return {
        store: { mode: 'embedded', dataDir: dir },
        creds: {},
        cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }),
      };
    },
  ],
];
if (hasPostgres()) {
  targets.push([
    'postgres',
    async () => {
      const t = postgresTarget(process.env.DATABASE_URL!);
      const db = await t.open(); // creates + migrates the database
      await db.close();
      return { store: { mode: 'postgres' }, creds: { s1: { url: t.options().url } }, cleanup: () => t.cleanup() };
    },
  ]);
}

describe.each(targets)('campaign-queue node in the Node-RED runtime (%s)', (_name, setup) => {
  let env: Awaited<ReturnType<(typeof targets)[0][1]>>;
  beforeAll(async () => {
    env = await setup();
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  afterEach(async () => {
    await helper.unload();
  });
  afterAll(async () => {
    await new Promise<void>((r) => helper.stopServer(() => r()));
    await env.cleanup();
  });

  const flow = (extra: AnyMsg = {}) => [
    { id: 's1', type: 'ai-dialer-store', ...env.store },
    {
      id: 'q1',
      type: 'campaign-queue',
      store: 's1',
      worker: 'node-test',
      tickMs: '5',
      wires: [['calls'], ['events']],
      ...extra,
    },
    { id: 'calls', type: 'helper' },
    { id: 'events', type: 'helper' },
  ];

  test('start by msg: emits calls with the call record, takes outcomes back, broadcasts events, completes', async () => {
    await helper.load([storeNode, queueNode], flow(), env.creds);
    const db: Db = await (helper.getNode('s1') as any).getDb();
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 2, callsPerSecond: 1000 });
    await makeContacts(db, cid, 5, { prefix: '+1720' });
    const q1 = helper.getNode('q1');
    const calls: AnyMsg[] = [];
    const events: AnyMsg[] = [];
    let open = 0;
    let maxOpen = 0;
    helper.getNode('calls').on('input', (msg: AnyMsg) => {
      calls.push(msg);
      open++;
      maxOpen = Math.max(maxOpen, open);
      // the call ends: the outcome comes back on the queue's input, as from ari-originate's outcome output
      setTimeout(() => {
        open--;
        q1.receive({ topic: 'outcome', call: { ...msg.call, outcome: 'completed', hangupCause: 16 } } as any);
      }, 5);
    });
    helper.getNode('events').on('input', (msg: AnyMsg) => events.push(msg));
    q1.receive({ topic: 'start', payload: { campaignId: cid } } as any);
    await waitFor(() => events.filter((e) => e.event === 'call_ended').length === 5, 15000, '5 ended calls');
    expect(maxOpen).toBeLessThanOrEqual(2);
    const c = calls[0].call;
    expect(c).toMatchObject({
      campaignId: cid,
      attempt: 1,
      callerId: '+12125550100',
      amdEnabled: false,
      contact: { id: c.contactId, phone: c.phone, timezone: 'America/New_York', fields: { n: expect.any(Number) } },
    });
    expect(typeof c.id).toBe('number');
    const rec = await db.query('select status, phone from calls where id = $1', [c.id]);
    expect(rec.rows[0]).toEqual({ status: 'completed', phone: c.phone });
    expect(events.filter((e) => e.event === 'call_started')).toHaveLength(5);
    const ended = events.find((e) => e.event === 'call_ended')!;
    expect(ended.call).toMatchObject({ outcome: 'completed', durationMs: expect.any(Number), campaignId: cid });
    await waitFor(
      () =>
        events.some((e) => e.event === 'campaign_progress' && e.progress.completed === 5 && e.progress.percent === 100),
      5000,
      'final progress',
    );
    await waitFor(
      async () =>
        (await db.query<{ status: string }>('select status from campaigns where id = $1', [cid])).rows[0].status ===
        'completed',
      5000,
      'completed',
    );
  });

  test('pause over the control bus, status over campaignControl, add_to_dnc, bad input is an error', async () => {
    await helper.load([storeNode, queueNode], flow(), env.creds);
    const db: Db = await (helper.getNode('s1') as any).getDb();
    const cid = await makeCampaign(db, { status: 'draft', maxConcurrent: 1, callsPerSecond: 1000 });
    await makeContacts(db, cid, 3, { prefix: '+1721' });
    const q1 = helper.getNode('q1');
    const calls: AnyMsg[] = [];
    helper.getNode('calls').on('input', (msg: AnyMsg) => calls.push(msg));
    await waitFor(
      async () => {
        try {
          return (await campaignControl.start(cid)).state === 'running';
        } catch {
          return false; // store still opening
        }
      },
      10000,
      'start via campaignControl',
    );
    await waitFor(() => calls.length === 1, 5000, 'first call');
    controlBus.emit('campaign', { campaignId: String(cid), action: 'pause' });
    await waitFor(
      async () =>
        (await db.query<{ status: string }>('select status from campaigns where id = $1', [cid])).rows[0].status ===
        'paused',
      5000,
      'paused',
    );
    // the caller asks not to be called again, then the call ends
    const call = calls[0].call;
    q1.receive({ call, reply: { text: 'Sorry to bother you.', done: true, action: { type: 'add_to_dnc' } } } as any);
    q1.receive({ call: { ...call, outcome: 'completed' } } as any);
    await waitFor(
      async () =>
        (await db.query('select 1 from dnc where phone = $1 and campaign_id is null', [call.phone])).rows.length === 1,
      5000,
      'dnc row',
    );
    const st = await campaignControl.status(cid);
    expect(st).toMatchObject({ state: 'paused', campaignId: cid });
    // bad input: done(err) so a Catch node sees it
    const errors: string[] = [];
    q1.on('call:error', (c: any) => errors.push(String(c.args[0]?.message ?? c.args[0])));
    q1.receive({ topic: 'start' } as any);
    q1.receive({ topic: 'start', payload: { campaignId: 424242 } } as any);
    q1.receive({ payload: 'hello' } as any);
    await waitFor(() => errors.length === 3, 5000, 'three errors');
    expect(errors.join('\n')).toMatch(/needs msg.payload.campaignId/);
    expect(errors.join('\n')).toMatch(/campaign 424242 does not exist/);
    expect(errors.join('\n')).toMatch(/takes msg.topic start/);
    await helper.unload();
    await expect(campaignControl.status(cid)).rejects.toThrow('no campaign-queue node is deployed');
  });
});
