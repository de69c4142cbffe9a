/** Small helpers for the events tests: real mqtt.js clients, waiting on conditions with a deadline. */
import * as mqtt from 'mqtt';
import { randomBytes } from 'crypto';
import { waitFor as pollUntil } from '../helpers/wait';

export const runId = `t${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;

/** Poll `cond` until true; throws with `what` after `ms`. */
export async function waitFor(cond: () => boolean, what: string, ms = 10000): Promise<void> {
  await pollUntil(() => cond() || undefined, ms, what, 10);
}

/** Connect a client; resolves on CONNACK success, rejects with the broker's refusal. */
export function connect(url: string, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    c.once('connect', () => resolve(c));
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
  });
}

export function subscribe(c: mqtt.MqttClient, filter: string, qos: 0 | 1 = 1): Promise<mqtt.ISubscriptionGrant[]> {
  return new Promise((resolve, reject) =>
    c.subscribe(filter, { qos }, (err, granted) => (err ? reject(err) : resolve(granted ?? []))),
  );
}

export function end(c: mqtt.MqttClient | undefined): Promise<void> {
  return new Promise((r) => (c ? c.end(true, {}, () => r()) : r()));
}

/** True when Mosquitto (or any broker) accepts anonymous MQTT at 127.0.0.1:1883. */
export async function mosquittoUp(): Promise<boolean> {
  try {
    const c = await connect('mqtt://127.0.0.1:1883', { connectTimeout: 2000 });
    await end(c);
    return true;
  } catch {
    return false;
  }
}
