/**
 * Shared by the events bench's processes: the msg every event is built from, the clock, the IPC shapes.
 */
import { performance, PerformanceObserver } from 'perf_hooks';

/** Calls the events are spread over (one topic each). */
export const CALLS = 100;

/** A system-wide monotonic clock in ms (CLOCK_MONOTONIC): comparable between the bench's processes. */
export function clockMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** The msg a conversation_turn event is built from (as the default flow hands it to call-broadcast): ~310 B of JSON. */
export function msgFor(seq: number): Record<string, unknown> {
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

export interface Creds {
  username?: string;
  password?: string;
}

/** orchestrator -> publisher process */
export interface PubJob {
  url: string;
  root: string;
  path: 'bare' | 'ours';
  total: number;
  rate: number;
  creds: Creds;
  /** write a V8 CPU profile of the sending window here (optional) */
  profileDir?: string;
  /** `ours` from another build: its dist/src (the `before` contender runs in this build's harness) */
  srcDir?: string;
}

/** publisher process -> orchestrator */
export interface PubResult {
  /** send time (clockMs) of every event by sequence number */
  sent: number[];
  bytes: number;
  elapsedMs: number;
  /** publisher process CPU (user + system) from the first to the last acknowledgement, µs */
  cpuUs: number;
  /** the user and the system (kernel: socket writes and reads, timers) parts of cpuUs */
  cpuUserUs?: number;
  cpuSystemUs?: number;
  acked: number;
  /** JS heap growth over the same window and the garbage collections in it: with no GC (the publisher run
   * with a young generation large enough, BENCH_EVENTS_PUB_ARGS) heapBytes is what the window allocated */
  heapBytes?: number;
  gcs?: number;
  /** by second of the window: CPU µs of the process (the last second's until its last send), ms inside
   * publish() (sum, longest call), garbage collections and their pause ms (absent from older builds) */
  perSecond?: { cpuUs: number; publishMs: number; longestMs: number; gcs: number; gcMs: number }[];
  /** BENCH_EVENTS_WIRE=1: send -> socket write ms by second (the publisher's own share of the latency) */
  toWire?: { p50: number; p99: number; max: number }[];
}

/** orchestrator -> subscriber process */
export interface SubJob {
  url: string;
  filter: string;
  subscribers: number;
  total: number;
  creds: Creds;
}

/** A process's CPU and garbage collections by second of the window (broker and subscriber processes). */
export interface ProcSeconds {
  /** CPU µs (user + system) by second, and its system (kernel) part */
  cpuUs: number[];
  sysUs: number[];
  /** collections started in each second and their pause ms */
  gcs: number[];
  gcMs: number[];
  /** of gcs: full (mark-compact) collections */
  majors: number[];
  /** CPU µs from the window's start until asked (after the last delivery): the whole run's work, however late */
  totalUs: number;
}

/**
 * Samples this process's CPU every 50 ms and records every garbage collection, both on clockMs, so the
 * orchestrator can ask afterwards for the seconds of a window it learns only later (the publisher's first send).
 */
export function procSampler(): { bySecond(fromMs: number, seconds: number): ProcSeconds; stop(): void } {
  const offset = clockMs() - performance.now(); // performance.now() -> clockMs
  const samples: { t: number; us: number; sys: number }[] = [];
  const sample = () => {
    const c = process.cpuUsage();
    samples.push({ t: clockMs(), us: c.user + c.system, sys: c.system });
  };
  sample();
  const timer = setInterval(sample, 50);
  const gcs: { t: number; ms: number; major: boolean }[] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
      gcs.push({ t: e.startTime + offset, ms: e.duration, major: (kind & 2) !== 0 }); // NODE_PERFORMANCE_GC_MAJOR
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  /** CPU µs used by time t (linear between the two samples around it) */
  const cpuAt = (t: number, k: 'us' | 'sys' = 'us'): number => {
    let i = samples.length - 1;
    while (i > 0 && samples[i].t > t) i--;
    const a = samples[i];
    const b = samples[i + 1];
    if (!b || t <= a.t) return a[k];
    return a[k] + ((b[k] - a[k]) * (t - a.t)) / (b.t - a.t);
  };
  return {
    bySecond(fromMs, seconds) {
      sample();
      const out: ProcSeconds = { cpuUs: [], sysUs: [], gcs: [], gcMs: [], majors: [], totalUs: 0 };
      out.totalUs = Math.round(samples[samples.length - 1].us - cpuAt(fromMs));
      for (let s = 0; s < seconds; s++) {
        const a = fromMs + s * 1000;
        out.cpuUs.push(Math.round(cpuAt(a + 1000) - cpuAt(a)));
        out.sysUs.push(Math.round(cpuAt(a + 1000, 'sys') - cpuAt(a, 'sys')));
        const inSec = gcs.filter((g) => g.t >= a && g.t < a + 1000);
        out.gcs.push(inSec.length);
        out.gcMs.push(inSec.reduce((x, g) => x + g.ms, 0));
        out.majors.push(inSec.filter((g) => g.major).length);
      }
      return out;
    },
    stop() {
      clearInterval(timer);
      obs.disconnect();
    },
  };
}
