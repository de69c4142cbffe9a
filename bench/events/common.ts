/**
 * Shared by the events bench's processes: the msg every event is built from, the clock, the IPC shapes.
 */

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
