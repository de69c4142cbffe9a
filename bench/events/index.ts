/**
 * Events bench (issue #17): publisher -> broker -> 20 subscribers, 1,000 events/s of ~310 B JSON, QoS 1.
 * Every party runs in its own process: the broker (a Mosquitto the bench starts itself on a port of its
 * own, or aedes in a child process), the subscribers (one process, 20 hand-written raw-socket MQTT clients) and the publisher.
 *
 * Contenders, per broker:
 *   - bare: mqtt.js publishing payloads serialised before the run (the floor); bare aedes has no hooks;
 *   - ours: the call-broadcast controller handed one msg per event (build, schema check, topic,
 *     Publisher); on aedes, the embedded broker of src/events/broker.ts (accounts, ACL).
 * Rounds are interleaved (order alternating), every run starts fresh processes. Latency = receive time
 * - send time on the system's monotonic clock, over every (subscriber, event) pair, both over the full
 * window and after the first `BENCH_EVENTS_WARMUP_S` seconds. Every event is counted at every subscriber.
 * Reported: p50 / p99 / max as min / median / max over the rounds, the paired ratio ours / bare of p99
 * per round, the publisher process's CPU per event, lost and duplicated deliveries.
 *
 * Env: BENCH_EVENTS_ROUNDS (5), BENCH_EVENTS_SECONDS (6 per run), BENCH_EVENTS_RATE (1000),
 * BENCH_EVENTS_WARMUP_S (1), BENCH_EVENTS_BROKERS (mosquitto,aedes), BENCH_EVENTS_PROF (a directory:
 * `--cpu-prof` of every publisher process), BENCH_EVENTS_BEFORE (another build's dist/: its src/ runs our path
 * in this build's publisher process as a third contender, `before`, in the same rounds), BENCH_EVENTS_PUB_ARGS
 * (node options of every publisher process, e.g. `--min-semi-space-size=128 --max-semi-space-size=128`: no GC in the window, so the
 * bytes allocated per event are reported), BENCH_EVENTS_SUBSCRIBERS (20; 0: the publisher's cost alone, e.g. with
 * BENCH_EVENTS_RATE=20000 for bursts of 20 events per timer tick), BENCH_QUICK=1 (3 rounds of 3 s), MOSQUITTO_BIN,
 * BENCH_EVENTS_NO_SETTLE=1 (no full collection before the window, publisher.ts: as before session 16),
 * BENCH_EVENTS_AEDES=bare|ours (every contender on aedes against that broker), BENCH_EVENTS_BROKER_PROF=<dir> (a
 * `--cpu-prof` of every aedes broker process; the window's start on the profile's clock is printed),
 * BENCH_EVENTS_WIRE=1 (with VERBOSE: the time from send to the socket write, by second), BENCH_EVENTS_GC_TRACE=1
 * (every collection of the publisher process, in ms of the window).
 * With BENCH_EVENTS_VERBOSE every run prints its p99 by second of the window and the publisher's CPU, time inside
 * publish() and collections by second, and the CPU and collections by second of the aedes broker and the subscribers.
 * Run alone: `node dist/bench/events/index.js` (or `npm run bench events`).
 */
import { fork, type ChildProcess } from 'child_process';
import { randomBytes } from 'crypto';
import * as os from 'os';
import * as path from 'path';
import { Topics } from '../../src/events/topics';
import type { Creds, ProcSeconds, PubJob, PubResult, SubJob } from './common';
import { startMosquitto } from './mosquitto';

type Row = Record<string, string | number>;
type Broker = 'mosquitto' | 'aedes';
/** `before`: our path from another build (BENCH_EVENTS_BEFORE=<that checkout's dist/>), interleaved with this one's. */
type PathKind = 'bare' | 'ours' | 'before';
const BEFORE = process.env.BENCH_EVENTS_BEFORE ? path.resolve(process.env.BENCH_EVENTS_BEFORE) : undefined;

