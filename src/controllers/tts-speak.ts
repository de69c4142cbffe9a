/**
 * tts-speak: text (the node's template, msg.payload or msg.reply.text) to audio, played on the
 * call's AGI session; a conversation turn (msg.turn) gets its timings, is stored through the
 * call-record service and marked `msg.event = 'conversation_turn'` for call-broadcast.
 */
import { performance } from 'perf_hooks';
import { getSession } from '../agi/registry';
import { waitForBeepEnd } from '../agi/voicemail';
import { parseVoicemailSettings, settingOr } from '../campaign/call-settings';
import { rowOf, type CallRecords } from '../calls/records';
import { TtsService, createTtsEngine, sharedCache, type TtsResult } from '../speech/tts';
import { StageError, toStageError } from '../util/errors';
import { parseDurationMs, parseNumber, parseOptionalNumber } from '../util/config';
import { renderTemplate, templateContext } from '../util/template';
import type { Translate } from '../util/i18n';
import type { DialerMsg, MsgTurn } from '../types/msg';
import { failureStatus, status, type NodeView } from './view';

export interface TtsSpeakConfig {
  engine?: string;
  voice?: string;
  speed?: string;
  piperBin?: string;
  piperModel?: string;
  piperSpeaker?: string;
  wyomingHost?: string;
  wyomingPort?: string;
  wyomingSpeaker?: string;
  baseUrl?: string;
  model?: string;
  text?: string;
  escapeDigits?: string;
  audioDir?: string;
  cacheMb?: string;
  timeout?: string;
  play?: boolean;
  apiKey?: string;
}

export class TtsSpeakController {
  private service?: TtsService;
  private configError?: StageError;
  private active = 0;

  constructor(
    private readonly cfg: TtsSpeakConfig,
    private readonly view: NodeView,
    private readonly t: Translate,
    private readonly records?: CallRecords,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    try {
      const engine = createTtsEngine(
        {
          engine: cfg.engine || '',
          espeak: { voice: cfg.voice || undefined, speed: parseOptionalNumber(cfg.speed) },
          piper: {
            bin: cfg.piperBin || undefined,
            model: cfg.piperModel || undefined,
            speaker: parseOptionalNumber(cfg.piperSpeaker),
          },
          openai: {
            baseUrl: cfg.baseUrl || undefined,
            model: cfg.model || undefined,
            voice: cfg.voice || undefined,
            apiKey: cfg.apiKey || undefined,
            speed: parseOptionalNumber(cfg.speed),
          },
          wyoming: {
            host: cfg.wyomingHost || undefined,
            port: cfg.wyomingPort || undefined,
            voice: cfg.voice || undefined,
            speaker: cfg.wyomingSpeaker || undefined,
          },
        },
        env,
      );
      const cacheMb = parseNumber(cfg.cacheMb);
      this.service = new TtsService(
        engine,
        sharedCache(cfg.audioDir || undefined, cacheMb && cacheMb > 0 ? cacheMb * 1024 * 1024 : undefined, env),
        parseDurationMs(cfg.timeout, 15000),
      );
      view.status(status.idle(`${engine.name}${engine.voice ? ` (${engine.voice})` : ''}`));
    } catch (err) {
      this.configError = toStageError(err, 'tts');
      view.status(status.error(t('status.config')));
      view.error(this.configError.message);
    }
  }

  failed(err: Error): void {
    this.view.status(failureStatus(err));
  }

  /** The text to say for `msg`. */
  textOf(msg: DialerMsg): string {
    if (this.cfg.text && this.cfg.text.trim()) return renderTemplate(this.cfg.text, templateContext(msg));
    if (typeof msg.payload === 'string') return msg.payload;
    return typeof msg.reply?.text === 'string' ? msg.reply.text : '';
  }

  async handle(msg: DialerMsg, signal: AbortSignal): Promise<DialerMsg> {
    const svc = this.service;
    if (this.configError || !svc) throw this.configError ?? new StageError('tts', 'not_configured', 'not configured');
    const text = this.textOf(msg);
    const voicemail = msg.reply?.action?.type === 'voicemail';
    // an answering machine without a message to leave: nothing to say, the call just ends
    if (voicemail && !text.trim()) {
      msg.voicemail = { dropped: false };
      return msg;
    }
    this.active++;
    this.view.status(status.busy(this.t('status.speaking', { active: this.active })));
    let tts: TtsResult | undefined;
    try {
      tts = await svc.speak(text, { signal });
      msg.tts = {
        file: tts.file,
        durationMs: tts.durationMs,
        cached: tts.cached,
        engine: tts.engine,
        voice: tts.voice,
        elapsedMs: Math.round(tts.elapsedMs),
      };
      // the turn is stored before the callee hears it (a crash during playback loses nothing said)
      const turn = msg.turn && typeof msg.turn === 'object' ? msg.turn : undefined;
      const spoken =
        turn && this.records ? await this.records.spokenTurn(msg.call, turn, this.turnRow(turn, text, tts)) : undefined;
      const playbackMs = this.cfg.play !== false ? await this.play(msg, tts, voicemail) : undefined;
      if (turn) {
        this.finishTurn(msg, turn, text, tts, playbackMs);
        spoken?.played(rowOf(turn)); // the playback timing, in order behind it (not awaited)
      }
      const what = tts.cached ? this.t('status.cached') : this.t('status.synthesized');
      this.view.status(status.ok(`${what} ${(tts.durationMs / 1000).toFixed(1)} s`));
      return msg;
    } catch (err) {
      throw toStageError(err, 'tts', svc.engine.name);
    } finally {
      tts?.release();
      this.active--;
    }
  }

