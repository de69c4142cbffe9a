/**
 * stt-transcribe: the recording (msg.recording.path, or WAV bytes/path in msg.payload) to text,
 * on msg.transcript, msg.payload and msg.turn. Failures are StageErrors (the node kit routes them).
 */
import { performance } from 'perf_hooks';
import {
  createSttEngine,
  transcribe,
  transcribeSamples,
  transcriptOf,
  type SttEngine,
  type Transcript,
} from '../speech/stt';
import { encodeWav } from '../audio/wav';
import { getMedia } from '../media/registry';
import {
  bindLiveStt,
  offerLiveStt,
  takeEarly,
  type EarlySttContext,
  type LiveSttContext,
  type LiveSttProvider,
} from '../media/live-stt';
import type { CapturedUtterance } from '../media/session';
import { StageError, toStageError } from '../util/errors';
import { parseDurationMs } from '../util/config';
import type { Translate } from '../util/i18n';
import type { DialerMsg, MsgCall } from '../types/msg';
import { failureStatus, status, throttled, type NodeView } from './view';

export interface SttTranscribeConfig {
  engine?: string;
  voskUrl?: string;
  baseUrl?: string;
  model?: string;
  language?: string;
  wyomingHost?: string;
  wyomingPort?: string;
  wyomingModel?: string;
  responseFormat?: string;
  timeout?: string | number;
  apiKey?: string;
  /**
   * Stream mode, engines that do not stream: transcribe the utterance when the caller pauses, before the
   * turn ends (default on; false / 'false' / 'off': only once the turn has ended). See src/media/live-stt.ts.
   */
  early?: boolean | string;
}

export class SttTranscribeController {
  private engine?: SttEngine;
  private configError?: StageError;
  private readonly timeoutMs: number;
  /** Stream mode: this node's offer to transcribe callers live (engines that stream: Vosk) or early (the others). */
  private live?: LiveSttProvider;
  private withdraw?: () => void;
  private lastPartial = '';
  private readonly partialStatus = throttled(() =>
    this.view.status(status.busy(`… "${this.lastPartial.slice(0, 40)}"`)),
  );

  constructor(
    cfg: SttTranscribeConfig,
    private readonly view: NodeView,
    private readonly t: Translate,
    env: NodeJS.ProcessEnv = process.env,
    /** Stream mode: a partial result to send to the flow (the node's third output). */
    private readonly sendPartial?: (msg: DialerMsg) => void,
  ) {
    this.timeoutMs = parseDurationMs(cfg.timeout, 15000);
    try {
      this.engine = createSttEngine(
        {
          engine: cfg.engine || '',
          vosk: { url: cfg.voskUrl || undefined },
          openai: {
            baseUrl: cfg.baseUrl || undefined,
            model: cfg.model || undefined,
            apiKey: cfg.apiKey || undefined,
            language: cfg.language || undefined,
            responseFormat: (cfg.responseFormat as 'json' | 'verbose_json') || undefined,
          },
          wyoming: {
            host: cfg.wyomingHost || undefined,
            port: cfg.wyomingPort || undefined,
            model: cfg.wyomingModel || undefined,
            language: cfg.language || undefined,
          },
        },
        env,
      );
      view.status(status.idle(this.engine.name === 'sim' ? t('status.sim') : this.engine.name));
      this.offerLive(this.engine, earlyOn(cfg.early));
    } catch (err) {
      this.configError = toStageError(err, 'stt');
      view.status(status.error(t('status.config')));
      view.error(this.configError.message);
    }
  }

  /** The node is closing: no more live transcription by it. */
  close(): void {
    this.withdraw?.();
    this.withdraw = undefined;
    this.partialStatus.cancel();
  }

  /**
   * An engine that streams (Vosk) is offered for live transcription: the caller's speech is fed to it as
   * it arrives, each partial hypothesis goes to the flow (`sendPartial`), the final one waits with the
   * utterance. Another engine is offered for early transcription (unless `early` is off): the utterance so
   * far is sent when the caller pauses.
   */
  private offerLive(eng: SttEngine, early: boolean): void {
    const openStream = eng.openStream?.bind(eng);
    if (!openStream) {
      if (!early) return;
      this.live = {
        engine: eng.name,
        early: (audio: Int16Array, ctx: EarlySttContext) =>
          transcribeSamples(eng, audio, { timeoutMs: this.timeoutMs, signal: ctx.signal, simText: ctx.simText }),
      };
      this.withdraw = offerLiveStt(this.live);
      return;
    }
    this.live = {
      engine: eng.name,
      open: (ctx: LiveSttContext) => {
        let index = 0;
        return openStream({
          sampleRate: 8000,
          timeoutMs: this.timeoutMs,
          onPartial: (text) => {
            ctx.onPartial(text);
            this.partial(ctx, text, ++index);
          },
        });
      },
    };
    this.withdraw = offerLiveStt(this.live);
  }

  private partial(ctx: LiveSttContext, text: string, index: number): void {
    this.lastPartial = text;
    this.partialStatus();
    if (!this.sendPartial) return;
    const call = (ctx.call as MsgCall | undefined) ?? { sessionId: ctx.sessionId };
    this.sendPartial({
      topic: 'partial',
      payload: text,
      call: { ...call },
      partial: { text, index, engine: this.engine?.name ?? '' },
    });
  }

  /** The status after a failure (the kit routes the failure itself). */
  failed(err: Error): void {
    this.view.status(failureStatus(err));
  }

