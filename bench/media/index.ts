/**
 * Stream mode's media path under load (loopback): N concurrent calls, each an AudioSocket connection
 * from the simulator's callee (real-time 20 ms frames, the simulator's shared clock) to our server,
 * with a media session per call (the WebRTC VAD endpointer, the shared 20 ms pacer). Each call: our
 * 2 s greeting, the callee's answer (synthetic speech), 600 ms end-of-turn silence, our 1 s reply
 * sent at once (instant engines), then the media ends.
 *
 * Reported per N: reply latency (end of the caller's speech, as the endpointer saw it, to our first reply
 * frame on the wire) p50/p99; the overhead beyond the endpoint silence (endpointer decision to first
 * frame: session, pacer, sockets; engines are instant here); the wait as the callee measures it (from
 * its last frame, which includes the fade the VAD does not count as speech); our pacer's tick lateness
 * p99 (frame pacing jitter); CPU ms per call-second of streaming and CPU µs per frame on the wire (our side
 * and the simulator's together, one process); event-loop delay p99.
 * Sizes: BENCH_MEDIA_N=1,100,200 (BENCH_QUICK=1: 1,50).
 *
 * Then one `js path` row (BENCH_MEDIA_JS=N sessions, default 400; 0: none): the per-frame JavaScript alone,
 * without sockets or a simulator, N media sessions each fed a caller frame every 20 ms (decoder, session,
 * endpointer with the WebRTC VAD) while playing a reply (pacer, playback, encodeAudio) for 5 s: CPU µs per
 * frame (in + out). It counts work, so it holds on a loaded machine where the wall-time columns do not.
 */
import { randomUUID } from 'crypto';
import { EventEmitter } from 'events';
import os from 'os';
import { monitorEventLoopDelay, performance } from 'perf_hooks';
import {
  AudioSocketDecoder,
  AudioSocketServer,
  encodeAudio,
  type AudioSocketConnection,
} from '../../src/media/audiosocket';
import { Endpointer } from '../../src/media/endpointer';
import { pacer } from '../../src/media/pacer';
import { MediaSession } from '../../src/media/session';
import { syntheticSpeech } from '../../src/audio/synthetic-speech';
import { runAudioSocketCallee } from '../../src/sim/audiosocket-client';

type Row = Record<string, string | number>;

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function once(n: number): Promise<Row> {
  const server = new AudioSocketServer({ uuidTimeoutMs: 10000 });
  const { port } = await server.listen();
  const greeting = syntheticSpeech('Hello, this is a reminder about your appointment.', 2000);
  const reply = syntheticSpeech('Great, see you then.', 1000);
  pacer.lateness.length = 0;
  pacer.jitterWindow = 200000;
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const failures: string[] = [];
  const ours: number[] = [];
  const waits: number[] = [];
  const calls = Array.from({ length: n }, async (_v, i) => {
    // spread the starts over a second, as calls are answered one by one
    await new Promise((r) => setTimeout(r, Math.floor((i * 1000) / n)));
    const uuid = randomUUID();
    const attached = server.expect(uuid, {}, 15000);
    const callee = runAudioSocketCallee({
      host: '127.0.0.1',
      port,
      uuid,
      utterances: [{ text: 'Yes, that works for me, thank you.', pauseMs: 300 }],
    });
    const conn = await attached;
    const m = new MediaSession(conn, { endpointer: await Endpointer.create() });
    await m.play(greeting);
    const u = await m.nextUtterance({ timeoutMs: 10000 });
    if (!u) failures.push('no utterance');
    const r = await m.play(reply);
    if (u && r.firstFrameAt !== undefined) {
      // after the endpointer decided: the path's own overhead (no engines here)
      ours.push(r.firstFrameAt - u.decidedAt);
      waits.push(r.firstFrameAt - u.speechEndAt);
    }
    m.end();
    return callee;
  });
  const results = await Promise.all(calls);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  loop.disable();
  pacer.jitterWindow = 0;
  await server.close();
  const lat = waits.sort((a, b) => a - b);
  const over = ours.sort((a, b) => a - b);
  const callee = results.flatMap((r) => r.replyLatencyMs).sort((a, b) => a - b);
  const late = [...pacer.lateness].sort((a, b) => a - b);
  const streamedSec = results.reduce((a, r) => a + (r.framesSent * 20) / 1000, 0);
  return {
    calls: n,
    answered: lat.length,
    failed: failures.length + results.filter((r) => r.endedBy !== 'server_hangup').length,
    reply_p50_ms: Math.round(pct(lat, 50)),
    reply_p99_ms: Math.round(pct(lat, 99)),
    overhead_p50_ms: Number(pct(over, 50).toFixed(1)),
    overhead_p99_ms: Number(pct(over, 99).toFixed(1)),
    callee_wait_p50_ms: pct(callee, 50),
    pacer_late_p99_ms: Number(pct(late, 99).toFixed(1)),
    cpu_ms_per_call_s: Number(((cpu.user + cpu.system) / 1000 / streamedSec).toFixed(2)),
    // every frame on the wire once (the callee's sent and received): both ends' work per frame, in µs
    cpu_us_per_frame: Number(
      ((cpu.user + cpu.system) / results.reduce((a, r) => a + r.framesSent + r.framesReceived, 0)).toFixed(1),
    ),
    cpu_util: Number(((cpu.user + cpu.system) / 1000 / wallMs).toFixed(2)),
    loop_p99_ms: Number((loop.percentile(99) / 1e6).toFixed(1)),
    load_1m: Number(os.loadavg()[0].toFixed(1)),
  };
}

