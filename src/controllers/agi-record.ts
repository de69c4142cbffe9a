/**
 * agi-record: one caller turn recorded on the call's AGI session (RECORD FILE with silence
 * detection); sets msg.recording and starts msg.turn (seq + 1, recordMs).
 */
import { getSession } from '../agi/registry';
import { getMedia } from '../media/registry';
import type { MediaSession } from '../media/session';
import { recordTurn } from '../agi/recording';
import { StageError, errorMessage } from '../util/errors';
import { parseNumber } from '../util/config';
import type { Translate } from '../util/i18n';
import type { DialerMsg } from '../types/msg';
import { status, type NodeView } from './view';

export interface AgiRecordConfig {
  silence?: string;
  maxSeconds?: string;
  beep?: boolean;
  escapeDigits?: string;
  /** Stream mode: no speech for this long ends the turn empty (no input), s (default 5). */
  noInput?: string;
}

/** Per-msg overrides (msg.record). */
interface RecordOverrides {
  maxSeconds?: number;
  silenceSeconds?: number;
  escapeDigits?: string;
  beep?: boolean;
}

/** A non-negative number, else `fallback`. */
function seconds(v: unknown, fallback: number): number {
  const n = parseNumber(v);
  return n !== undefined && n >= 0 ? n : fallback;
}

export class AgiRecordController {
  private active = 0;

  constructor(
    private readonly cfg: AgiRecordConfig,
    /** Where recordings go (recordingsDir of the node's setting). */
    private readonly dir: string,
    private readonly view: NodeView,
    private readonly t: Translate,
  ) {}

  failed(err: Error): void {
    if (err instanceof StageError && err.stage === 'record' && err.kind === 'not_found')
      this.view.status(status.error(this.t('status.noSession')));
    else this.view.status(status.error(errorMessage(err)));
  }

  async handle(msg: DialerMsg): Promise<DialerMsg> {
    const sessionId = msg.call?.sessionId;
    const session = sessionId ? getSession(sessionId) : undefined;
    if (!session && sessionId) {
      // the session closed (the caller hung up, or the call ended): an ending, not a failure
      msg.recording = { path: '', hungUp: true, durationMs: 0 };
      if (msg.call) {
        msg.call.hungUp = true;
        msg.call.hungUpBy ??= 'caller';
      }
      this.view.status(status.warn(this.t('status.hungUp')));
      return msg;
    }
    if (!session) {
      throw new StageError('record', 'not_found', 'msg.call.sessionId is missing (wire this node after fastagi-in)');
    }
    const o = (msg.record ?? {}) as RecordOverrides;
    const media = getMedia(session.id);
    if (media) return this.listen(msg, media, o);
    const maxSeconds = seconds(o.maxSeconds, seconds(this.cfg.maxSeconds, 30));
    const seq = (typeof msg.turn?.seq === 'number' && Number.isInteger(msg.turn.seq) ? msg.turn.seq : 0) + 1;
    this.active++;
    this.view.status(status.busy(this.t('status.recording', { active: this.active })));
    try {
      const r = await recordTurn(session, {
        dir: this.dir,
        callId: msg.call?.id ?? session.callId ?? session.id.slice(0, 8),
        seq,
        maxMs: maxSeconds > 0 ? Math.round(maxSeconds * 1000) : -1,
        silenceSeconds: seconds(o.silenceSeconds, seconds(this.cfg.silence, 2)),
        escapeDigits: typeof o.escapeDigits === 'string' ? o.escapeDigits : (this.cfg.escapeDigits ?? '#'),
        beep: typeof o.beep === 'boolean' ? o.beep : !!this.cfg.beep,
      });
      msg.recording = r.recording;
      msg.turn = { seq, timing: { recordMs: r.elapsedMs } };
      this.view.status(
        r.recording.hungUp
          ? status.warn(this.t('status.hungUp'))
          : status.ok(
              this.t('status.done', {
                seconds: (r.recording.durationMs / 1000).toFixed(1),
                digit: r.recording.digit ?? '',
              }),
            ),
      );
      return msg;
    } finally {
      this.active--;
    }
  }

  /**
   * Stream mode: the caller's next utterance on the live stream (the one that barged in, if any),
   * ended by the endpointer; no speech within the no-input time ends the turn empty.
   */
  private async listen(
    msg: DialerMsg,
    media: MediaSession,
    o: RecordOverrides & { noInputSeconds?: number },
  ): Promise<DialerMsg> {
    const seq = (typeof msg.turn?.seq === 'number' && Number.isInteger(msg.turn.seq) ? msg.turn.seq : 0) + 1;
    const noInput = seconds(o.noInputSeconds, seconds(this.cfg.noInput, 5));
    // the same keys end the turn as in record mode (RECORD FILE's escape digits)
    const escapeDigits = typeof o.escapeDigits === 'string' ? o.escapeDigits : (this.cfg.escapeDigits ?? '#');
    this.active++;
    this.view.status(status.busy(this.t('status.recording', { active: this.active })));
    const t0 = Date.now();
    try {
      if (msg.call) media.touch(msg.call);
      const u = await media.nextUtterance({ timeoutMs: Math.max(1, Math.round(noInput * 1000)), escapeDigits });
      const hungUp = !u && media.closed;
      msg.recording =
        u && u.audio.length
          ? {
              utteranceId: u.id,
              media: 'stream',
              durationMs: u.endMs - u.startMs,
              hungUp: false,
              bargedIn: u.bargedIn,
            }
          : { media: 'stream', durationMs: 0, hungUp };
      if (u?.digit !== undefined) msg.recording.digit = u.digit;
      const digits = media.takeDigits();
      if (digits) msg.recording.digits = digits;
      msg.turn = {
        seq,
        media: 'stream',
        timing: u ? { recordMs: Date.now() - t0, endpointMs: u.endpointMs } : { recordMs: Date.now() - t0 },
      };
      this.view.status(
        hungUp
          ? status.warn(this.t('status.hungUp'))
          : status.ok(
              this.t('status.done', {
                seconds: ((msg.recording.durationMs ?? 0) / 1000).toFixed(1),
                digit: msg.recording.digit ?? '',
              }),
            ),
      );
      return msg;
    } finally {
      this.active--;
    }
  }
}
