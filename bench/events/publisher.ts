/**
 * Publisher process of the events bench (forked by index.ts), one contender per process:
 *   - `bare`: the floor, an mqtt.js client publishing payloads serialised before the run (QoS 1);
 *   - `ours`: the call-broadcast node's controller (src/controllers/call-broadcast.ts) handed one msg per
 *     event, i.e. event type check, build + schema check, topic, the Publisher (src/events/publisher.ts).
 * Events are paced at `rate`/s (every 1 ms timer tick sends what the clock says is due); each send time
 * is kept by sequence number. CPU is this process's user + system time from the first event to the last
 * acknowledgement.
 */
import * as mqtt from 'mqtt';
import { PerformanceObserver } from 'perf_hooks';
import { getHeapStatistics } from 'v8';
import { CallBroadcastController } from '../../src/controllers/call-broadcast';
import { buildEvent } from '../../src/events/builders';
import { Publisher } from '../../src/events/publisher';
import { Topics } from '../../src/events/topics';
import type { DialerMsg } from '../../src/types/msg';
import { clockMs, msgFor, CALLS, type PubJob, type PubResult } from './common';

interface Contender {
  publish(seq: number): void;
  /** resolves when every event is acknowledged */
  drain(): Promise<number>;
  close(): Promise<void>;
}

async function bare(job: PubJob): Promise<Contender> {
  const topics = new Topics(job.root);
  const payloads = Array.from({ length: job.total }, (_, i) => JSON.stringify(buildEvent(msgFor(i))));
  const topicOf = Array.from({ length: CALLS }, (_, i) => topics.callEvents(`bench-${i}`));
  const client = mqtt.connect(job.url, { ...job.creds, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  let acked = 0;
  let waiter: (() => void) | undefined;
  const onAck = () => {
    if (++acked === job.total && waiter) waiter();
  };
  return {
    publish: (seq) => client.publish(topicOf[seq % CALLS], payloads[seq], { qos: 1 }, onAck),
    drain: () => (acked === job.total ? Promise.resolve(acked) : new Promise((r) => (waiter = () => r(acked)))),
    close: () => new Promise<void>((r) => client.end(true, {}, () => r())),
  };
}

async function ours(job: PubJob): Promise<Contender> {
  const msgs = Array.from({ length: job.total }, (_, i) => msgFor(i) as unknown as DialerMsg);
  const pub = new Publisher({ url: job.url, root: job.root, ...job.creds });
  if (!(await pub.whenConnected(10000))) throw new Error(`publisher could not connect to ${job.url}`);
  const view = { status: () => undefined, warn: () => undefined, log: () => undefined, error: () => undefined };
  const ctl = new CallBroadcastController(
    { eventType: 'msg' },
    view,
    (k) => k,
    () => Promise.resolve(pub),
  );
  await new Promise((r) => setImmediate(r)); // the controller takes the publisher from its promise
  let failed = 0;
  return {
    publish: (seq) => {
      ctl.handle(msgs[seq]).catch(() => failed++);
    },
    drain: async () => {
      await pub.whenIdle(60000);
      if (failed) throw new Error(`${failed} event(s) refused by the broadcast path`);
      return pub.stats().acked;
    },
    close: async () => {
      ctl.close();
      await pub.close(10000);
    },
  };
}

async function main(job: PubJob): Promise<PubResult> {
  const c = job.path === 'bare' ? await bare(job) : await ours(job);
  const sent = new Array<number>(job.total).fill(-1);
  let gcs = 0;
  const gcObs = new PerformanceObserver((list) => (gcs += list.getEntries().length));
  gcObs.observe({ entryTypes: ['gc'] });
  const heap0 = getHeapStatistics().used_heap_size;
  const cpu0 = process.cpuUsage();
  const started = clockMs();
  let seq = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(job.total, Math.floor(((clockMs() - started) / 1000) * job.rate) + 1);
      while (seq < due) {
        sent[seq] = clockMs();
        c.publish(seq++);
      }
      if (seq >= job.total) return resolve();
      setTimeout(tick, 1);
    };
    tick();
  });
  const elapsedMs = clockMs() - started;
  const acked = await c.drain();
  const cpu = process.cpuUsage(cpu0);
  const heapBytes = getHeapStatistics().used_heap_size - heap0;
  await new Promise((r) => setImmediate(r)); // GC entries are delivered asynchronously
  gcObs.disconnect();
  await c.close();
  const bytes = JSON.stringify(buildEvent(msgFor(job.total - 1))).length;
  return {
    sent,
    bytes,
    elapsedMs,
    cpuUs: cpu.user + cpu.system,
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    acked,
    heapBytes,
    gcs,
  };
}

process.once('message', (job: PubJob) => {
  main(job).then(
    (r) => process.send!(r, () => process.exit(0)),
    (err) => process.send!({ error: String(err && err.message ? err.message : err) }, () => process.exit(1)),
  );
});
