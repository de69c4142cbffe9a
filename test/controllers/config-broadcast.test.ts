/**
 * The config nodes' handles (event bus, store) and call-broadcast's controller driven directly:
 * an embedded broker on port 0 (read back) with a real MQTT subscriber, PGlite in a temp directory.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import type * as mqtt from 'mqtt';
import { BusController, StoreController } from '../../src/controllers/config-nodes';
import { CallBroadcastController } from '../../src/controllers/call-broadcast';
import { readHealthProbes } from '../../src/health/probes';
import { connect, end, runId, subscribe, waitFor } from '../events/mqtt-helpers';
import { keys, recordingView } from './view';

describe('event bus and call-broadcast', () => {
  let bus: BusController;
  let sub: mqtt.MqttClient | undefined;
  const got: { topic: string; body: Record<string, unknown> }[] = [];
  const root = `ai-dialer-${runId}`;

  beforeAll(async () => {
    bus = new BusController(
      { mode: 'embedded', port: '0', root, ws: false },
      'events:ctl-test',
      recordingView(),
      keys,
      undefined,
      {},
    );
    const handle = await bus.getBus();
    sub = await connect(`mqtt://127.0.0.1:${handle.broker!.port}`); // port 0: bound and read back
    sub.on('message', (topic, payload) => got.push({ topic, body: JSON.parse(payload.toString()) }));
    await subscribe(sub, `${root}/#`);
  });
  afterAll(async () => {
    await end(sub);
    await bus.close();
  });

  test('a call event is published under the call topic; msg.broadcast says where; the probe counts it', async () => {
    const view = recordingView();
    const ctl = new CallBroadcastController({}, view, keys, () => bus.getPublisher());
    const msg = await ctl.handle({ event: 'call_started', call: { id: 77, phone: '+15550100', campaignId: 3 } });
    expect(msg.broadcast).toEqual({ type: 'call_started', topic: expect.stringContaining('77') });
    await waitFor(() => got.some((g) => g.body.type === 'call_started' && g.body.callId === 77), 'the event');
    expect(got.find((g) => g.body.type === 'call_started')?.topic).toBe((msg.broadcast as { topic: string }).topic);
    expect(readHealthProbes()['events:ctl-test']).toMatchObject({ dropped: 0 });
    await waitFor(() => view.statuses.some((s) => s.fill === 'green'), 'a connected status');
    ctl.close();
  });

  test('hostile or wrong input is refused before anything is published', async () => {
    const ctl = new CallBroadcastController({ eventType: 'msg' }, recordingView(), keys, () => bus.getPublisher());
    await expect(ctl.handle({ event: 'drop_tables' })).rejects.toMatchObject({ code: 'event_invalid' });
    await expect(ctl.handle({ event: 'call_started', call: { id: '1/#' } })).rejects.toThrow();
    await expect(ctl.handle({ event: 'call_started' })).rejects.toThrow(/msg.call/);
    const fixed = new CallBroadcastController({ eventType: 'call_ended' }, recordingView(), keys, () =>
      bus.getPublisher(),
    );
    const m = await fixed.handle({ event: 'ignored', call: { id: 78, outcome: 'busy', durationMs: 1200 } });
    expect(m.broadcast).toMatchObject({ type: 'call_ended' });
    ctl.close();
    fixed.close();
  });

  test('no bus configured: a red status and a not_configured failure', async () => {
    const view = recordingView();
    const ctl = new CallBroadcastController({}, view, keys);
    expect(view.last()).toEqual({ fill: 'red', shape: 'ring', text: 'status.noBus' });
    await expect(ctl.handle({ event: 'call_started', call: { id: 1 } })).rejects.toMatchObject({
      code: 'not_configured',
    });
  });

  test('a closed bus refuses new users; an external bus without a URL is one clear error', async () => {
    const b = new BusController({ mode: 'external' }, 'events:ctl-ext', recordingView(), keys, undefined, {});
    await expect(b.getBus()).rejects.toThrow(/no URL given/);
    await b.close();
    await expect(b.getBus()).rejects.toThrow('event bus is closing');
  });
});

describe('store handle', () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-ctl-store-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('embedded in a directory: one shared, migrated database; released on close', async () => {
    const view = recordingView();
    const s = new StoreController({ mode: 'embedded', dataDir: dir }, view, keys, {});
    expect(s.description).toBe(`embedded (${path.resolve(dir)})`);
    const [a, b] = await Promise.all([s.getDb(), s.getDb()]);
    expect(a).toBe(b);
    const r = await a.query<{ n: number }>('select count(*)::int as n from calls');
    expect(r.rows[0].n).toBe(0);
    await s.close();
    expect(view.warnings).toEqual([]);
  });

  test('"from environment" follows the runtime\'s data directory; PostgreSQL without a URL is a configuration error', async () => {
    const env = new StoreController({ mode: 'env' }, recordingView(), keys, { DATA_DIR: dir });
    expect(env.description).toBe(`embedded (${path.join(path.resolve(dir), 'db')})`);
    const view = recordingView();
    const pg = new StoreController({ mode: 'postgres' }, view, keys, {});
    expect(pg.description).toBe('not configured');
    expect(view.errors[0].text).toMatch(/needs a connection URL/);
    await expect(pg.getDb()).rejects.toThrow(/needs a connection URL/);
    await pg.close();
  });
});
