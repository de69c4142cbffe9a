/**
 * Conversation benchmark (issue 14): how long the caller waits for our reply, record mode and stream
 * mode side by side, with instant engines and with stand-in engines at fixed delays (STT 150 ms, LLM
 * first token 200 ms then 15 ms a word, TTS 100 ms a request).
 *
 * The runtime side (bench/conversation/server.ts) runs in a child process: an AudioSocket server and one
 * conversation loop per call (stream: the real media session, WebRTC VAD endpointer with 600 ms end
 * silence, streaming engines, sentence-by-sentence TTS; record: today's shape, recording until 2 s of
 * silence, whole transcription, whole reply, whole synthesis, then playback). This process plays the
 * callers: real TCP AudioSocket clients that send espeak-ng speech and silence as real-time 20 ms frames
 * and time what they hear.
 *
 * Per mode x engines x N concurrent calls (1, 100, 500; BENCH_QUICK=1: 1 and 100; BENCH_CONV_N=a,b):
 *   - reply latency: the caller's end of speech (its last speech frame sent) to the first reply frame
 *     received, p50/p99 over every turn (stream: 3 turns a call, record: 2);
 *   - overhead: reply latency minus the endpoint silence (600 ms stream / 2,000 ms record) minus the engine
 *     times of that turn (STT, LLM to first token or whole, TTS of the first sentence or whole); STT counts
 *     what the caller waited for it after the end of the turn (an early transcription, asked when the caller
 *     paused 300 ms, has done most or all of its work by then: `early stt` is the share of turns that used one;
 *     BENCH_CONV_EARLY=0 turns it off; `stt req/turn` counts the STT requests, early ones included);
 *   - barge-in (stream): the caller talks 500 ms into the second reply; `stop` is detection to the last
 *     frame sent (server), `heard` the caller's speech start to the last reply frame it received
 *     (includes the 120 ms of speech the VAD needs);
 *   - pacing jitter: |gap - 20 ms| between frames the server sent within a reply, p99;
 *   - CPU of the runtime process per concurrent call (% of one core) and the calls one core would carry, and
 *     per audio frame it received or sent (µs; counts work, so it holds on a loaded machine).
 *
 * Run alone: `node dist/bench/conversation/index.js`.
 */
import { execFileSync, fork, type ChildProcess } from 'child_process';
import { randomUUID } from 'crypto';
import fs from 'fs';
import net from 'net';
import os from 'os';
import path from 'path';
import { performance } from 'perf_hooks';
import { parseWav } from '../../src/audio/wav';
import { AudioSocketDecoder, encodeAudio, encodeHangup, encodeUuid } from '../../src/media/audiosocket';
import type { Engines, Mode, TurnReport } from './server';

type Row = Record<string, string | number>;

const QUICK = process.env.BENCH_QUICK === '1';
const SIZES = (process.env.BENCH_CONV_N || (QUICK ? '1,100' : '1,100,500')).split(',').map(Number);
const FRAME = 160;
/** BENCH_CONV_VERBOSE=1: every turn's breakdown on stderr. */
const VERBOSE = process.env.BENCH_CONV_VERBOSE === '1';