  async handle(msg: DialerMsg, signal: AbortSignal): Promise<DialerMsg> {
    const eng = this.engine;
    if (this.configError || !eng) throw this.configError ?? new StageError('stt', 'not_configured', 'not configured');
    const live = await this.liveResult(msg, eng, signal);
    if (live) return this.done(msg, live);
    const early = await this.earlyResult(msg, eng, signal);
    if (early) return this.done(msg, early);
    const input = recordingOf(msg) ?? streamedUtterance(msg);
    if (input === undefined)
      throw new StageError(
        'stt',
        'invalid_input',
        'no recording: set msg.recording.path (agi-record does) or msg.payload to WAV bytes',
        { engine: eng.name },
      );
    this.view.status(status.busy(this.t('status.listening')));
    let tr;
    try {
      tr = await transcribe(eng, input, { timeoutMs: this.timeoutMs, signal });
    } catch (err) {
      throw toStageError(err, 'stt', eng.name);
    }
    return this.done(msg, tr);
  }

  /**
   * Stream mode: the utterance's live transcript when this engine was fed while the caller spoke (its
   * final result is there at the end of the utterance, or in the few ms the engine takes to answer the end
   * of stream). undefined: transcribe it whole (not fed live, another engine, or the live stream failed).
   */
  private async liveResult(msg: DialerMsg, eng: SttEngine, signal: AbortSignal): Promise<Transcript | undefined> {
    if (msg.recording?.media !== 'stream' || !msg.call?.sessionId) return undefined;
    const media = getMedia(msg.call.sessionId);
    if (!media) return undefined;
    media.touch(msg.call);
    if (this.live) bindLiveStt(msg.call.sessionId, this.live);
    const u: CapturedUtterance | undefined = media.utterance(msg.recording.utteranceId);
    if (!u?.live || u.live.engine !== eng.name) return undefined;
    const t0 = performance.now();
    let onAbort: (() => void) | undefined;
    try {
      const r = await Promise.race([
        u.live.result,
        new Promise<never>((_, reject) => {
          onAbort = () => reject(new StageError('stt', 'network', 'aborted', { engine: eng.name }));
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
      const tr = transcriptOf(r, eng.name, u.endMs - u.startMs, performance.now() - t0);
      tr.live = true;
      return tr;
    } catch (err) {
      if (signal.aborted) throw toStageError(err, 'stt', eng.name);
      return undefined; // the live stream failed: the whole utterance is sent once more
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Stream mode: the utterance's early transcript when this node made it (the caller paused, then stayed
   * silent until the end of the turn): there, or awaited. undefined: transcribe it whole.
   */
  private async earlyResult(msg: DialerMsg, eng: SttEngine, signal: AbortSignal): Promise<Transcript | undefined> {
    if (msg.recording?.media !== 'stream' || !this.live?.early) return undefined;
    const u = getMedia(msg.call?.sessionId)?.utterance(msg.recording.utteranceId);
    if (!u) return undefined;
    try {
      return await takeEarly(u, this.live, signal);
    } catch (err) {
      throw toStageError(err, 'stt', eng.name);
    }
  }

  /** msg with the transcript: msg.transcript, msg.payload, msg.turn. */
  private done(msg: DialerMsg, tr: Transcript): DialerMsg {
    const rounded = { ...tr, elapsedMs: Math.round(tr.elapsedMs) };
    msg.transcript = rounded;
    msg.payload = tr.text;
    const turn = msg.turn && typeof msg.turn === 'object' ? msg.turn : (msg.turn = { timing: {} });
    turn.userText = tr.text;
    if (tr.confidence !== undefined) turn.confidence = tr.confidence;
    else delete turn.confidence;
    if (tr.simulated)
      turn.simulated = true; // shown as simulated wherever the text appears
    else delete turn.simulated;
    turn.timing = { ...(turn.timing ?? {}), sttMs: rounded.elapsedMs };
    turn.engines = { ...(turn.engines ?? {}), stt: tr.simulated ? 'sim (simulated)' : tr.engine };
    const shown = tr.text ? `"${tr.text}"` : this.t('status.silence');
    this.view.status(status.ok(tr.simulated ? `${this.t('status.simulated')} ${shown}` : shown));
    return msg;
  }
}

/**
 * Stream mode: the utterance the endpointer cut, from the call's media session (audio never travels in
 * msg), as an in-memory WAV; an empty WAV when the turn heard nothing (no input, or the caller left).
 */
function streamedUtterance(msg: DialerMsg): Buffer | undefined {
  const rec = msg.recording;
  if (rec?.media !== 'stream') return undefined;
  const u = getMedia(msg.call?.sessionId)?.utterance(rec.utteranceId);
  return encodeWav({ sampleRate: 8000, channels: 1, samples: u ? u.audio : new Int16Array(0) }, u?.simText);
}

/** The early-transcription setting: on unless false / 'false' / 'off' / '0'. */
function earlyOn(v: unknown): boolean {
  return !(v === false || (typeof v === 'string' && /^(false|off|0|no)$/i.test(v.trim())));
}

/** What to transcribe: msg.recording.path, else WAV bytes or a .wav path in msg.payload. */
export function recordingOf(msg: DialerMsg): string | Buffer | undefined {
  if (typeof msg.recording?.path === 'string') return msg.recording.path;
  if (Buffer.isBuffer(msg.payload)) return msg.payload;
  if (typeof msg.payload === 'string' && msg.payload.endsWith('.wav')) return msg.payload;
  return undefined;
}
