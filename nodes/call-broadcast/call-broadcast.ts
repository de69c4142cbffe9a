import type { NodeAPI, Node, NodeDef, NodeMessageInFlow } from 'node-red';
import { buildEvent, route } from '../../src/events/builders';
import type { Publisher, PublisherStats } from '../../src/events/publisher';
import { isEventType } from '../../src/events/schema';
import { DialerError, errorMessage } from '../../src/util/errors';

interface BroadcastDef extends NodeDef {
  bus: string;
  eventType: string; // '' = from msg.event
}
interface BusNode extends Node {
  getPublisher(): Promise<Publisher>;
}

export = function (RED: NodeAPI): void {
  function CallBroadcast(this: Node, config: BroadcastDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const bus = RED.nodes.getNode(config.bus) as BusNode | null;
    const fixedType = config.eventType && config.eventType !== 'msg' ? config.eventType : undefined;
    let publisher: Publisher | undefined;
    let statusTimer: NodeJS.Timeout | undefined;
    let lastStatus = '';
    /** Localised text, or the English fallback when the catalog is not loaded (e.g. under a test helper). */
    const t = (key: string, vars: Record<string, unknown>, fallback: string): string => {
      const full = `call-broadcast.${key}`;
      const out = RED._(full, vars as Record<string, string>);
      return out && out !== full ? out : fallback;
    };

    const showStatus = (s: PublisherStats) => {
      let st: { fill: 'green' | 'yellow' | 'red'; shape: 'dot' | 'ring'; text: string };
      if (s.connected && s.buffered === 0)
        st = {
          fill: 'green',
          shape: 'dot',
          text: t('status.connected', { sent: s.sent }, `connected · ${s.sent} sent`),
        };
      else
        st = {
          fill: 'yellow',
          shape: 'ring',
          text: t(
            'status.buffering',
            { buffered: s.buffered, dropped: s.dropped },
            `broker down · ${s.buffered} buffered, ${s.dropped} dropped`,
          ),
        };
      const key = JSON.stringify(st);
      if (key !== lastStatus) {
        lastStatus = key;
        node.status(st);
      }
    };
    // At most a few status updates per second, however many events flow.
    const scheduleStatus = () => {
      if (statusTimer || !publisher) return;
      statusTimer = setTimeout(() => {
        statusTimer = undefined;
        if (publisher) showStatus(publisher.stats());
      }, 250);
    };
    const onState = (s: PublisherStats) => showStatus(s);

    if (!bus) {
      node.status({ fill: 'red', shape: 'ring', text: t('status.noBus', {}, 'no event bus') });
    } else {
      bus.getPublisher().then(
        (p) => {
          publisher = p;
          p.on('state', onState);
          showStatus(p.stats());
        },
        (err) => node.status({ fill: 'red', shape: 'ring', text: errorMessage(err).slice(0, 60) }),
      );
    }

    node.on('input', (msg: NodeMessageInFlow & Record<string, any>, send, done) => {
      if (!bus)
        return done(
          new DialerError('not_configured', 'broadcast: no event bus configured (choose an ai-dialer-bus config node)'),
        );
      const type = fixedType ?? msg.event;
      if (!isEventType(type)) {
        return done(
          new DialerError(
            'event_invalid',
            `broadcast: msg.event is ${JSON.stringify(type)}; set it to call_started, call_answered, status, conversation_turn, call_ended or campaign_progress (or pick a fixed event in the node)`,
          ),
        );
      }
      let event;
      try {
        event = buildEvent(msg, type);
        route(event); // the ids must make a valid topic
      } catch (err) {
        return done(err as Error);
      }
      const publish = (p: Publisher) => {
        p.publish(event); // queued or buffered: never waits for the broker
        msg.broadcast = { type: event.type, topic: route(event, p.topics).topic };
        scheduleStatus();
        send(msg);
        done();
      };
      if (publisher) return publish(publisher);
      bus.getPublisher().then(publish, (err) => done(err instanceof Error ? err : new Error(String(err))));
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      if (statusTimer) clearTimeout(statusTimer);
      statusTimer = undefined;
      publisher?.off('state', onState);
      publisher = undefined;
      done();
    });
  }
  RED.nodes.registerType('call-broadcast', CallBroadcast as unknown as Parameters<NodeAPI['nodes']['registerType']>[1]);
};