/** BENCH_EVENTS_SUBSCRIBERS=0: no deliveries (no latency), the publisher's cost alone (CPU, heap per event). */
const SUBSCRIBERS = Number(process.env.BENCH_EVENTS_SUBSCRIBERS ?? 20);
const QUICK = process.env.BENCH_QUICK === '1';
const RATE = Number(process.env.BENCH_EVENTS_RATE || 1000);
const SECONDS = Number(process.env.BENCH_EVENTS_SECONDS || (QUICK ? 3 : 6));
const ROUNDS = Math.max(1, Number(process.env.BENCH_EVENTS_ROUNDS || (QUICK ? 3 : 5)));
const WARMUP_S = Number(process.env.BENCH_EVENTS_WARMUP_S ?? 1);
const PUB_ARGS = (process.env.BENCH_EVENTS_PUB_ARGS ?? '').split(/\s+/).filter(Boolean);
const ext = path.extname(__filename);
/** BENCH_EVENTS_AEDES=bare|ours: every contender on aedes against that broker (which side a difference is on) */
const AEDES_FOR_ALL = process.env.BENCH_EVENTS_AEDES as 'bare' | 'ours' | undefined;
/** BENCH_EVENTS_BROKER_PROF=<dir>: a --cpu-prof of every aedes broker process */
const BROKER_PROF = process.env.BENCH_EVENTS_BROKER_PROF
  ? path.resolve(process.env.BENCH_EVENTS_BROKER_PROF)
  : undefined;

interface RunResult {
  full: { p50: number; p99: number; max: number };
  /** p99 ms of the events sent in each second of the window (by send time, every subscriber) */
  perSecond: number[];
  /** the publisher process by second (PubResult.perSecond) */
  pubPerSecond?: PubResult['perSecond'];
  toWire?: PubResult['toWire'];
  /** the aedes broker process and the subscribers process by second (CPU, collections) */
  brokerPerSecond?: ProcSeconds;
  subsPerSecond?: ProcSeconds;
  /** socket reads of the subscribers per delivery (1: every delivery arrived alone) */
  subReadsPerDelivery: number;
  /** clockMs of the first send (for slicing a broker profile) */
  windowStart: number;
  warm: { p50: number; p99: number; max: number };
  delivered: number;
  expected: number;
  duplicates: number;
  bytes: number;
  rate: number;
  cpuUsPerEvent: number;
  /** user and system parts of cpuUsPerEvent (NaN from a build that does not report them) */
  userUsPerEvent: number;
  sysUsPerEvent: number;
  /** JS heap bytes allocated per event; NaN when a GC ran in the window (or not reported) */
  heapBPerEvent: number;
  load: number;
}

function child(name: string, execArgv: string[] = [], dir = __dirname): ChildProcess {
  return fork(path.join(dir, name + ext), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
}

/** The first message of a child (an `{ error }` message rejects). */
function reply<T>(c: ChildProcess, timeoutMs = 120000): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('bench child did not answer in time')), timeoutMs);
    // a child that sends its answer and exits at once can be seen exiting before its last message is
    // read: give the IPC channel a moment before calling it a failure
    const onExit = (code: number | null) =>
      setTimeout(() => {
        clearTimeout(t);
        reject(new Error(`bench child exited (${code}) before answering`));
      }, 200);
    c.once('exit', onExit);
    c.once('message', (m: T & { error?: string }) => {
      clearTimeout(t);
      c.off('exit', onExit);
      if (m.error) reject(new Error(m.error));
      else resolve(m);
    });
  });
}

function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    c.once('exit', () => r());
    c.kill('SIGTERM');
  });
}

