/**
 * The runtime side of bench/conversation, run in its own process (so its CPU is its own): an AudioSocket
 * server and, per connection, a conversation loop in `record` or `stream` mode with `instant` or
 * `standin` engines. Talks to the parent over IPC: it is told the mode and the uuids to expect, reports
 * every turn's server-side timings and, at the end, its CPU time.
 *
 * stream: MediaSession (real WebRTC VAD endpointer, 600 ms end silence) -> utterance in memory ->
 *   transcribeSamples (or, by default as in the product, the early transcription the session asked for when
 *   the caller paused 300 ms, src/media/live-stt.ts; BENCH_CONV_EARLY=0: off) -> runTurn streaming tokens ->
 *   speakOnStream (sentence by sentence, paced frames).
 * record: the shape of today's path: the caller's audio is recorded until 2 s of silence (Asterisk's
 *   RECORD FILE s=2 test: mean magnitude under 256), written to a WAV file, transcribed whole, the whole
 *   reply decided, the whole reply synthesised to the cache, then played as paced frames.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { performance } from 'perf_hooks';
import { encodeWav, parseWav } from '../../src/audio/wav';
import { AudioSocketServer, type AudioSocketConnection } from '../../src/media/audiosocket';
import { Endpointer } from '../../src/media/endpointer';
import { speakOnStream } from '../../src/media/reply';
import { MediaSession, type MediaEndpointer } from '../../src/media/session';
import { takeEarly, type LiveSttProvider } from '../../src/media/live-stt';
import { TextQueue } from '../../src/llm/stream';
import { runTurn } from '../../src/llm/turn';
import { ConversationStore } from '../../src/llm/history';
import type { LlmDecision, LlmEngine, LlmRequest } from '../../src/llm/types';
import { transcribe, transcribeSamples, type SttEngine, type SttRequest } from '../../src/speech/stt';
import { SimTtsEngine } from '../../src/speech/tts-sim';
import { TtsService, type SynthOptions, type TtsEngine } from '../../src/speech/tts';
import { AudioCache } from '../../src/speech/tts-cache';

export type Mode = 'record' | 'stream';
export type Engines = 'instant' | 'standin';

export interface TurnReport {
  uuid: string;
  turn: number;
  /** Silence waited after the speech (endpointer, or the 2 s recording silence), ms. */
  endpointMs: number;
  /** The caller's wait for the transcript after the end of the turn (early: the rest of the early request). */
  sttMs: number;
  /** Stream: the transcript was the early one (asked when the caller paused, before the turn ended). */
  sttEarly?: boolean;
  /** Stream: to the first token; record: the whole reply. */
  llmMs: number;
  /** Stream: first sentence's synthesis; record: the whole reply's. */
  ttsMs: number;
  /**
   * Stream: the LLM's first token to the synthesis of the first piece starting, ms: the LLM writing the rest
   * of the first clause (it is not speakable before) plus the runtime's hand-over.
   */
  firstPieceMs?: number;
  /**
   * Stream: from the decision, ms: STT start, STT done, LLM first token, first piece's synthesis start and
   * end, first frame sent (BENCH_CONV_VERBOSE prints it).
   */
  trace?: number[];
  /** End of turn decided to our first reply frame sent, ms (this process's share of the wait). */
  serverMs: number;
  /** Stream time (ms of caller audio received) when the end of the turn was decided. */
  decidedAtMs: number;
  /** Detection to the last frame sent, when the reply was cut by barge-in. */
  bargeInStopMs?: number;
  /** Frame send gaps of this reply (ms), for pacing jitter. */
  gaps: number[];
}

/** Stand-in delays (issue 14): STT 150 ms, LLM first token 200 ms, TTS first audio 100 ms. */
export const STANDIN = { sttMs: 150, llmFirstMs: 200, llmPerWordMs: 15, ttsMs: 100 };

const sleep = (ms: number) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());

