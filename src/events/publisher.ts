/**
 * The event publisher: one mqtt.js connection to the embedded or an external broker.
 *
 * - Lifecycle events QoS 1; campaign progress QoS 1 retained, at most one per `progressIntervalMs` per
 *   campaign (the last value wins; a pending value is always sent at the end of the interval).
 * - `publish()` never blocks and never throws for broker trouble: while the broker is unreachable events
 *   wait in a bounded buffer (the oldest is dropped and counted when full) and are flushed in order on
 *   reconnect. Events already handed to mqtt.js when a connection drops are resent by mqtt.js first
 *   (its outgoing store), so order holds across a reconnect.
 * - `subscribe()` for the control topics (resubscribed on every reconnect).
 */
import { EventEmitter } from 'events';
import { randomBytes } from 'crypto';
import * as mqtt from 'mqtt';
import { errorMessage } from '../util/errors';
import { DialerEvent, route } from './builders';
import { Topics } from './topics';
import { eventFeed } from './feed';
import type { MqttLike } from './local-client';

export interface PublisherOptions {
  url: string;
  username?: string;
  password?: string;
  clientId?: string;
  root?: string;
  /** Events kept while the broker is unreachable. Default 10,000. */
  bufferSize?: number;
  /** Minimum interval between two progress events of one campaign. Default 250 ms (4/s). */
  progressIntervalMs?: number;
  reconnectPeriodMs?: number;
  connectTimeoutMs?: number;
  log?: (line: string) => void;
  /**
   * The connection to use instead of an mqtt.js one to `url`: the embedded broker's in-process client
   * (src/events/local-client.ts; `url` then only names the broker in logs).
   */
  client?: MqttLike;
}

export interface PublisherStats {
  connected: boolean;
  /** handed to the broker connection */
  sent: number;
  /** acknowledged by the broker (PUBACK) */
  acked: number;
  /** waiting in the offline buffer */
  buffered: number;
  /** dropped from a full buffer (oldest first) */
  dropped: number;
  /** progress events replaced by a newer one within the rate-limit interval */
  coalesced: number;
  /** sent but not yet acknowledged */
  inflight: number;
  failed: number;
}

interface Item {
  topic: string;
  payload: string;
  qos: 0 | 1;
  retain: boolean;
  /** The event (publish()): offered to the in-process feed (src/events/feed.ts) when enqueued. */
  event?: DialerEvent;
}

/** Fixed-capacity FIFO; pushing into a full one drops the oldest. */
class Ring<T> {
  private buf: (T | undefined)[];
  private head = 0;
  private len = 0;
  constructor(readonly capacity: number) {
    this.buf = new Array(capacity);
  }
  get length(): number {
    return this.len;
  }
  /** Returns true when an old item was dropped. */
  push(v: T): boolean {
    if (this.capacity === 0) return true;
    if (this.len === this.capacity) {
      this.buf[this.head] = v;
      this.head = (this.head + 1) % this.capacity;
      return true;
    }
    this.buf[(this.head + this.len) % this.capacity] = v;
    this.len++;
    return false;
  }
  peek(): T | undefined {
    return this.len ? this.buf[this.head] : undefined;
  }
  shift(): T | undefined {
    if (!this.len) return undefined;
    const v = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.len--;
    return v;
  }
}

/** mqtt.js publish options by QoS and retain (mqtt.js copies what it keeps: shared, never changed). */
const PUBLISH_OPTS: Readonly<Record<0 | 1, readonly [mqtt.IClientPublishOptions, mqtt.IClientPublishOptions]>> = {
  0: [Object.freeze({ qos: 0, retain: false }), Object.freeze({ qos: 0, retain: true })],
  1: [Object.freeze({ qos: 1, retain: false }), Object.freeze({ qos: 1, retain: true })],
};

/**
 * mqtt.js logs through `debug` ('mqttjs:client'): ~15 calls per published event, each a check of the
 * enabled namespaces. Unless DEBUG names mqtt.js (or a wildcard), the publisher hands it a no-op instead.
 */
const MQTT_DEBUG = /mqtt|\*/.test(process.env.DEBUG ?? '');
const noLog = (): void => undefined;

/** A URL without its user:password part, for logs. */
export function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//');
}

