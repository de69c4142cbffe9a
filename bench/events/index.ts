/**
 * Events bench: publish-to-subscriber latency at 1,000 events/s of ~300 B JSON, QoS 1, 20 subscribers,
 * 10 s per case (4 rounds of 2.5 s in alternating order, samples pooled), side by side:
 *   - bare aedes (no auth hooks, raw mqtt.js publisher, pre-serialised payloads)
 *   - aedes through our path (EmbeddedBroker with accounts + ACL, builder + schema check + Publisher)
 *   - bare Mosquitto at 127.0.0.1:1883 (raw mqtt.js publisher)
 *   - Mosquitto through our path (builder + schema check + Publisher)
 * Subscribers run in a worker thread (own event loop); latency = receive time - time the event was
 * handed to the publishing code. Nothing lost = every subscriber got every event.
 *
 * Run alone: `node dist/bench/events/index.js` (EVENTS_BENCH_SECONDS, EVENTS_BENCH_RATE to change).
 */
import { createRequire } from 'module';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';
import { performance } from 'perf_hooks';
import { randomBytes } from 'crypto';
import * as mqtt from 'mqtt';
import { EmbeddedBroker } from '../../src/events/broker';
import { buildEvent, route } from '../../src/events/builders';
import { Publisher } from '../../src/events/publisher';
import { Topics } from '../../src/events/topics';

type Row = Record<string, string | number>;

const SUBSCRIBERS = 20;
const RATE = Number(process.env.EVENTS_BENCH_RATE || 1000);
const SECONDS = Number(process.env.EVENTS_BENCH_SECONDS || 10);
const CALLS = 100;
const now = () => performance.timeOrigin + performance.now();

/** The msg a turn event is built from; text sized so the JSON payload is ~300 bytes. */
function msgFor(seq: number, root: string) {
  void root;
  return {
    event: 'conversation_turn',
    call: { id: `bench-${seq % CALLS}`, campaignId: 1, contactId: 1000 + (seq % CALLS), phone: '+15551234567' },
    turn: {
      seq,
      userText: 'Tuesday works.',
      botText: 'Booked: Tuesday 3 pm.',
      confidence: 0.93,
      timing: { recordMs: 2140, sttMs: 181, llmMs: 412, ttsMs: 95, playbackMs: 3120 },
    },
  };
}

interface Case {
  name: string;
  broker: 'aedes' | 'mosquitto';
  path: 'bare' | 'ours';
}