function pct(values: number[], p: number): number {
  if (!values.length) return NaN;
  const s = values.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const r1 = (v: number) => (Number.isFinite(v) ? Math.round(v * 10) / 10 : '-');

/** espeak-ng speech at 8 kHz, trimmed to its speech (so its last frame is the end of speech). */
function speech(text: string, dir: string, name: string): Int16Array {
  const raw = path.join(dir, `${name}.wav`);
  const out = path.join(dir, `${name}-8k.wav`);
  execFileSync('espeak-ng', ['-v', 'en-us', '-s', '170', '-w', raw, text]);
  execFileSync('sox', [raw, '-r', '8000', '-b', '16', '-c', '1', out]);
  const s = parseWav(fs.readFileSync(out)).samples;
  let first = 0;
  let last = s.length;
  const loud = (i: number) => Math.abs(s[i]) > 300;
  while (first < s.length && !loud(first)) first++;
  while (last > first && !loud(last - 1)) last--;
  const n = Math.ceil((last - first) / FRAME) * FRAME;
  const t = new Int16Array(n);
  t.set(s.subarray(first, Math.min(s.length, first + n)));
  return t;
}

type Step =
  | { t: 'say'; audio: Int16Array; barge?: boolean }
  | { t: 'waitReply' }
  | { t: 'waitEnd' }
  | { t: 'waitMs'; ms: number }
  | { t: 'hangup' };

class Caller {
  readonly uuid = randomUUID();
  private sock?: net.Socket;
  private connected = false;
  private step = 0;
  private pos = 0;
  private nextAt = 0;
  private stepStart = 0;
  private speechEndAt = 0;
  private awaiting = false;
  private lastRecvAt = 0;
  private bargeStartAt = 0;
  readonly latencies: number[] = [];
  readonly endFrames: number[] = [];
  private sent = 0;
  bargeHeardMs?: number;
  done = false;
  failed?: string;
  private readonly silence = new Int16Array(FRAME).map((_, i) => (i % 3) - 1);

  constructor(private readonly script: Step[]) {}

  connect(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1', () => {
        sock.setNoDelay(true);
        sock.write(encodeUuid(this.uuid));
        this.connected = true;
        this.nextAt = performance.now();
        this.stepStart = this.nextAt;
        resolve();
      });
      this.sock = sock;
      const dec = new AudioSocketDecoder();
      sock.on('data', (c: Buffer) => {
        for (const m of dec.push(c)) if (m.kind === 'audio') this.onReply();
      });
      sock.on('error', (e) => {
        if (!this.done) this.failed = e.message;
        reject(e);
      });
      sock.on('close', () => {
        if (!this.done) this.failed ??= 'closed early';
        this.done = true;
      });
    });
  }

  private onReply(): void {
    const now = performance.now();
    this.lastRecvAt = now;
    if (this.awaiting) {
      this.awaiting = false;
      this.latencies.push(now - this.speechEndAt);
    }
  }

  /** Send what is owed up to `now` (real-time 20 ms frames) and advance the script. */
  tick(now: number): void {
    if (this.done || !this.sock || !this.connected) return;
    while (this.nextAt <= now && !this.done) {
      const s = this.script[this.step];
      let frame: Int16Array = this.silence;
      switch (s.t) {
        case 'say': {
          if (this.pos === 0 && s.barge) this.bargeStartAt = now;
          frame = s.audio.subarray(this.pos, this.pos + FRAME);
          this.pos += FRAME;
          if (this.pos >= s.audio.length) {
            this.speechEndAt = now;
            this.endFrames.push(this.sent);
            if (s.barge) this.bargeHeardMs = this.lastRecvAt - this.bargeStartAt;
            this.awaiting = true;
            this.next(now);
          }
          break;
        }
        case 'waitReply':
          if (!this.awaiting) this.next(now);
          break;
        case 'waitEnd':
          if (now - this.lastRecvAt > 300) this.next(now);
          break;
        case 'waitMs':
          if (now - this.stepStart >= s.ms) this.next(now);
          break;
        case 'hangup':
          this.done = true;
          this.sock.end(encodeHangup());
          return;
      }
      this.sock.write(encodeAudio(frame));
      this.sent++;
      this.nextAt += 20;
    }
  }

  private next(now: number): void {
    this.step++;
    this.pos = 0;
    this.stepStart = now;
  }

  destroy(): void {
    this.sock?.destroy();
  }
}

function startServer(mode: Mode, engines: Engines): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(path.join(__dirname, 'server.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.on('message', function first(m: { port?: number; error?: string }) {
      if (m.error) reject(new Error(m.error));
      if (m.port) {
        child.off('message', first);
        resolve({ child, port: m.port });
      }
    });
    child.send({ mode, engines });
  });
}

