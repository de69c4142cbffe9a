/**
 * The publisher's connection to the embedded broker of its own process: events go into aedes by a function
 * call (`aedes.publish`), and control messages come back through an aedes subscription, with no MQTT
 * encoding, socket, parse or PUBACK in between. It offers the part of mqtt.js's client the publisher uses
 * (`MqttLike`), with the same meaning: `connected`, `connect` / `close` events, `publish` calling back once
 * the broker has taken the packet (for QoS 1: stored and routed to its subscribers, as a PUBACK says),
 * `subscribe`, `end`. No Node-RED import.
 *
 * What the broker enforces on its clients (accounts, the topic ACL) is for connections from outside; this
 * is the process's own writer, which may publish and subscribe anywhere, as its internal account may.
 */
import { EventEmitter } from 'events';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the listeners of either client take any arguments
type Listener = (...args: any[]) => void;

/** The part of mqtt.js's MqttClient the publisher uses. */
export interface MqttLike {
  readonly connected: boolean;
  readonly stream?: unknown;
  on(event: string, listener: Listener): unknown;
  once(event: string, listener: Listener): unknown;
  off(event: string, listener: Listener): unknown;
  publish(
    topic: string,
    payload: string,
    opts: { qos?: 0 | 1 | 2; retain?: boolean },
    cb?: (err?: Error) => void,
  ): unknown;
  subscribe(filter: string, opts: { qos: 0 | 1 | 2 }, cb?: (err: Error | null) => void): unknown;
  end(force?: boolean, opts?: object, cb?: () => void): unknown;
}

interface LocalPacket {
  topic: string;
  payload: Buffer | string;
}

/** What of aedes this needs (its instance type, structurally). */
export interface LocalBroker {
  readonly closed: boolean;
  publish(
    packet: { cmd: 'publish'; topic: string; payload: Buffer; qos: 0 | 1 | 2; retain: boolean; dup: boolean },
    done: (err?: Error) => void,
  ): void;
  subscribe(topic: string, deliver: (packet: LocalPacket, cb: () => void) => void, done: () => void): void;
  unsubscribe(topic: string, deliver: (packet: LocalPacket, cb: () => void) => void, done: () => void): void;
  once(event: 'closed', listener: () => void): unknown;
  off?(event: 'closed', listener: () => void): unknown;
}

type Deliver = (packet: LocalPacket, cb: () => void) => void;

export class LocalClient extends EventEmitter implements MqttLike {
  private _connected = false;
  private ended = false;
  private readonly subs: Array<{ filter: string; deliver: Deliver }> = [];
  private readonly onBrokerClosed = (): void => {
    if (this.ended) return;
    this._connected = false;
    this.emit('close');
  };

  constructor(private readonly broker: LocalBroker) {
    super();
    broker.once('closed', this.onBrokerClosed);
    // connected on the next turn, as a network client is: listeners set up after construction see `connect`
    setImmediate(() => {
      if (this.ended || this.broker.closed) return;
      this._connected = true;
      this.emit('connect', { cmd: 'connack', returnCode: 0 });
    });
  }

  get connected(): boolean {
    return this._connected && !this.broker.closed;
  }

  publish(
    topic: string,
    payload: string,
    opts: { qos?: 0 | 1 | 2; retain?: boolean },
    cb?: (err?: Error) => void,
  ): this {
    if (!this.connected) {
      cb?.(new Error('the embedded broker is closed'));
      return this;
    }
    const packet = {
      cmd: 'publish' as const,
      topic,
      payload: Buffer.from(payload, 'utf8'),
      qos: opts.qos ?? 0,
      retain: opts.retain === true,
      dup: false,
    };
    this.broker.publish(packet, (err) => cb?.(err ?? undefined));
    return this;
  }

  subscribe(filter: string, _opts: { qos: 0 | 1 | 2 }, cb?: (err: Error | null) => void): this {
    const deliver: Deliver = (packet, done) => {
      const body = typeof packet.payload === 'string' ? Buffer.from(packet.payload, 'utf8') : packet.payload;
      try {
        this.emit('message', packet.topic, body, packet);
      } finally {
        done();
      }
    };
    this.subs.push({ filter, deliver });
    this.broker.subscribe(filter, deliver, () => cb?.(null));
    return this;
  }

  end(_force?: boolean, _opts?: object, cb?: () => void): this {
    if (this.ended) {
      cb?.();
      return this;
    }
    this.ended = true;
    this.broker.off?.('closed', this.onBrokerClosed);
    const subs = this.subs.splice(0);
    const wasConnected = this._connected;
    this._connected = false;
    let left = subs.length;
    const finish = (): void => {
      if (wasConnected) this.emit('close');
      this.emit('end');
      cb?.();
    };
    if (!left || this.broker.closed) {
      finish();
      return this;
    }
    for (const s of subs)
      this.broker.unsubscribe(s.filter, s.deliver, () => {
        if (--left === 0) finish();
      });
    return this;
  }
}