interface Result {
  p50: number;
  p99: number;
  max: number;
  sent: number;
  delivered: number;
  lost: number;
  bytes: number;
  achievedRate: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function mosquittoUp(): Promise<boolean> {
  return new Promise((resolve) => {
    const c = mqtt.connect('mqtt://127.0.0.1:1883', { reconnectPeriod: 0, connectTimeout: 2000 });
    c.once('connect', () => c.end(true, {}, () => resolve(true)));
    c.once('error', () => {
      c.end(true);
      resolve(false);
    });
  });
}

/** A bare aedes on a free port: no authentication or ACL hooks. */
async function bareAedes(): Promise<{ url: string; close: () => Promise<void> }> {
  // aedes is an ES module: Node's own require loads it (as src/events/broker.ts does)
  const { Aedes } = createRequire(__filename)('aedes') as typeof import('aedes');
  const aedes = await Aedes.createBroker();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    aedes.handle(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    close: async () => {
      await new Promise<void>((r) => aedes.close(() => r()));
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function runCase(c: Case, seconds = SECONDS): Promise<Raw> {
  const total = Math.round(RATE * seconds);
  const root = `ai-dialer-bench/${randomBytes(4).toString('hex')}`;
  const topics = new Topics(root);
  let url: string;
  let closeBroker: () => Promise<void> = async () => undefined;
  let sub: { username?: string; password?: string } = {};
  let pubCreds: { username?: string; password?: string } = {};
  if (c.broker === 'aedes') {
    if (c.path === 'bare') {
      const b = await bareAedes();
      url = b.url;
      closeBroker = b.close;
    } else {
      const b = await EmbeddedBroker.start({
        port: 0,
        root,
        accounts: [
          { username: 'bench-w', password: 'bench-w', role: 'writer' },
          { username: 'bench-r', password: 'bench-r', role: 'reader' },
        ],
      });
      url = b.url;
      closeBroker = () => b.close();
      sub = { username: 'bench-r', password: 'bench-r' };
      pubCreds = { username: 'bench-w', password: 'bench-w' };
    }
  } else {
    url = 'mqtt://127.0.0.1:1883';
  }

  const workerFile = path.join(__dirname, `subscribers${path.extname(__filename)}`);
  const worker = new Worker(workerFile, {
    workerData: { url, filter: topics.allCallEvents, subscribers: SUBSCRIBERS, total, ...sub },
  });
  const fromWorker = <T>(): Promise<T> =>
    new Promise((resolve, reject) => {
      worker.once('message', (m) => (m.error ? reject(new Error(m.error)) : resolve(m)));
      worker.once('error', reject);
    });
  await fromWorker<{ ready: boolean }>();

  const sent = new Float64Array(total).fill(NaN);
  let bytes = 0;
  let publish: (seq: number) => void;
  let finish: () => Promise<void>;
  if (c.path === 'bare') {
    // pre-serialised payloads: the bare cost of an mqtt.js QoS 1 publish
    const payloads = Array.from({ length: total }, (_, i) => JSON.stringify(buildEvent(msgFor(i, root))));
    const topicsOf = Array.from({ length: total }, (_, i) => topics.callEvents(`bench-${i % CALLS}`));
    const client = mqtt.connect(url, { reconnectPeriod: 0 });
    await new Promise<void>((r, j) => {
      client.once('connect', () => r());
      client.once('error', j);
    });
    let acked = 0;
    publish = (seq) => {
      sent[seq] = now();
      bytes += payloads[seq].length;
      client.publish(topicsOf[seq], payloads[seq], { qos: 1 }, () => acked++);
    };
    finish = async () => {
      const deadline = Date.now() + 30000;
      while (acked < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await new Promise<void>((r) => client.end(true, {}, () => r()));
    };
  } else {
    const pub = new Publisher({ url, root, ...pubCreds });
    await pub.whenConnected(5000);
    publish = (seq) => {
      sent[seq] = now();
      const msg = msgFor(seq, root);
      const e = buildEvent(msg); // build + schema check, as the broadcast node does
      if (seq === 0) bytes = JSON.stringify(e).length * total;
      pub.publish(e);
    };
    finish = async () => {
      await pub.whenIdle(30000);
      await pub.close(30000);
    };
  }

  // pace at RATE events/s: every tick, send what the clock says is due
  const started = now();
  let seq = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((now() - started) / 1000) * RATE));
      while (seq < due) publish(seq++);
      if (seq >= total) return resolve();
      setTimeout(tick, 2);
    };
    tick();
  });
  const elapsed = (now() - started) / 1000;
  await finish();
  const done = fromWorker<{ recv: ArrayBuffer[] }>();
  worker.postMessage({ stop: true, graceMs: 30000 });
  const { recv } = await done;
  await worker.terminate();
  await closeBroker();

  const lat: number[] = [];
  let delivered = 0;
  for (const buf of recv) {
    const r = new Float64Array(buf);
    for (let i = 0; i < total; i++) {
      if (Number.isNaN(r[i])) continue;
      delivered++;
      lat.push(r[i] - sent[i]);
    }
  }
  return { lat, sent: total, delivered, bytes: Math.round(bytes / total), elapsed, load: os.loadavg()[0] };
}

interface Raw {
  lat: number[];
  sent: number;
  delivered: number;
  bytes: number;
  elapsed: number;
  /** 1-minute load average when the round ended (the machine is shared: read the numbers with it) */
  load: number;
}