/** MQTT topic filter match (+ and # wildcards). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export class Publisher extends EventEmitter {
  readonly topics: Topics;
  readonly url: string;
  private readonly client: MqttLike;
  private readonly buffer: Ring<Item>;
  private readonly progressInterval: number;
  private readonly progress = new Map<string, { last: number; pending?: Item; timer?: NodeJS.Timeout }>();
  private readonly subs: { filter: string; handler: (topic: string, payload: Buffer) => void }[] = [];
  private readonly log: (line: string) => void;
  private counters = { sent: 0, acked: 0, dropped: 0, coalesced: 0, failed: 0 };
  private inflight = 0;
  private closed = false;
  private lastError = '';
  private idleWaiters: (() => void)[] = [];

  constructor(opts: PublisherOptions) {
    super();
    this.topics = new Topics(opts.root);
    this.url = opts.url;
    this.log = opts.log ?? (() => undefined);
    this.buffer = new Ring(opts.bufferSize ?? 10000);
    this.progressInterval = opts.progressIntervalMs ?? 250;
    this.client =
      opts.client ??
      mqtt.connect(opts.url, {
        username: opts.username || undefined,
        password: opts.password || undefined,
        clientId: opts.clientId ?? `ai-dialer-${randomBytes(6).toString('hex')}`,
        clean: true,
        reconnectPeriod: opts.reconnectPeriodMs ?? 1000,
        connectTimeout: opts.connectTimeoutMs ?? 5000,
        resubscribe: true,
        queueQoSZero: false,
        // mqtt.js stops for good after a refused CONNACK (bad credentials, not authorised) unless told
        // otherwise; a broker that restarts before its accounts are loaded must not end event delivery
        reconnectOnConnackError: true,
        // By default mqtt.js clears and re-creates its keepalive interval timer on every PUBACK (a timer, a
        // closure and two timer-list operations per event). A PINGREQ every keepalive (60 s) on a busy
        // connection costs nothing; the keepalive still detects a dead broker within 1.5 keepalives.
        reschedulePings: false,
        log: MQTT_DEBUG ? undefined : noLog,
      });
    this.client.on('connect', () => {
      // Nagle off: mqtt.js leaves it on, so while a PUBLISH waits for its TCP ACK (a broker busy fanning out
      // delays it until its PUBACK or the delayed-ACK timer) the next event's packet is held back; an event
      // leaves as one write anyway (mqtt.js corks the socket until the next tick), so nothing is split.
      const stream = this.client.stream as { setNoDelay?: (on: boolean) => unknown } | undefined;
      if (typeof stream?.setNoDelay === 'function') stream.setNoDelay(true);
      if (this.lastError)
        this.log(`MQTT: connected to ${redact(this.url)}; sending ${this.buffer.length} buffered event(s)`);
      this.lastError = '';
      this.flush();
      this.emit('state', this.stats());
    });
    let wasConnected = false;
    this.client.on('connect', () => (wasConnected = true));
    this.client.on('close', () => {
      if (wasConnected && !this.closed) {
        wasConnected = false;
        this.lastError = 'connection lost';
        this.log(`MQTT: connection to ${redact(this.url)} lost; events are buffered until it is back`);
      }
      this.emit('state', this.stats());
    });
    this.client.on('offline', () => this.emit('state', this.stats()));
    this.client.on('error', (err) => {
      const line = errorMessage(err);
      if (line !== this.lastError) this.log(`MQTT: ${redact(this.url)}: ${line}; events are buffered until it is back`);
      this.lastError = line;
      this.emit('state', this.stats());
    });
    this.client.on('message', (topic, payload) => {
      for (const s of this.subs) {
        if (!topicMatches(s.filter, topic)) continue;
        try {
          s.handler(topic, payload);
        } catch (err) {
          this.log(`MQTT: handler for ${s.filter} failed: ${errorMessage(err)}`);
        }
      }
    });
  }

  get connected(): boolean {
    return this.client.connected;
  }

  stats(): PublisherStats {
    return {
      connected: this.client.connected,
      ...this.counters,
      buffered: this.buffer.length,
      inflight: this.inflight,
    };
  }

  /**
   * Publish an event (topic, QoS and retain from the topic tree); returns its topic. Never throws for
   * broker trouble (an id that cannot be a topic level throws, before anything is queued).
   */
  publish(event: DialerEvent): string {
    if (event.type === 'campaign_progress') {
      const r = route(event, this.topics);
      const item: Item = { topic: r.topic, payload: JSON.stringify(event), qos: r.qos, retain: r.retain, event };
      this.publishProgress(String(event.campaignId), item);
      return r.topic;
    }
    // a call event (QoS 1, not retained; route()): straight to mqtt.js when nothing waits before it
    const topic = this.topics.callEvents(event.callId);
    const payload = JSON.stringify(event);
    if (this.closed || !this.client.connected || this.buffer.length > 0)
      this.enqueue({ topic, payload, qos: 1, retain: false, event });
    else {
      const feed = eventFeed();
      if (feed.listenerCount > 0) feed.publish(event, payload);
      this.counters.sent++;
      this.inflight++;
      this.client.publish(topic, payload, PUBLISH_OPTS[1][0], this.onPublished);
    }
    return topic;
  }

  /** Publish a raw payload on a topic (bench, tests, bridging). */
  publishRaw(topic: string, payload: string, qos: 0 | 1 = 1, retain = false): void {
    this.enqueue({ topic, payload, qos, retain });
  }

  private publishProgress(key: string, item: Item): void {
    const now = Date.now();
    let p = this.progress.get(key);
    if (!p) {
      p = { last: 0 };
      this.progress.set(key, p);
    }
    if (!p.timer && now - p.last >= this.progressInterval) {
      p.last = now;
      this.enqueue(item);
      return;
    }
    if (p.pending) this.counters.coalesced++;
    p.pending = item;
    if (!p.timer) {
      const entry = p;
      entry.timer = setTimeout(
        () => {
          entry.timer = undefined;
          const it = entry.pending;
          entry.pending = undefined;
          if (it) {
            entry.last = Date.now();
            this.enqueue(it);
          }
        },
        Math.max(0, p.last + this.progressInterval - now),
      );
    }
  }

  private enqueue(item: Item): void {
    if (this.closed) {
      this.counters.dropped++;
      return;
    }
    // the plain WebSocket monitor gets the same JSON now, whether or not the broker is reachable
    if (item.event) {
      const feed = eventFeed();
      // with no listener only a campaign's progress is kept (the feed's retained value)
      if (feed.listenerCount > 0 || item.event.type === 'campaign_progress') feed.publish(item.event, item.payload);
      item.event = undefined; // a buffered item keeps only its JSON
    }
    if (this.client.connected && this.buffer.length === 0) return this.send(item);
    if (this.buffer.push(item)) this.counters.dropped++;
    if (this.client.connected) this.flush();
  }

  private send(item: Item): void {
    this.counters.sent++;
    this.inflight++;
    this.client.publish(item.topic, item.payload, PUBLISH_OPTS[item.qos][item.retain ? 1 : 0], this.onPublished);
  }

  /** mqtt.js calls this once per publish (PUBACK for QoS 1, written for QoS 0): one function, no closure per event. */
  private readonly onPublished = (err?: Error): void => {
    this.inflight--;
    if (err) this.counters.failed++;
    else this.counters.acked++;
    if (this.idleWaiters.length) this.checkIdle();
  };

  private flush(): void {
    while (this.client.connected && this.buffer.length > 0) this.send(this.buffer.shift()!);
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.inflight === 0 && this.buffer.length === 0 && this.idleWaiters.length) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  /** Resolves true when nothing is buffered or unacknowledged, false after `timeoutMs`. */
  whenIdle(timeoutMs = 5000): Promise<boolean> {
    if (this.inflight === 0 && this.buffer.length === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((f) => f !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      this.idleWaiters.push(done);
    });
  }

  /** Resolves when connected (or false after timeoutMs). */
  whenConnected(timeoutMs = 5000): Promise<boolean> {
    if (this.client.connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.client.off('connect', on);
        resolve(false);
      }, timeoutMs);
      const on = () => {
        clearTimeout(t);
        resolve(true);
      };
      this.client.once('connect', on);
    });
  }

  /** Subscribe to a topic filter (QoS 1); resubscribed on reconnect. */
  subscribe(filter: string, handler: (topic: string, payload: Buffer) => void): Promise<void> {
    this.subs.push({ filter, handler });
    return new Promise((resolve) => {
      this.client.subscribe(filter, { qos: 1 }, (err) => {
        if (err) this.log(`MQTT: subscribe ${filter}: ${errorMessage(err)} (retried on reconnect)`);
        resolve();
      });
    });
  }

  /**
   * Close: send pending progress values, wait up to `drainMs` for buffered/in-flight events to be
   * acknowledged, then disconnect. Returns what was left unsent.
   */
  async close(drainMs = 2000): Promise<PublisherStats> {
    if (this.closed) return this.stats();
    for (const p of this.progress.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.timer = undefined;
      if (p.pending) this.enqueue(p.pending);
      p.pending = undefined;
    }
    if (this.client.connected) await this.whenIdle(drainMs);
    this.closed = true;
    const left = this.stats();
    await new Promise<void>((r) => this.client.end(true, {}, () => r()));
    this.emit('state', this.stats());
    return left;
  }
}
