/**
 * Worker thread of the events bench: N mqtt.js subscribers (QoS 1) on their own event loop, recording
 * the absolute receive time of every event by its sequence number.
 */
import { parentPort, workerData } from 'worker_threads';
import { performance } from 'perf_hooks';
import * as mqtt from 'mqtt';

interface Init {
  url: string;
  filter: string;
  subscribers: number;
  total: number;
  username?: string;
  password?: string;
}

const now = () => performance.timeOrigin + performance.now();

async function main(): Promise<void> {
  const init = workerData as Init;
  const recv: Float64Array[] = [];
  const clients: mqtt.MqttClient[] = [];
  let received = 0;
  for (let s = 0; s < init.subscribers; s++) {
    const times = new Float64Array(init.total).fill(NaN);
    recv.push(times);
    const c = mqtt.connect(init.url, {
      username: init.username,
      password: init.password,
      reconnectPeriod: 0,
      clean: true,
    });
    clients.push(c);
    c.on('message', (_t, payload) => {
      const t = now();
      const seq = JSON.parse(payload.toString()).seq as number;
      if (seq >= 0 && seq < init.total && Number.isNaN(times[seq])) {
        times[seq] = t;
        received++;
      }
    });
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => c.subscribe(init.filter, { qos: 1 }, (err) => (err ? reject(err) : resolve())));
      c.once('error', reject);
    });
  }
  parentPort!.postMessage({ ready: true });
  parentPort!.on('message', async (m: { stop?: boolean; graceMs?: number }) => {
    if (!m.stop) return;
    const deadline = Date.now() + (m.graceMs ?? 5000);
    while (received < init.total * init.subscribers && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    await Promise.all(clients.map((c) => new Promise<void>((r) => c.end(true, {}, () => r()))));
    parentPort!.postMessage(
      { recv: recv.map((a) => a.buffer) },
      recv.map((a) => a.buffer as ArrayBuffer),
    );
  });
}

main().catch((err) => parentPort!.postMessage({ error: String(err && err.message ? err.message : err) }));
