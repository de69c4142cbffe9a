/**
 * call-broadcast: msg -> a schema-checked event published to MQTT (never waits for the broker);
 * the status shows the publisher's connection, sent, buffered and dropped counts.
 */
import { buildEvent } from '../events/builders';
import type { Publisher, PublisherStats } from '../events/publisher';
import { isEventType } from '../events/schema';
import { DialerError, errorMessage } from '../util/errors';
import type { Translate } from '../util/i18n';
import type { DialerMsg } from '../types/msg';
import { status, throttled, type NodeView } from './view';

export interface CallBroadcastConfig {
  /** '' or 'msg': from msg.event */
  eventType?: string;
}

export class CallBroadcastController {
  private publisher?: Publisher;
  private lastStatus = '';
  private readonly fixedType?: string;
  private readonly scheduleStatus = throttled(() => {
    if (this.publisher) this.showStatus(this.publisher.stats());
  });
  private readonly onState = (s: PublisherStats): void => this.showStatus(s);

  constructor(
    cfg: CallBroadcastConfig,
    private readonly view: NodeView,
    private readonly t: Translate,
    /** The bus config node's publisher; undefined when no bus is configured. */
    private readonly getPublisher?: () => Promise<Publisher>,
  ) {
    this.fixedType = cfg.eventType && cfg.eventType !== 'msg' ? cfg.eventType : undefined;
    if (!getPublisher) {
      view.status(status.error(t('status.noBus')));
      return;
    }
    getPublisher().then(
      (p) => {
        this.publisher = p;
        p.on('state', this.onState);
        this.showStatus(p.stats());
      },
      (err) => view.status(status.error(errorMessage(err).slice(0, 60))),
    );
  }

  async handle(msg: DialerMsg): Promise<DialerMsg> {
    if (!this.getPublisher)
      throw new DialerError(
        'not_configured',
        'broadcast: no event bus configured (choose an ai-dialer-bus config node)',
      );
    const type = this.fixedType ?? msg.event;
    if (!isEventType(type)) {
      throw new DialerError(
        'event_invalid',
        `broadcast: msg.event is ${JSON.stringify(type)}; set it to call_started, call_answered, status, conversation_turn, call_ended or campaign_progress (or pick a fixed event in the node)`,
      );
    }
    const event = buildEvent(msg, type);
    const p = this.publisher ?? (await this.getPublisher());
    // queued or buffered: never waits for the broker; throws (nothing queued) for an id that cannot be a topic level
    const topic = p.publish(event);
    msg.broadcast = { type: event.type, topic };
    this.scheduleStatus();
    return msg;
  }

  close(): void {
    this.scheduleStatus.cancel();
    this.publisher?.off('state', this.onState);
    this.publisher = undefined;
  }

  private showStatus(s: PublisherStats): void {
    const st =
      s.connected && s.buffered === 0
        ? status.ok(this.t('status.connected', { sent: s.sent }))
        : status.warn(this.t('status.buffering', { buffered: s.buffered, dropped: s.dropped }));
    const key = JSON.stringify(st);
    if (key !== this.lastStatus) {
      this.lastStatus = key;
      this.view.status(st);
    }
  }
}