/** Pool the samples of several rounds of one case. */
function summarise(parts: Raw[]): Result {
  const sorted = Float64Array.from(parts.flatMap((p) => p.lat)).sort();
  const sent = parts.reduce((a, p) => a + p.sent, 0);
  const delivered = parts.reduce((a, p) => a + p.delivered, 0);
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
    sent,
    delivered,
    lost: sent * SUBSCRIBERS - delivered,
    bytes: parts[0].bytes,
    achievedRate: sent / parts.reduce((a, p) => a + p.elapsed, 0),
  };
}

export async function run(): Promise<Row[]> {
  const cases: Case[] = [
    { name: 'bare aedes', broker: 'aedes', path: 'bare' },
    { name: 'aedes + our broadcast path', broker: 'aedes', path: 'ours' },
    { name: 'bare Mosquitto', broker: 'mosquitto', path: 'bare' },
    { name: 'Mosquitto + our broadcast path', broker: 'mosquitto', path: 'ours' },
  ];
  if (process.env.EVENTS_BENCH_ONLY) {
    const only = process.env.EVENTS_BENCH_ONLY.split(',');
    cases.splice(0, cases.length, ...only.map((n) => cases.find((c) => c.name === n)!).filter(Boolean));
  }
  const haveMosquitto = await mosquittoUp();
  // warm-up (JIT, sockets, worker start-up), not reported
  await runCase({ name: 'warm-up', broker: 'aedes', path: 'ours' }, 2);
  await runCase({ name: 'warm-up', broker: 'aedes', path: 'bare' }, 2);
  // Each case runs 10 s in EVENTS_BENCH_ROUNDS (4) rounds, every other round in reverse order, so that
  // no case always runs first (or right after another) on a shared machine; samples are pooled.
  const runnable = cases.filter((c) => c.broker === 'aedes' || haveMosquitto);
  const raw = new Map<string, Raw[]>();
  const rounds = Math.max(1, Number(process.env.EVENTS_BENCH_ROUNDS || 4));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? runnable : [...runnable].reverse();
    for (const c of order) {
      const r = await runCase(c, SECONDS / rounds);
      raw.set(c.name, [...(raw.get(c.name) ?? []), r]);
    }
  }
  const rows: Row[] = [];
  const p99: Record<string, number> = {};
  for (const c of cases) {
    const parts = raw.get(c.name);
    if (!parts) {
      rows.push({ case: c.name, note: 'Mosquitto not running on 127.0.0.1:1883: skipped' });
      continue;
    }
    const r = summarise(parts);
    p99[c.name] = r.p99;
    const bare = c.path === 'ours' ? p99[c.broker === 'aedes' ? 'bare aedes' : 'bare Mosquitto'] : undefined;
    rows.push({
      case: c.name,
      'events/s': Math.round(r.achievedRate),
      'payload B': r.bytes,
      subscribers: SUBSCRIBERS,
      'p50 ms': Number(r.p50.toFixed(2)),
      'p99 ms': Number(r.p99.toFixed(2)),
      'max ms': Number(r.max.toFixed(1)),
      'p99 vs bare': bare ? `${(r.p99 / bare).toFixed(2)}x` : '',
      delivered: `${r.delivered}/${r.sent * SUBSCRIBERS}`,
      lost: r.lost,
      'load avg': parts.map((p) => p.load.toFixed(1)).join('/'),
    });
  }
  // What our path adds per event in CPU: build from the msg + schema check + topic + JSON (no I/O).
  const N = 50000;
  for (let i = 0; i < 5000; i++) JSON.stringify(route(buildEvent(msgFor(i, 'x'))).event);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) JSON.stringify(route(buildEvent(msgFor(i, 'x'))).event);
  rows.push({
    case: 'our path CPU per event (build + schema check + route + JSON)',
    'p50 ms': Number(((performance.now() - t0) / N).toFixed(4)),
    note: 'mean, no I/O',
  });
  return rows;
}

if (require.main === module) {
  run().then(
    (rows) => {
      console.table(rows);
      process.exit(0);
    },
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
