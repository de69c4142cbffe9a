/**
 * The embedded bus's publisher reaches its broker in-process (src/events/local-client.ts): no MQTT
 * connection of its own, the same delivery as over TCP (QoS 1 events, retained progress, controls from a
 * writer), and a clear failure once the broker is gone. Real aedes and real mqtt.js clients.
 */
import { acquireBus } from '../../src/events/bus';
import { EmbeddedBroker } from '../../src/events/broker';
import { buildEvent } from '../../src/events/builders';
import { LocalClient } from '../../src/events/local-client';
import { controlBus, type CampaignControl } from '../../src/events/control-bus';
import { connect, end, runId, subscribe, waitFor } from './mqtt-helpers';

const writer = { username: 'sup-local', password: 'sup-local-secret', role: 'writer' as const };
const reader = { username: 'dash-local', password: 'dash-local-secret', role: 'reader' as const };

describe("the embedded bus's publisher, in-process", () => {
  test("opens no MQTT connection; a dashboard gets its events, retained progress and all, and a writer's control reaches it", async () => {
    const bus = await acquireBus({ mode: 'embedded', port: 0, accounts: [writer, reader] }, {});
    const campaigns: CampaignControl[] = [];
    const onCampaign = (c: CampaignControl) => campaigns.push(c);
    controlBus.on('campaign', onCampaign);
    const broker = bus.broker!;
    const dash = await connect(broker.url, reader);
    let sup;
    try {
      expect(await bus.publisher.whenConnected(2000)).toBe(true);
      await bus.controlsReady;
      // the dashboard is the broker's only client: the publisher has no socket to it
      expect(broker.aedes.connectedClients).toBe(1);
      const got: Array<{ topic: string; type: string; retain: boolean }> = [];
      dash.on('message', (topic, p, packet) =>
        got.push({ topic, type: JSON.parse(p.toString()).type, retain: packet.retain }),
      );
      await subscribe(dash, 'ai-dialer/v1/#');
      const callId = `${runId}-local`;
      bus.publisher.publish(
        buildEvent({ event: 'call_started', call: { id: callId, campaignId: 7, phone: '+15550000001' } }),
      );
      bus.publisher.publish(
        buildEvent({ event: 'call_answered', call: { id: callId, campaignId: 7, phone: '+15550000001' } }),
      );
      bus.publisher.publish(
        buildEvent({ event: 'campaign_progress', progress: { campaignId: 7, queued: 2, completed: 1 } }),
      );
      await waitFor(() => got.length === 3, 'three events');
      expect(got.map((g) => g.type)).toEqual(['call_started', 'call_answered', 'campaign_progress']);
      expect(got[0].topic).toBe(`ai-dialer/v1/calls/${callId}/events`);
      expect(await bus.publisher.whenIdle(2000)).toBe(true);
      expect(bus.publisher.stats()).toMatchObject({ sent: 3, acked: 3, failed: 0, inflight: 0, buffered: 0 });
      // retained: a dashboard that subscribes later still gets the campaign's progress
      const late = await connect(broker.url, reader);
      const retained: string[] = [];
      late.on('message', (topic, _p, packet) => packet.retain && retained.push(topic));
      await subscribe(late, 'ai-dialer/v1/campaigns/+/status');
      await waitFor(() => retained.length === 1, 'retained progress');
      expect(retained).toEqual(['ai-dialer/v1/campaigns/7/status']);
      await end(late);
      // a writer's control reaches the publisher's subscription
      sup = await connect(broker.url, writer);
      await sup.publishAsync('ai-dialer/v1/campaigns/7/control', '{"action":"pause"}', { qos: 1 });
      await waitFor(() => campaigns.length === 1, 'control');
      expect(campaigns).toEqual([{ campaignId: '7', action: 'pause' }]);
    } finally {
      controlBus.off('campaign', onCampaign);
      await end(sup);
      await end(dash);
      await bus.release();
    }
  });

  test('a closed broker: the client says so (close event, not connected) and a publish fails instead of hanging', async () => {
    const broker = await EmbeddedBroker.start({ port: 0 });
    const c = broker.localClient();
    await new Promise((r) => c.once('connect', r));
    expect(c.connected).toBe(true);
    let closed = 0;
    c.on('close', () => closed++);
    await broker.close();
    await waitFor(() => closed === 1, 'close event');
    expect(c.connected).toBe(false);
    const err = await new Promise<Error | undefined>((r) => c.publish('x/y', '{}', { qos: 1 }, r));
    expect(err?.message).toMatch(/embedded broker is closed/);
    await new Promise<void>((r) => c.end(true, {}, r));
    expect(closed).toBe(1); // ending after the broker closed says nothing more
  });

  test('end() removes its subscriptions: nothing is delivered after it, and a second end() is harmless', async () => {
    const broker = await EmbeddedBroker.start({ port: 0 });
    try {
      const c = new LocalClient(broker.aedes as never);
      await new Promise((r) => c.once('connect', r));
      const got: string[] = [];
      c.on('message', (topic: string, payload: Buffer) => got.push(`${topic}=${payload.toString()}`));
      await new Promise<void>((r) => c.subscribe('t/#', { qos: 1 }, () => r()));
      const other = broker.localClient();
      await new Promise((r) => other.once('connect', r));
      await new Promise((r) => other.publish('t/1', 'one', { qos: 1 }, r));
      await waitFor(() => got.length === 1, 'first message');
      let ended = 0;
      c.on('close', () => ended++);
      await new Promise<void>((r) => c.end(true, {}, r));
      expect(c.connected).toBe(false);
      expect(ended).toBe(1);
      await new Promise((r) => other.publish('t/2', 'two', { qos: 1 }, r));
      // the publish above has been routed to every subscriber when its callback runs
      expect(got).toEqual(['t/1=one']);
      await new Promise<void>((r) => c.end(true, {}, r));
      expect(ended).toBe(1);
      await new Promise<void>((r) => other.end(true, {}, r));
    } finally {
      await broker.close();
    }
  });
});