export async function scenario(
  mode: Mode,
  engines: Engines,
  n: number,
  voice: Record<string, Int16Array>,
): Promise<Row> {
  const { child, port } = await startServer(mode, engines);
  const turns: TurnReport[] = [];
  const errors: string[] = [];
  let cpu: { userMs: number; systemMs: number; wallMs: number; frames: number; sttRequests?: number } | undefined;
  child.on('message', (m: { turn?: TurnReport; error?: string; cpu?: typeof cpu }) => {
    if (m.turn) turns.push(m.turn);
    if (m.error) errors.push(m.error);
    if (m.cpu) cpu = m.cpu;
  });
  const script: Step[] =
    mode === 'stream'
      ? [
          { t: 'waitMs', ms: 300 },
          { t: 'say', audio: voice.a },
          { t: 'waitReply' },
          { t: 'waitEnd' },
          { t: 'say', audio: voice.b },
          { t: 'waitReply' },
          { t: 'waitMs', ms: 500 },
          { t: 'say', audio: voice.c, barge: true },
          { t: 'waitReply' },
          { t: 'waitEnd' },
          { t: 'hangup' },
        ]
      : [
          { t: 'waitMs', ms: 300 },
          { t: 'say', audio: voice.a },
          { t: 'waitReply' },
          { t: 'waitEnd' },
          { t: 'say', audio: voice.b },
          { t: 'waitReply' },
          { t: 'waitEnd' },
          { t: 'hangup' },
        ];
  const callers = Array.from({ length: n }, () => new Caller(script));
  await new Promise<void>((resolve) => {
    child.on('message', function ok(m: { expecting?: number }) {
      if (m.expecting) {
        child.off('message', ok);
        resolve();
      }
    });
    child.send({ expect: callers.map((c) => c.uuid) });
  });
  // calls start spread over a second, as real ones are not in lockstep
  const ticker = setInterval(() => {
    const now = performance.now();
    for (const c of callers) c.tick(now);
  }, 5);
  for (let i = 0; i < callers.length; i++) {
    await callers[i].connect(port).catch(() => undefined);
    if (n > 1) await new Promise((r) => setTimeout(r, 1000 / n));
  }
  const deadline = Date.now() + 120000;
  while (callers.some((c) => !c.done) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  clearInterval(ticker);
  await new Promise((r) => setTimeout(r, 300));
  child.send({ done: true });
  await new Promise<void>((r) => child.once('exit', () => r()));
  for (const c of callers) c.destroy();

  const byUuid = new Map<string, TurnReport[]>();
  for (const t of turns) byUuid.set(t.uuid, [...(byUuid.get(t.uuid) ?? []), t]);
  const latency: number[] = [];
  const overhead: number[] = [];
  const serverOverhead: number[] = [];
  const engineMs: number[] = [];
  const endpointMs: number[] = [];
  const firstPiece: number[] = [];
  let early = 0;
  let reported = 0;
  for (const c of callers) {
    const reps = (byUuid.get(c.uuid) ?? []).sort((a, b) => a.turn - b.turn);
    c.latencies.forEach((l, i) => {
      latency.push(l);
      const r = reps[i];
      if (!r) return;
      const eng = r.sttMs + r.llmMs + r.ttsMs;
      // the endpoint wait as it happened: decision minus the caller's true end of speech, both in stream time
      const waited = r.decidedAtMs - (c.endFrames[i] + 1) * 20;
      engineMs.push(eng);
      reported++;
      if (r.sttEarly) early++;
      endpointMs.push(waited);
      overhead.push(l - waited - eng);
      serverOverhead.push(r.serverMs - eng);
      if (r.firstPieceMs !== undefined) firstPiece.push(r.firstPieceMs);
      if (VERBOSE)
        console.error(
          `${mode}/${engines}/${n} call ${c.uuid.slice(0, 8)} turn ${r.turn}: reply ${r1(l)} = endpoint ${r1(waited)}` +
            ` + stt ${r1(r.sttMs)} + llm ${r1(r.llmMs)} + tts ${r1(r.ttsMs)} + overhead ${r1(l - waited - eng)}` +
            ` (first token to first piece's synthesis ${r1(r.firstPieceMs ?? NaN)}; runtime share ${r1(r.serverMs - eng)}; trace ${r.trace?.join(' ') ?? '-'})`,
        );
    });
  }
  const gaps = turns.flatMap((t) => t.gaps.map((g) => Math.abs(g - 20)));
  const stops = turns.filter((t) => t.bargeInStopMs !== undefined).map((t) => t.bargeInStopMs as number);
  const heard = callers.filter((c) => c.bargeHeardMs !== undefined).map((c) => c.bargeHeardMs as number);
  const cpuPct = cpu ? ((cpu.userMs + cpu.systemMs) / cpu.wallMs / n) * 100 : NaN;
  const failed = callers.filter((c) => c.failed || c.latencies.length < (mode === 'stream' ? 3 : 2)).length;
  if (errors.length) console.error(`bench/conversation ${mode}/${engines}/${n}: ${errors[0]}`);
  return {
    mode,
    engines,
    calls: n,
    turns: latency.length,
    'reply p50': r1(pct(latency, 50)),
    'reply p99': r1(pct(latency, 99)),
    'endpoint ms': r1(pct(endpointMs, 50)),
    'engines p50': r1(pct(engineMs, 50)),
    'overhead p50': r1(pct(overhead, 50)),
    'overhead p99': r1(pct(overhead, 99)),
    'runtime share p50': r1(pct(serverOverhead, 50)),
    'runtime share p99': r1(pct(serverOverhead, 99)),
    'first piece p50': mode === 'stream' && engines === 'standin' ? r1(pct(firstPiece, 50)) : 'n/a',
    'early stt %': mode === 'stream' && reported ? Math.round((early / reported) * 100) : 'n/a',
    // STT requests per turn the runtime transcribed (early ones included): the cost of early transcription (1 = none repeated)
    'stt req/turn': cpu?.sttRequests !== undefined && turns.length ? r1(cpu.sttRequests / turns.length) : '-',
    'barge stop p99': mode === 'stream' ? r1(pct(stops, 99)) : 'n/a',
    'barge heard p99': mode === 'stream' ? r1(pct(heard, 99)) : 'n/a',
    'jitter p99': r1(pct(gaps, 99)),
    'cpu %/call': Number.isFinite(cpuPct) ? Number(cpuPct.toFixed(3)) : '-',
    // the runtime process's CPU per audio frame it received or sent (load-independent, unlike the wall times)
    'cpu µs/frame': cpu && cpu.frames ? r1(((cpu.userMs + cpu.systemMs) * 1000) / cpu.frames) : '-',
    'calls/core': Number.isFinite(cpuPct) ? Math.round(100 / cpuPct) : '-',
    failed,
  };
}

/** The callers' three utterances (espeak-ng, trimmed to their speech). */
export function voices(): Record<string, Int16Array> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-conv-voice-'));
  try {
    return {
      a: speech('Hello, yes, this is Anna speaking.', dir, 'a'),
      b: speech('Yes, Tuesday at ten works for me.', dir, 'b'),
      c: speech('Sorry, can you repeat that please?', dir, 'c'),
    };
  } catch (err) {
    throw new Error(`bench/conversation needs espeak-ng and sox: ${(err as Error).message}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<Row[]> {
  const voice = voices();
  const rows: Row[] = [];
  for (const engines of ['instant', 'standin'] as Engines[])
    for (const n of SIZES)
      for (const mode of ['record', 'stream'] as Mode[]) rows.push(await scenario(mode, engines, n, voice));
  return rows;
}

if (require.main === module) {
  run().then(
    (rows) => {
      console.table(rows);
      process.exit(0);
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