async function startBroker(
  broker: Broker,
  kind: PathKind,
  root: string,
): Promise<{
  url: string;
  pub: Creds;
  sub: Creds;
  stop: () => Promise<void>;
  stats?: (from: number, seconds: number) => Promise<ProcSeconds>;
}> {
  if (broker === 'mosquitto') {
    const m = await startMosquitto();
    return { url: m.url, pub: {}, sub: {}, stop: m.stop };
  }
  const brokerKind = AEDES_FOR_ALL ?? (kind === 'before' ? 'ours' : kind);
  const c = child('aedes-broker', [
    ...(BROKER_PROF
      ? ['--cpu-prof', '--cpu-prof-dir', BROKER_PROF, '--cpu-prof-name', `aedes-${kind}-${Date.now()}.cpuprofile`]
      : []),
  ]);
  const ready = reply<{ url: string; pub: Creds; sub: Creds }>(c);
  // `before` on aedes: that build's broker too (unless BENCH_EVENTS_AEDES puts every contender on one broker)
  c.send({
    kind: brokerKind,
    root,
    srcDir: kind === 'before' && !AEDES_FOR_ALL ? path.join(BEFORE!, 'src') : undefined,
  });
  const r = await ready;
  return {
    ...r,
    stop: () => stopChild(c),
    stats: async (from, seconds) => {
      const answer = reply<{ proc: ProcSeconds }>(c);
      c.send({ stats: { from, seconds } });
      return (await answer).proc;
    },
  };
}

function stats(lat: Float64Array): { p50: number; p99: number; max: number } {
  lat.sort();
  const at = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : NaN);
  return { p50: at(0.5), p99: at(0.99), max: lat.length ? lat[lat.length - 1] : NaN };
}

