/**
 * stt-transcribe: the recording (msg.recording.path, or WAV bytes/path in msg.payload) to text,
 * on msg.transcript, msg.payload and msg.turn. Failures are StageErrors (the node kit routes them).
 */
import { createSttEngine, transcribe, type SttEngine } from '../speech/stt';
import { encodeWav } from '../audio/wav';
import { getMedia } from '../media/registry';
import { StageError, toStageError } from '../util/errors';
import { parseDurationMs } from '../util/config';
import type { Translate } from '../util/i18n';
import type { DialerMsg } from '../types/msg';
import { failureStatus, status, type NodeView } from './view';

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
}

export class SttTranscribeController {
  private engine?: SttEngine;
  private configError?: StageError;
  private readonly timeoutMs: number;

  constructor(
    cfg: SttTranscribeConfig,
    private readonly view: NodeView,
    private readonly t: Translate,
    env: NodeJS.ProcessEnv = process.env,
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
    } catch (err) {
      this.configError = toStageError(err, 'stt');
      view.status(status.error(t('status.config')));
      view.error(this.configError.message);
    }
  }

  /** The status after a failure (the kit routes the failure itself). */
  failed(err: Error): void {
    this.view.status(failureStatus(err));
  }

  async handle(msg: DialerMsg, signal: AbortSignal): Promise<DialerMsg> {
    const eng = this.engine;
    if (this.configError || !eng) throw this.configError ?? new StageError('stt', 'not_configured', 'not configured');
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

/** What to transcribe: msg.recording.path, else WAV bytes or a .wav path in msg.payload. */
export function recordingOf(msg: DialerMsg): string | Buffer | undefined {
  if (typeof msg.recording?.path === 'string') return msg.recording.path;
  if (Buffer.isBuffer(msg.payload)) return msg.payload;
  if (typeof msg.payload === 'string' && msg.payload.endsWith('.wav')) return msg.payload;
  return undefined;
}