class BenchStt implements SttEngine {
  readonly name = 'bench-stt';
  /** Requests made (early ones included, aborted or not): the cost side of early transcription. */
  requests = 0;
  constructor(private readonly delayMs: number) {}
  async recognize(req: SttRequest): Promise<{ text: string }> {
    this.requests++;
    // an engine stops when aborted (the caller spoke again after an early request)
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, this.delayMs);
      req.signal?.addEventListener('abort', () => {
        clearTimeout(t);
        reject(new Error('aborted'));
      });
    });
    return { text: 'yes that works for me' };
  }
}

class BenchLlm implements LlmEngine {
  readonly name = 'bench-llm';
  readonly label = 'bench-llm';
  constructor(
    private readonly firstMs: number,
    private readonly perWordMs: number,
  ) {}
  /**
   * A different reply each call and turn, its first clause and first sentence included (so the TTS cache
   * does not hide the synthesis).
   */
  private reply(req: LlmRequest): string {
    const turn = req.history.length / 2;
    return `Thanks, caller ${req.callId}.${turn}, for your answer. Your appointment is on Tuesday at ten. Is there anything else?`;
  }
  async decide(req: LlmRequest): Promise<LlmDecision> {
    const text = this.reply(req);
    await sleep(this.firstMs + this.perWordMs * (text.split(' ').length - 1));
    return { text };
  }
  async stream(req: LlmRequest, onText: (t: string) => void): Promise<LlmDecision> {
    const text = this.reply(req);
    await sleep(this.firstMs);
    const words = text.match(/\S+\s*/g) ?? [];
    for (let i = 0; i < words.length; i++) {
      if (i) await sleep(this.perWordMs);
      onText(words[i]);
    }
    return { text };
  }
}

/** Sim TTS (synthetic speech of plausible length) after a fixed delay per request; records each request's time. */
class BenchTts implements TtsEngine {
  readonly name = 'bench-tts';
  readonly voice = 'synthetic';
  readonly identity = `bench-tts|${process.pid}`;
  private readonly sim = new SimTtsEngine();
  /** Per text: synthesis time (ms). */
  readonly took = new Map<string, number>();
  /** Per text: when its synthesis began (performance.now). */
  readonly began = new Map<string, number>();
  constructor(private readonly delayMs: number) {}
  /** Synthesis time of `text` in this turn (0 when it came from the cache). */
  take(text: string): number {
    const t = this.took.get(text) ?? 0;
    this.took.delete(text);
    return t;
  }
  /** When the synthesis of `text` began (undefined when it came from the cache). */
  takeBegan(text: string): number | undefined {
    const t = this.began.get(text);
    this.began.delete(text);
    return t;
  }
  async synthesize(text: string, o: SynthOptions): Promise<Buffer> {
    const t0 = performance.now();
    this.began.set(text, t0);
    await sleep(this.delayMs);
    const wav = await this.sim.synthesize(text, o);
    this.took.set(text, performance.now() - t0);
    return wav;
  }
}

/** Record mode's media: no endpointer (the recording's own silence test decides). */
const NO_ENDPOINTS: MediaEndpointer = { push: () => [], isSpeaking: () => false, reset: () => undefined };

function meanMagnitude(s: Int16Array): number {
  let m = 0;
  for (let i = 0; i < s.length; i++) m += s[i] < 0 ? -s[i] : s[i];
  return m / s.length;
}

/** Wrap the connection's sendAudio to time every frame sent (server-side pacing). */
function timeFrames(conn: AudioSocketConnection): { take(): number[] } {
  let last = 0;
  let gaps: number[] = [];
  const send = conn.sendAudio.bind(conn);
  conn.sendAudio = (s: Int16Array) => {
    const now = performance.now();
    if (last && now - last < 200) gaps.push(now - last);
    last = now;
    return send(s);
  };
  return {
    take: () => {
      const g = gaps;
      gaps = [];
      last = 0;
      return g;
    },
  };
}