/** A connection without a socket: frames in by emit, frames out encoded and counted. */
class NullConnection extends EventEmitter {
  readonly binding = {};
  framesOut = 0;
  constructor(readonly uuid: string) {
    super();
  }
  start(): void {}
  sendAudio(s: Int16Array): boolean {
    if (encodeAudio(s).length) this.framesOut++;
    return true;
  }
  hangup(): void {}
}

async function jsPath(n: number, seconds = 5): Promise<Row> {
  const speech = syntheticSpeech('Yes, that works for me, thank you very much.', 2500);
  const quiet = new Int16Array(160).map((_v, i) => (i % 3) - 1);
  const reply = syntheticSpeech('Great, see you then, goodbye and have a nice day.', (seconds + 5) * 1000);
  // the caller: 2.5 s of speech then 2.5 s of silence, looped, as AudioSocket messages
  const wire: Buffer[] = [];
  for (let o = 0; o + 160 <= speech.length; o += 160) wire.push(encodeAudio(speech.subarray(o, o + 160)));
  for (let k = 0; k < 125; k++) wire.push(encodeAudio(quiet));
  const calls = [];
  for (let i = 0; i < n; i++) {
    const conn = new NullConnection(`js-${i}`);
    const m = new MediaSession(conn as unknown as AudioSocketConnection, {
      endpointer: await Endpointer.create(),
      bargeIn: 'off',
    });
    const listen = (): void => void m.nextUtterance().then((u) => u && listen());
    listen();
    void m.play(reply);
    calls.push({ conn, m, dec: new AudioSocketDecoder(), phase: (i * 7) % wire.length });
  }
  let framesIn = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let k = 0; performance.now() - t0 < seconds * 1000; k++) {
    for (const c of calls) {
      for (const msg of c.dec.push(wire[(c.phase + k) % wire.length]))
        if (msg.kind === 'audio') c.conn.emit('audio', msg.samples);
      framesIn++;
    }
    await new Promise((r) => setTimeout(r, Math.max(0, t0 + (k + 1) * 20 - performance.now())));
  }
  const cpu = process.cpuUsage(cpu0);
  const framesOut = calls.reduce((a, c) => a + c.conn.framesOut, 0);
  for (const c of calls) c.m.stop();
  return {
    calls: `${n} (js path)`,
    frames_in: framesIn,
    frames_out: framesOut,
    cpu_us_per_frame: Number(((cpu.user + cpu.system) / (framesIn + framesOut)).toFixed(2)),
    load_1m: Number(os.loadavg()[0].toFixed(1)),
  };
}

export async function run(): Promise<Row[]> {
  const sizes = (process.env.BENCH_MEDIA_N || (process.env.BENCH_QUICK === '1' ? '1,50' : '1,100,200'))
    .split(',')
    .map(Number)
    .filter((x) => x > 0);
  const rows: Row[] = [];
  for (const n of sizes) rows.push(await once(n));
  const js = Number(process.env.BENCH_MEDIA_JS ?? 400);
  if (js > 0) rows.push(await jsPath(js));
  return rows;
}

if (require.main === module)
  run().then(
    (rows) => console.table(rows),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