  /**
   * Play the audio on the call's AGI session; the playback time in ms. A voicemail message waits for
   * the end of the machine's greeting and beep first. A caller who is gone (the session ended, or
   * hung up during playback) is an ending, not a failure: msg.playback.hungUp and msg.call.hungUp.
   */
  private async play(msg: DialerMsg, tts: TtsResult, voicemail = false): Promise<number> {
    const sessionId = msg.call?.sessionId;
    const session = sessionId ? getSession(sessionId) : undefined;
    if (!session && sessionId) return this.gone(msg);
    if (!session) {
      throw new StageError(
        'playback',
        'not_found',
        sessionId
          ? `AGI session ${sessionId} has ended`
          : 'msg.call.sessionId is missing (wire this node after fastagi-in, or untick "play")',
        { engine: 'agi' },
      );
    }
    if (voicemail) {
      const vm = settingOr(parseVoicemailSettings, campaignSettings(msg).voicemail);
      const w = await waitForBeepEnd(session, { silenceMs: vm.beepSilenceMs, timeoutSeconds: vm.beepTimeoutSeconds });
      msg.voicemail = { dropped: false, beepWait: w.status, beepWaitMs: w.waitedMs };
      if (w.hungUp) return this.gone(msg);
    }
    const t0 = performance.now();
    let r;
    try {
      r = await session.streamFile(tts.playPath, {
        durationMs: tts.durationMs,
        escapeDigits: this.cfg.escapeDigits || undefined,
      });
    } catch (err) {
      if (err instanceof StageError && err.kind === 'hangup') return this.gone(msg);
      throw err;
    }
    const playbackMs = performance.now() - t0;
    msg.playback = { ...r, durationMs: Math.round(playbackMs) };
    if (r.hungUp && msg.call) msg.call.hungUp = true;
    if (voicemail && msg.voicemail) (msg.voicemail as Record<string, unknown>).dropped = !r.failed && !r.hungUp;
    if (r.failed && !r.hungUp && session.hungUp) return this.gone(msg);
    if (r.failed && !r.hungUp) {
      // endpos=0: nothing was played. Either Asterisk cannot read the file, or the caller hung up
      // at that very moment (its HANGUP line not here yet); session.hungUp tells once it is.
      throw new StageError(
        'playback',
        session.hungUp ? 'hangup' : 'not_found',
        session.hungUp
          ? 'the caller hung up before playback started'
          : `Asterisk could not play ${tts.file} (is the audio directory shared with Asterisk and readable by it? or the caller just hung up)`,
        { engine: 'agi' },
      );
    }
    return playbackMs;
  }

  /** The caller is gone: an ending (the flow's "call done?" sends it to the ending), not an error. */
  private gone(msg: DialerMsg): number {
    msg.playback = { ...((msg.playback as object) ?? {}), hungUp: true, failed: false, endpos: 0, durationMs: 0 };
    if (msg.call) {
      msg.call.hungUp = true;
      msg.call.hungUpBy ??= 'caller';
    }
    this.view.status(status.warn(this.t('status.hungUp')));
    return 0;
  }

  /** msg.turn as it is stored before playback. */
  private turnRow(turn: MsgTurn, text: string, tts: TtsResult): MsgTurn {
    return {
      ...turn,
      botText: turn.botText ?? text,
      timing: { ...(turn.timing ?? {}), ttsMs: Math.round(tts.elapsedMs) },
      engines: { ...(turn.engines ?? {}), tts: `${tts.engine}${tts.voice ? `:${tts.voice}` : ''}` },
    };
  }

  /** The turn is complete: timings and engines on msg.turn, announced as conversation_turn. */
  private finishTurn(
    msg: DialerMsg,
    turn: MsgTurn,
    text: string,
    tts: TtsResult,
    playbackMs: number | undefined,
  ): void {
    turn.timing = { ...(turn.timing ?? {}), ttsMs: Math.round(tts.elapsedMs) };
    if (playbackMs !== undefined) turn.timing.playbackMs = Math.round(playbackMs);
    if (turn.botText === undefined) turn.botText = text;
    turn.engines = { ...(turn.engines ?? {}), tts: `${tts.engine}${tts.voice ? `:${tts.voice}` : ''}` };
    msg.event = 'conversation_turn';
  }
}

/** The campaign's settings on the msg (llm-turn loads msg.campaign). */
function campaignSettings(msg: DialerMsg): Record<string, unknown> {
  const s = (msg.campaign as { settings?: unknown } | undefined)?.settings;
  return s && typeof s === 'object' ? (s as Record<string, unknown>) : {};
}
