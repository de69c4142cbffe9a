/**
 * Publisher process of the events bench (forked by index.ts), one contender per process:
 *   - `bare`: the floor, an mqtt.js client publishing payloads serialised before the run (QoS 1);
 *   - `ours`: the call-broadcast node's controller (src/controllers/call-broadcast.ts) handed one msg per
 *     event, i.e. event type check, build + schema check, topic, the Publisher (src/events/publisher.ts).
 * Events are paced at `rate`/s (every 1 ms timer tick sends what the clock says is due); each send time
 * is kept by sequence number. CPU is this process's user + system time from the first event to the last
 * acknowledgement.
 */
import { createRequire } from 'module';
import * as mqtt from 'mqtt';
import * as net from 'net';
import * as path from 'path';
import { performance, PerformanceObserver } from 'perf_hooks';
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

/** The product modules of our path: this build's, or another build's (`job.srcDir`, the `before` contender). */
function product(srcDir?: string): {
  Publisher: typeof Publisher;
  CallBroadcastController: typeof CallBroadcastController;
} {
  if (!srcDir) return { Publisher, CallBroadcastController };
  const req = createRequire(__filename);
  return {
    Publisher: (req(path.join(srcDir, 'events/publisher')) as typeof import('../../src/events/publisher')).Publisher,
    CallBroadcastController: (
      req(path.join(srcDir, 'controllers/call-broadcast')) as typeof import('../../src/controllers/call-broadcast')
    ).CallBroadcastController,
  };
}

async function ours(job: PubJob): Promise<Contender> {
  const { Publisher, CallBroadcastController } = product(job.srcDir);
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

/**
 * BENCH_EVENTS_WIRE=1: the time each event's PUBLISH is handed to the kernel (the socket write that carries
 * its fixed header, QoS 1: 0x32, which mqtt-packet writes as a chunk of its own), in order, for the
 * publisher's own share of the latency (time to the wire, by second). Same hook for every contender.
 */
const wire: number[] = [];
if (process.env.BENCH_EVENTS_WIRE) {
  type Chunk = { chunk: Buffer | string };
  const proto = net.Socket.prototype as unknown as {
    _writev: (chunks: Chunk[], cb: (err?: Error) => void) => void;
    _write: (chunk: Buffer, enc: string, cb: (err?: Error) => void) => void;
  };
  const isHeader = (b: Buffer | string) => typeof b !== 'string' && b.length === 1 && b[0] === 0x32;
  const writev = proto._writev;
  proto._writev = function (this: unknown, chunks, cb) {
    const t = clockMs();
    for (const c of chunks) if (isHeader(c.chunk)) wire.push(t);
    return writev.call(this, chunks, cb);
  };
  const write = proto._write;
  proto._write = function (this: unknown, chunk, enc, cb) {
    if (isHeader(chunk)) wire.push(clockMs());
    return write.call(this, chunk, enc, cb);
  };
}

async function main(job: PubJob): Promise<PubResult> {
  const c = job.path === 'bare' ? await bare(job) : await ours(job);
  const sent = new Array<number>(job.total).fill(-1);
  // per second of the window (by send time): the process's CPU, the time inside publish() (sum and longest
  // call) and the garbage collections (count, pause ms): where the first second differs from the rest
  const secs = Math.ceil(job.total / job.rate);
  const perSecond = Array.from({ length: secs }, () => ({ cpuUs: 0, publishMs: 0, longestMs: 0, gcs: 0, gcMs: 0 }));
  let gcs = 0;
  let t0 = 0; // performance.now() at the first event
  const gcObs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcs++;
      const sec = Math.floor((e.startTime - t0) / 1000);
      if (sec >= 0 && sec < secs) {
        perSecond[sec].gcs++;
        perSecond[sec].gcMs += e.duration;
      }
      if (process.env.BENCH_EVENTS_GC_TRACE)
        console.error(
          `gc at ${(e.startTime - t0).toFixed(1)} ms of the window: ${(e as unknown as { detail?: { kind?: number } }).detail?.kind} ${e.duration.toFixed(1)} ms`,
        );
    }
  });
  gcObs.observe({ entryTypes: ['gc'] });
  // The run's inputs (bare: the payloads; ours: the msgs) are made before the window, and so is the
  // garbage of loading and connecting: a full collection now (index.ts starts every publisher process with
  // --expose-gc) so that neither contender's window pays for collecting or promoting them. Without it, a
  // scavenge promoting ours' 6,000 pre-built msgs (25-37 ms) or the start's mark-compact of either (10-48 ms)
  // landed in the first second of the window, depending on how long each took to build its inputs.
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) gc();
  const heap0 = getHeapStatistics().used_heap_size;
  const cpu0 = process.cpuUsage();
  const started = clockMs();
  t0 = performance.now();
  if (process.env.BENCH_EVENTS_GC_TRACE) console.error(`window starts at ${t0.toFixed(0)} ms`);
  let seq = 0;
  let cpuSec = process.cpuUsage();
  let sec = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(job.total, Math.floor(((clockMs() - started) / 1000) * job.rate) + 1);
      while (seq < due) {
        const s = Math.floor(seq / job.rate);
        if (s !== sec) {
          const c1 = process.cpuUsage(cpuSec);
          perSecond[sec].cpuUs = c1.user + c1.system;
          cpuSec = process.cpuUsage();
          sec = s;
        }
        const t = clockMs();
        sent[seq] = t;
        c.publish(seq++);
        const d = clockMs() - t;
        perSecond[s].publishMs += d;
        if (d > perSecond[s].longestMs) perSecond[s].longestMs = d;
      }
      if (seq >= job.total) {
        const c1 = process.cpuUsage(cpuSec);
        perSecond[sec].cpuUs = c1.user + c1.system;
        return resolve();
      }
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
    perSecond,
    toWire: wire.length ? toWire(sent, wire, job.rate) : undefined,
  };
}

/** p50 / p99 / max ms from send to the socket write, by second (wire times in event order). */
function toWire(sent: number[], at: number[], rate: number): { p50: number; p99: number; max: number }[] {
  const out: { p50: number; p99: number; max: number }[] = [];
  for (let from = 0; from < sent.length; from += rate) {
    const d: number[] = [];
    for (let i = from; i < Math.min(sent.length, from + rate); i++) if (at[i] !== undefined) d.push(at[i] - sent[i]);
    d.sort((a, b) => a - b);
    const q = (p: number) => d[Math.min(d.length - 1, Math.floor(p * d.length))];
    out.push({ p50: q(0.5), p99: q(0.99), max: d[d.length - 1] });
  }
  return out;
}

process.once('message', (job: PubJob) => {
  main(job).then(
    (r) => process.send!(r, () => process.exit(0)),
    (err) => process.send!({ error: String(err && err.message ? err.message : err) }, () => process.exit(1)),
  );
});
