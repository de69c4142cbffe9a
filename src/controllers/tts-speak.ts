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
import { noteVoice, type CallSpeaker, type GoodbyeVoice } from '../calls/goodbye';
import { TtsService, createTtsEngine, normaliseTtsText, sharedCache, type TtsResult } from '../speech/tts';
import { StageError, toStageError } from '../util/errors';
import { parseDurationMs, parseNumber, parseOptionalNumber } from '../util/config';
import { renderTemplate, reportUnknown, templateContext, unknownPlaceholderText } from '../util/template';
import type { Translate } from '../util/i18n';
import type { DialerMsg, MsgCall, MsgTurn } from '../types/msg';
import { failureStatus, status, type NodeView } from './view';
import { getMedia } from '../media/registry';
import { speakOnStream } from '../media/reply';
import type { MediaSession, StreamedReply } from '../media/session';

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

  private readonly reported = new Set<string>();
  /** A placeholder naming nothing: one warning per placeholder and node, not spoken as a hole. */
  private readonly unknownPlaceholder = (path: string): void => {
    if (this.reported.has(path) || this.reported.size > 50) return;
    this.reported.add(path);
    this.view.warn(unknownPlaceholderText(path));
  };

  /** The text to say for `msg`. */
  textOf(msg: DialerMsg): string {
    if (this.cfg.text && this.cfg.text.trim())
      return renderTemplate(this.cfg.text, reportUnknown(templateContext(msg), this.unknownPlaceholder));
    if (typeof msg.payload === 'string') return msg.payload;
    return typeof msg.reply?.text === 'string' ? msg.reply.text : '';
  }

  async handle(msg: DialerMsg, signal: AbortSignal): Promise<DialerMsg> {
    const svc = this.service;
    if (this.configError || !svc) throw this.configError ?? new StageError('tts', 'not_configured', 'not configured');
    const media = this.cfg.play !== false ? getMedia(msg.call?.sessionId) : undefined;
    if (media) {
      media.touch(msg.call);
      this.noteStreamCall(msg);
    }
    // stream mode, a reply still being written by the LLM: spoken as it comes (unless a template overrides it)
    const streamed = media && !this.cfg.text?.trim() ? media.takeReply(msg.reply?.streamId) : undefined;
    if (media && streamed) return this.speakStream(msg, media, streamed.text, signal, streamed);
    const text = this.textOf(msg);
    const voicemail = msg.reply?.action?.type === 'voicemail';
    // an answering machine without a message to leave: nothing to say, the call just ends
    if (voicemail && !text.trim()) {
      msg.voicemail = { dropped: false };
      return msg;
    }
    if (media && !voicemail) return this.speakStream(msg, media, text, signal);
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
      const callId = msg.call?.id;
      if (callId !== undefined && callId !== null && callId !== '') {
        noteVoice(callId, this.voiceFor(msg.call as MsgCall), turn?.seq, this.speaker); // a drain's goodbye, if one comes
        const s = this.cfg.play !== false && msg.call?.sessionId ? getSession(msg.call.sessionId) : undefined;
        // the call is being ended by the dialer (it says its goodbye itself): this line is not heard
        if (s?.ending) throw new StageError('playback', 'hangup', 'the call is being ended by the dialer');
      }
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
   * Stream mode: the call's voice for a drain's goodbye (said on the media), and the dialer ending the
   * call (it says its goodbye itself) refuses this line.
   */
  private noteStreamCall(msg: DialerMsg): void {
    const callId = msg.call?.id;
    if (callId === undefined || callId === null || callId === '') return;
    const turn = msg.turn && typeof msg.turn === 'object' ? msg.turn : undefined;
    noteVoice(callId, this.voiceFor(msg.call as MsgCall), turn?.seq, this.speaker);
    if (msg.call?.sessionId && getSession(msg.call.sessionId)?.ending)
      throw new StageError('playback', 'hangup', 'the call is being ended by the dialer');
  }

  /** The call's voice for lines that are not turns (an attended transfer's whisper). */
  private readonly speaker: CallSpeaker = async (text) => {
    const svc = this.service;
    if (!svc) throw new StageError('tts', 'not_configured', 'no TTS engine');
    const tts = await svc.speak(text, {});
    return { path: tts.playPath, durationMs: tts.durationMs, release: () => tts.release() };
  };

  /** Say a line on `call` for the session's own goodbye: synthesised, stored as turn `seq`, then played by the session. */
  private voiceFor(call: MsgCall): GoodbyeVoice {
    return async (text, seq) => {
      const svc = this.service;
      if (!svc) return undefined;
      const tts = await svc.speak(text, {});
      const row: MsgTurn = {
        seq,
        botText: text,
        action: 'end_call',
        timing: { ttsMs: Math.round(tts.elapsedMs) },
        engines: { tts: `${tts.engine}${tts.voice ? `:${tts.voice}` : ''}` },
      };
      await this.records?.spokenTurn(call, row);
      return { path: tts.playPath, durationMs: tts.durationMs, release: () => tts.release() };
    };
  }

  /**
   * Stream mode: sentence by sentence on the call's live media, barge-in on. The turn is stored before
   * the caller hears it, and again with what was actually played (interrupted, playedText, timings).
   */
  private async speakStream(
    msg: DialerMsg,
    media: MediaSession,
    text: string | AsyncIterable<string>,
    signal: AbortSignal,
    streamed?: StreamedReply,
  ): Promise<DialerMsg> {
    const svc = this.service as TtsService;
    if (typeof text === 'string' && !normaliseTtsText(text))
      throw new StageError('tts', 'invalid_input', 'nothing to say (empty text)', { engine: svc.engine.name });
    this.active++;
    this.view.status(status.busy(this.t('status.speaking', { active: this.active })));
    try {
      const turn = msg.turn && typeof msg.turn === 'object' ? msg.turn : undefined;
      const engineLabel = `${svc.engine.name}${svc.engine.voice ? `:${svc.engine.voice}` : ''}`;
      // stored before the caller hears it (a streamed reply: once its text is known, below)
      let spokenLater: Awaited<ReturnType<CallRecords['spokenTurn']>>;
      const spoken =
        turn && this.records && typeof text === 'string'
          ? await this.records.spokenTurn(msg.call, turn, {
              ...turn,
              media: 'stream',
              botText: turn.botText ?? text,
              engines: { ...(turn.engines ?? {}), tts: engineLabel },
            })
          : undefined;
      const spoke = speakOnStream(media, svc, text, { signal, escapeDigits: this.cfg.escapeDigits || undefined });
      if (streamed) {
        spoke.catch(() => undefined);
        // the whole decision: msg.reply and the turn as record mode has them after llm-turn
        const d = await streamed.final;
        msg.reply = d.action
          ? { text: d.text, done: d.done, action: d.action, source: d.source }
          : { text: d.text, done: d.done, source: d.source };
        msg.payload = d.text;
        if (turn) {
          turn.botText = d.text;
          if (d.action) turn.action = d.action.type;
          else delete turn.action;
          turn.timing = { ...(turn.timing ?? {}), llmMs: d.llmMs };
          if (d.llmFirstTokenMs !== undefined) turn.timing.llmFirstTokenMs = d.llmFirstTokenMs;
          turn.engines = { ...(turn.engines ?? {}), llm: d.engine };
          if (this.records)
            spokenLater = await this.records.spokenTurn(msg.call, turn, {
              ...turn,
              media: 'stream',
              engines: { ...(turn.engines ?? {}), tts: engineLabel },
            });
        }
      }
      const r = await spoke;
      const said = typeof text === 'string' ? text : (msg.reply?.text ?? r.text);
      const heard = media.utterance(msg.recording?.utteranceId);
      msg.tts = {
        engine: r.engine,
        voice: r.voice,
        cached: r.cached,
        elapsedMs: r.ttsMs,
        sentences: r.sentences,
        media: 'stream',
      };
      msg.playback = {
        durationMs: r.play.playedMs,
        totalMs: r.play.totalMs,
        interrupted: r.play.interrupted,
        hungUp: r.play.hungUp,
      };
      if (r.play.digit !== undefined) (msg.playback as Record<string, unknown>).digit = r.play.digit;
      if (turn) {
        const timing = { ...(turn.timing ?? {}), ttsMs: r.ttsMs, playbackMs: r.play.playedMs };
        if (r.ttsFirstAudioMs !== undefined) timing.ttsFirstAudioMs = r.ttsFirstAudioMs;
        // an engine that does not stream gives its first token with the whole reply
        if (timing.llmFirstTokenMs === undefined && timing.llmMs !== undefined) timing.llmFirstTokenMs = timing.llmMs;
        if (heard && r.play.firstFrameAt !== undefined)
          timing.replyLatencyMs = Math.max(0, Math.round(r.play.firstFrameAt - heard.speechEndAt));
        turn.timing = timing;
        turn.media = 'stream';
        if (turn.botText === undefined) turn.botText = said;
        turn.interrupted = r.play.interrupted;
        if (r.play.interrupted) turn.playedText = r.playedText;
        else delete turn.playedText;
        turn.engines = { ...(turn.engines ?? {}), tts: engineLabel };
        msg.event = 'conversation_turn';
        (spoken ?? spokenLater)?.played(rowOf(turn));
      }
      this.view.status(
        r.play.interrupted
          ? status.warn(this.t('status.interrupted', { seconds: (r.play.playedMs / 1000).toFixed(1) }))
          : status.ok(`${this.t('status.streamed')} ${(r.play.playedMs / 1000).toFixed(1)} s`),
      );
      return msg;
    } catch (err) {
      throw toStageError(err, 'tts', svc.engine.name);
    } finally {
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