async function runOnce(broker: Broker, kind: PathKind, profDir?: string): Promise<RunResult> {
  const total = Math.round(RATE * SECONDS);
  const root = `ai-dialer-bench/${randomBytes(4).toString('hex')}`;
  const b = await startBroker(broker, kind, root);
  const subs = child('subscribers');
  const prof = [
    ...PUB_ARGS,
    ...(profDir
      ? ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-name', `${broker}-${kind}-${Date.now()}.cpuprofile`]
      : []),
  ];
  // --expose-gc: the publisher collects the garbage of making its inputs before the window (publisher.ts)
  const pub = child('publisher', [...(process.env.BENCH_EVENTS_NO_SETTLE ? [] : ['--expose-gc']), ...prof]);
  try {
    const subReady = reply<{ ready: true }>(subs);
    subs.send({
      url: b.url,
      filter: new Topics(root).allCallEvents,
      subscribers: SUBSCRIBERS,
      total,
      creds: b.sub,
    } as SubJob);
    await subReady;
    const pubDone = reply<PubResult>(pub);
    pub.send({
      url: b.url,
      root,
      path: kind === 'before' ? 'ours' : kind,
      total,
      rate: RATE,
      creds: b.pub,
      srcDir: kind === 'before' ? path.join(BEFORE!, 'src') : undefined,
    } as PubJob);
    const p = await pubDone;
    const seconds = Math.ceil(total / RATE);
    const subDone = reply<{ recv: number[][]; duplicates: number; proc?: ProcSeconds; reads?: number }>(subs);
    subs.send({ stop: true, graceMs: 30000, from: p.sent[0], seconds });
    const s = await subDone;
    const brokerPerSecond = b.stats ? await b.stats(p.sent[0], seconds) : undefined;
    if (process.env.BENCH_EVENTS_DEBUG)
      console.error(
        [0, 1, 10, 100, 500, 1000, total - 1].map((i) => `${i}: ${fmt(s.recv[0][i] - p.sent[i])}`).join(' '),
      );
    const warmFrom = Math.min(total, Math.round(WARMUP_S * RATE));
    const perSecond: number[] = [];
    for (let from = 0; from < total; from += RATE) {
      const to = Math.min(total, from + RATE);
      const sec = new Float64Array((to - from) * SUBSCRIBERS);
      let n = 0;
      for (const r of s.recv)
        for (let i = from; i < to; i++) if (r[i] >= 0 && p.sent[i] >= 0) sec[n++] = r[i] - p.sent[i];
      perSecond.push(stats(sec.subarray(0, n)).p99);
    }
    const full = new Float64Array(total * SUBSCRIBERS);
    const warm = new Float64Array((total - warmFrom) * SUBSCRIBERS);
    let nf = 0;
    let nw = 0;
    for (const r of s.recv) {
      for (let i = 0; i < total; i++) {
        if (r[i] < 0 || p.sent[i] < 0) continue;
        const l = r[i] - p.sent[i];
        full[nf++] = l;
        if (i >= warmFrom) warm[nw++] = l;
      }
    }
    return {
      perSecond,
      pubPerSecond: p.perSecond,
      toWire: p.toWire,
      brokerPerSecond,
      subsPerSecond: s.proc,
      subReadsPerDelivery: (s.reads ?? NaN) / Math.max(1, total * SUBSCRIBERS),
      windowStart: p.sent[0],
      full: stats(full.subarray(0, nf)),
      warm: stats(warm.subarray(0, nw)),
      delivered: nf,
      expected: total * SUBSCRIBERS,
      duplicates: s.duplicates,
      bytes: p.bytes,
      rate: (total / p.elapsedMs) * 1000,
      cpuUsPerEvent: p.cpuUs / total,
      userUsPerEvent: (p.cpuUserUs ?? NaN) / total,
      sysUsPerEvent: (p.cpuSystemUs ?? NaN) / total,
      heapBPerEvent: p.gcs === 0 && p.heapBytes !== undefined ? p.heapBytes / total : NaN,
      load: os.loadavg()[0],
    };
  } finally {
    await Promise.all([stopChild(pub), stopChild(subs)]);
    await b.stop();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');
const mmm = (xs: number[], d = 2) =>
  xs.length ? `${fmt(Math.min(...xs), d)} / ${fmt(median(xs), d)} / ${fmt(Math.max(...xs), d)}` : 'n/a';

export async function run(): Promise<Row[]> {
  const brokers = (process.env.BENCH_EVENTS_BROKERS || 'mosquitto,aedes').split(',') as Broker[];
  const profDir = process.env.BENCH_EVENTS_PROF ? path.resolve(process.env.BENCH_EVENTS_PROF) : undefined;
  const kinds: PathKind[] = BEFORE ? ['bare', 'ours', 'before'] : ['bare', 'ours'];
  const cases: [Broker, PathKind][] = brokers.flatMap((b) => kinds.map((k): [Broker, PathKind] => [b, k]));
  const results = new Map<string, RunResult[]>();
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? cases : [...cases].reverse();
    for (const [b, k] of order) {
      const r = await runOnce(b, k, profDir);
      const key = `${b}:${k}`;
      results.set(key, [...(results.get(key) ?? []), r]);
      if (process.env.BENCH_EVENTS_VERBOSE)
        console.error(
          `round ${round + 1} ${key}: p99 full ${fmt(r.full.p99)} warm ${fmt(r.warm.p99)} ms, ${r.delivered}/${r.expected}, cpu ${fmt(r.cpuUsPerEvent, 1)} µs/event (user ${fmt(r.userUsPerEvent, 1)}, system ${fmt(r.sysUsPerEvent, 1)}), heap ${fmt(r.heapBPerEvent, 0)} B/event, load ${fmt(r.load, 1)}; p99 ms by second ${r.perSecond.map((v) => fmt(v, 1)).join(' ')}`,
        );
      if (process.env.BENCH_EVENTS_VERBOSE && r.pubPerSecond)
        console.error(
          `  publisher by second: cpu µs/event ${r.pubPerSecond.map((x) => fmt(x.cpuUs / RATE, 0)).join(' ')}; in publish() µs/event ${r.pubPerSecond.map((x) => fmt((x.publishMs * 1000) / RATE, 0)).join(' ')}; longest call ms ${r.pubPerSecond.map((x) => fmt(x.longestMs, 1)).join(' ')}; GCs ${r.pubPerSecond.map((x) => x.gcs).join(' ')} (pause ms ${r.pubPerSecond.map((x) => fmt(x.gcMs, 1)).join(' ')})`,
        );
      const procLine = (what: string, x: ProcSeconds) =>
        `  ${what}: cpu µs/event over the run ${fmt(x.totalUs / (RATE * SECONDS), 1)}; by second: cpu µs/event ${x.cpuUs.map((us) => fmt(us / RATE, 0)).join(' ')} (system ${x.sysUs.map((us) => fmt(us / RATE, 0)).join(' ')}); GCs ${x.gcs.join(' ')} (full ${x.majors.join(' ')}; pause ms ${x.gcMs.map((v) => fmt(v, 1)).join(' ')})`;
      if (process.env.BENCH_EVENTS_VERBOSE && r.brokerPerSecond) console.error(procLine('broker', r.brokerPerSecond));
      if (process.env.BENCH_EVENTS_VERBOSE && r.subsPerSecond)
        console.error(
          `${procLine('subscribers', r.subsPerSecond)}; socket reads per delivery ${fmt(r.subReadsPerDelivery)}`,
        );
      if (BROKER_PROF) console.error(`  window starts at clock ${r.windowStart.toFixed(1)} ms`);
      if (process.env.BENCH_EVENTS_VERBOSE && r.toWire)
        console.error(
          `  send -> socket write by second, p99 / max ms: ${r.toWire.map((x) => `${fmt(x.p99)}/${fmt(x.max, 1)}`).join(' ')}`,
        );
    }
  }
  const rows: Row[] = [];
  for (const b of brokers) {
    const bare = results.get(`${b}:bare`)!;
    for (const k of kinds) {
      const rs = results.get(`${b}:${k}`)!;
      const ratio = (w: 'full' | 'warm') => rs.map((r, i) => r[w].p99 / bare[i][w].p99);
      rows.push({
        broker: b === 'mosquitto' ? 'Mosquitto 2 (own process, own port)' : 'aedes (own process)',
        path: k === 'bare' ? 'bare publish (floor)' : k === 'ours' ? 'our broadcast path' : 'our path, before build',
        rounds: rs.length,
        'events/s': Math.round(median(rs.map((r) => r.rate))),
        'payload B': rs[0].bytes,
        'p50 ms after warm-up': mmm(rs.map((r) => r.warm.p50)),
        'p99 ms after warm-up': mmm(rs.map((r) => r.warm.p99)),
        'p99 ms full window': mmm(rs.map((r) => r.full.p99)),
        'max ms full window': mmm(
          rs.map((r) => r.full.max),
          1,
        ),
        'p99 / bare after warm-up': k !== 'bare' ? mmm(ratio('warm')) : '',
        'p99 / bare full window': k !== 'bare' ? mmm(ratio('full')) : '',
        'publisher cpu µs/event': mmm(
          rs.map((r) => r.cpuUsPerEvent),
          1,
        ),
        'publisher user / system µs/event (medians)': `${fmt(median(rs.map((r) => r.userUsPerEvent)), 1)} / ${fmt(
          median(rs.map((r) => r.sysUsPerEvent)),
          1,
        )}`,
        'publisher heap B/event (rounds with no GC)': mmm(
          rs.map((r) => r.heapBPerEvent).filter((v) => Number.isFinite(v)),
          0,
        ),
        'broker cpu µs/event (aedes, to the last delivery)': mmm(
          rs.filter((r) => r.brokerPerSecond).map((r) => r.brokerPerSecond!.totalUs / (RATE * SECONDS)),
          1,
        ),
        'subscribers cpu µs/event': mmm(
          rs.filter((r) => r.subsPerSecond).map((r) => r.subsPerSecond!.totalUs / (RATE * SECONDS)),
          1,
        ),
        delivered: `${rs.reduce((a, r) => a + r.delivered, 0)}/${rs.reduce((a, r) => a + r.expected, 0)}`,
        lost: rs.reduce((a, r) => a + r.expected - r.delivered, 0),
        duplicates: rs.reduce((a, r) => a + r.duplicates, 0),
        'load avg': mmm(
          rs.map((r) => r.load),
          1,
        ),
      });
    }
  }
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