async function main(): Promise<void> {
  const send = (m: unknown) => process.send?.(m);
  const cfg = await new Promise<{ mode: Mode; engines: Engines }>((r) =>
    process.once('message', (m) => r(m as { mode: Mode; engines: Engines })),
  );
  const standin = cfg.engines === 'standin';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-conv-'));
  const stt = new BenchStt(standin ? STANDIN.sttMs : 0);
  const llm = new BenchLlm(standin ? STANDIN.llmFirstMs : 0, standin ? STANDIN.llmPerWordMs : 0);
  const ttsEngine = new BenchTts(standin ? STANDIN.ttsMs : 0);
  const tts = new TtsService(ttsEngine, new AudioCache(path.join(dir, 'cache')));
  const store = new ConversationStore();
  const server = new AudioSocketServer({ maxConnections: 5000 });
  const addr = await server.listen();
  server.on('rejected', (r: { reason: string; message: string }) =>
    send({ error: `rejected: ${r.reason} ${r.message}` }),
  );
  // early transcription, as stt-transcribe offers it (on unless BENCH_CONV_EARLY=0)
  const earlyStt: LiveSttProvider | undefined =
    process.env.BENCH_CONV_EARLY === '0'
      ? undefined
      : { engine: stt.name, early: (audio, ctx) => transcribeSamples(stt, audio, { signal: ctx.signal }) };
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();

  const streamCall = async (conn: AudioSocketConnection, callNo: string) => {
    const frames = timeFrames(conn);
    const media = new MediaSession(conn, {
      endpointer: await Endpointer.create(),
      bargeIn: 'on',
      liveStt: (want) => (want === 'early' ? earlyStt : undefined),
    });
    for (let turn = 0; ; turn++) {
      const u = await media.nextUtterance();
      if (!u) break;
      const t0 = performance.now();
      const early = await takeEarly(u, earlyStt);
      const t = early ?? (await transcribeSamples(stt, u.audio));
      const sttMs = performance.now() - t0;
      const q = new TextQueue();
      const l0 = performance.now();
      let firstTok = 0;
      const turnP = runTurn(
        llm,
        {
          callId: callNo,
          userText: t.text,
          greeting: false,
          context: {},
          onText: (x) => {
            if (!firstTok) firstTok = performance.now() - l0;
            q.push(x);
          },
        },
        {},
        store,
      ).then(
        (r) => {
          q.end();
          return r;
        },
        (e) => {
          q.fail(e);
          throw e;
        },
      );
      const spoken = await speakOnStream(media, tts, q);
      await turnP.catch(() => undefined);
      // the first piece spoken: the reply's first clause or sentence (its synthesis is the TTS time waited)
      const firstSentence = spoken.firstText ?? spoken.text;
      const r: TurnReport = {
        uuid: conn.uuid,
        turn,
        endpointMs: u.endpointMs,
        decidedAtMs: u.endMs + u.endpointMs,
        serverMs: spoken.play.firstFrameAt !== undefined ? spoken.play.firstFrameAt - u.decidedAt : NaN,
        sttMs,
        sttEarly: early !== undefined,
        llmMs: firstTok,
        ttsMs: ttsEngine.take(firstSentence),
        gaps: frames.take(),
      };
      const began = ttsEngine.takeBegan(firstSentence);
      if (began !== undefined && firstTok) r.firstPieceMs = began - (l0 + firstTok);
      const at = (t: number) => Math.round((t - u.decidedAt) * 10) / 10;
      r.trace = [
        t0,
        t0 + sttMs,
        l0 + firstTok,
        began ?? NaN,
        (began ?? NaN) + r.ttsMs,
        spoken.play.firstFrameAt ?? NaN,
      ].map(at);
      if (spoken.play.bargeInStopMs !== undefined) r.bargeInStopMs = spoken.play.bargeInStopMs;
      send({ turn: r });
      if (media.closed) break;
    }
  };

  const recordCall = async (conn: AudioSocketConnection, callNo: string) => {
    const frames = timeFrames(conn);
    // the "recording": frames since the last reply ended, ended by 2 s of silence after speech
    let rec: Int16Array[] = [];
    let heard = false;
    let silentMs = 0;
    let recording = true;
    let wake: (() => void) | undefined;
    let receivedMs = 0;
    let decidedAtMs = 0;
    conn.on('audio', (s: Int16Array) => {
      receivedMs += s.length / 8;
      if (!recording) return;
      rec.push(s.slice());
      const silent = meanMagnitude(s) < 256;
      if (!silent) heard = true;
      silentMs = silent ? silentMs + s.length / 8 : 0;
      if (heard && silentMs >= 2000) {
        recording = false;
        decidedAtMs = receivedMs;
        wake?.();
      }
    });
    const media = new MediaSession(conn, { endpointer: NO_ENDPOINTS, bargeIn: 'off' });
    media.on('close', () => wake?.());
    for (let turn = 0; ; turn++) {
      if (recording) await new Promise<void>((r) => (wake = r));
      if (media.closed) break;
      const samples = new Int16Array(rec.reduce((n, f) => n + f.length, 0));
      let off = 0;
      for (const f of rec) {
        samples.set(f, off);
        off += f.length;
      }
      const endpointMs = silentMs;
      const decidedAt = performance.now();
      const file = path.join(dir, `rec-${conn.uuid}-${turn}.wav`);
      await fs.promises.writeFile(file, encodeWav({ sampleRate: 8000, channels: 1, samples }));
      const t0 = performance.now();
      const t = await transcribe(stt, file);
      const sttMs = performance.now() - t0;
      const l0 = performance.now();
      const reply = await runTurn(llm, { callId: callNo, userText: t.text, greeting: false, context: {} }, {}, store);
      const llmMs = performance.now() - l0;
      const s0 = performance.now();
      const said = await tts.speak(reply.text);
      const ttsMs = performance.now() - s0;
      const wav = await fs.promises.readFile(said.file);
      said.release();
      const play = await media.play(parseWav(wav).samples);
      const serverMs = play.firstFrameAt !== undefined ? play.firstFrameAt - decidedAt : NaN;
      send({
        turn: {
          uuid: conn.uuid,
          turn,
          endpointMs,
          decidedAtMs,
          serverMs,
          sttMs,
          llmMs,
          ttsMs,
          gaps: frames.take(),
        },
      });
      rec = [];
      heard = false;
      silentMs = 0;
      recording = true;
      void fs.promises.rm(file, { force: true });
    }
  };

  let calls = 0;
  let framesIn = 0;
  let framesOut = 0;
  process.on('message', (m: { expect?: string[]; done?: boolean }) => {
    if (m.expect) {
      for (const uuid of m.expect) {
        const callNo = String(++calls);
        server
          .expect(uuid, { callId: callNo }, 60000)
          .then((conn) => {
            conn.once('close', () => {
              framesIn += conn.framesIn;
              framesOut += conn.framesOut;
            });
            return cfg.mode === 'stream' ? streamCall(conn, callNo) : recordCall(conn, callNo);
          })
          .catch((e) => send({ error: String(e && (e as Error).stack ? (e as Error).stack : e) }));
      }
      send({ expecting: m.expect.length });
    }
    if (m.done) {
      const cpu = process.cpuUsage(cpu0);
      send({
        cpu: {
          userMs: cpu.user / 1000,
          systemMs: cpu.system / 1000,
          wallMs: performance.now() - wall0,
          frames: framesIn + framesOut,
          sttRequests: stt.requests,
        },
      });
      fs.rmSync(dir, { recursive: true, force: true });
      setTimeout(() => process.exit(0), 50);
    }
  });
  send({ port: addr.port });
}

if (require.main === module) {
  main().catch((e) => {
    process.send?.({ error: String(e && (e as Error).stack ? (e as Error).stack : e) });
    process.exit(1);
  });
}
