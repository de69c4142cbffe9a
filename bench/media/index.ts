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
 */
import { randomUUID } from 'crypto';
import os from 'os';
import { monitorEventLoopDelay, performance } from 'perf_hooks';
import { AudioSocketServer } from '../../src/media/audiosocket';
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

export async function run(): Promise<Row[]> {
  const sizes = (process.env.BENCH_MEDIA_N || (process.env.BENCH_QUICK === '1' ? '1,50' : '1,100,200'))
    .split(',')
    .map(Number)
    .filter((x) => x > 0);
  const rows: Row[] = [];
  for (const n of sizes) rows.push(await once(n));
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
