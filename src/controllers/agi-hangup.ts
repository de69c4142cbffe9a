/**
 * agi-hangup: ends the call's AGI session (or, for a `transfer` reply action, hands the call to a
 * human: blind, or attended with a whisper to the agent and a fallback), then finalises the call record
 * through the call-record service.
 */
import { getSession } from '../agi/registry';
import { endMedia } from '../media/handoff';
import {
  DEFAULT_TRANSFER_CONTEXT,
  attendedTransfer,
  checkWhisperPath,
  parseTransferTarget,
  transferCall,
  type AttendedResult,
  type TransferTarget,
} from '../agi/transfer';
import type { AgiSession } from '../agi/types';
import type { CallRecords } from '../calls/records';
import { speakerFor } from '../calls/goodbye';
import { errorMessage } from '../util/errors';
import { parseNumber } from '../util/config';
import { renderTemplate, templateContext } from '../util/template';
import type { Translate } from '../util/i18n';
import type { DialerMsg, MsgTransfer } from '../types/msg';
import { status, type NodeView } from './view';

export interface AgiHangupConfig {
  transferContext?: string;
  /** `blind` (default) or `attended`; `msg.transfer.mode` overrides it per call. */
  transferMode?: string;
  /** Attended: how long the agent's phone rings, seconds (default 20). */
  agentTimeout?: string | number;
  /** Attended: what the agent hears before the bridge (a template); `msg.transfer.whisper` overrides it. */
  whisper?: string;
  /** Attended, agent not reached: `ai` (second output, the conversation goes on) or `message` (say it, hang up). */
  noAgent?: string;
  /** The line for the caller when the agent is not reached (a template). */
  noAgentMessage?: string;
}

export const DEFAULT_WHISPER =
  'Call from the AI dialer. {{contact.name|A caller}}, {{call.phone|number unknown}}. {{transfer.summary}}';
export const DEFAULT_NO_AGENT_AI =
  'I am sorry, nobody can take your call right now. Is there anything else I can help you with?';
export const DEFAULT_NO_AGENT_MESSAGE =
  'I am sorry, nobody can take your call right now. We will call you back. Goodbye.';

/** The node's outputs: [done (hung up / transferred), agent not reached: back to the conversation]. */
type Out = [DialerMsg | null, DialerMsg | null];

export class AgiHangupController {
  private readonly transferContext: string;
  private readonly mode: 'blind' | 'attended';
  private readonly agentTimeoutS: number;
  private readonly noAgent: 'ai' | 'message';

  constructor(
    private readonly cfg: AgiHangupConfig,
    private readonly view: NodeView,
    private readonly t: Translate,
    private readonly records?: CallRecords,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.transferContext = cfg.transferContext || env.TRANSFER_CONTEXT || DEFAULT_TRANSFER_CONTEXT;
    this.mode = cfg.transferMode === 'attended' ? 'attended' : 'blind';
    this.agentTimeoutS = parseNumber(cfg.agentTimeout, { min: 1, max: 600, fallback: 20 });
    this.noAgent = cfg.noAgent === 'message' ? 'message' : 'ai';
  }

  failed(err: Error): void {
    this.view.status(status.error(errorMessage(err)));
  }

  async handle(msg: DialerMsg): Promise<Out> {
    const id = msg.call?.sessionId;
    const session = id ? getSession(id) : undefined;
    const wasUp = !!session && !session.hungUp;
    const action = msg.reply?.action as { type?: string; destination?: unknown; summary?: unknown } | undefined;
    // the dialer is ending the call itself (a drain): its session says the goodbye (stream mode: on the
    // media, which it then ends) and hangs up; the flow's transfer is refused like its other commands
    if (session?.ending) return [await this.hangUp(msg, session, wasUp), null];
    // stream mode: end the call's media first, so the AGI session has control again (EXEC AudioSocket returns)
    await endMedia(id);
    if (action?.type === 'transfer' && session && wasUp) {
      const target = parseTransferTarget(action.destination, this.transferContext);
      const want = (msg.transfer as { mode?: unknown } | undefined)?.mode;
      const mode = want === 'attended' || want === 'blind' ? want : this.mode;
      if (mode === 'attended') return this.attended(msg, session, target, action.summary);
      return [await this.blind(msg, session, target), null];
    }
    return [await this.hangUp(msg, session, wasUp), null];
  }

  private async hangUp(msg: DialerMsg, session: AgiSession | undefined, wasUp: boolean): Promise<DialerMsg> {
    if (session) {
      try {
        await session.hangup();
      } finally {
        session.close();
      }
    } // else already gone (the caller hung up, or a second hangup): not an error
    if (msg.call) {
      msg.call.hungUp = true;
      if (session) msg.call.hungUpBy = wasUp ? 'agi' : 'caller';
    }
    await this.records?.finalise(msg.call);
    this.view.status(wasUp ? status.ok(this.t('status.done')) : status.idle(this.t('status.gone')));
    return msg;
  }

  /** The call leaves the AI for a human: the dialplan continues at the destination. */
  private async blind(msg: DialerMsg, session: AgiSession, target: TransferTarget): Promise<DialerMsg> {
    try {
      await transferCall(session, target);
    } catch (err) {
      session.close();
      throw err;
    }
    const where = `${target.extension}@${target.context}`;
    const transfer: MsgTransfer = { to: where, mode: 'blind', status: 'transferred', at: new Date().toISOString() };
    msg.call = { ...(msg.call ?? {}), transferredTo: where, transfer };
    await this.records?.transferred(msg.call, transfer);
    await this.records?.finalise(msg.call);
    transferEvent(msg, transfer);
    this.view.status(status.busy(this.t('status.transferred', { to: target.extension })));
    return msg;
  }

  /**
   * Dial the agent with a whisper; bridged: the call ends with the bridge. Not reached: back to the
   * conversation (second output) or the no-agent message and a hangup, per the node's setting.
   */
  private async attended(msg: DialerMsg, session: AgiSession, target: TransferTarget, summary: unknown): Promise<Out> {
    const where = `${target.extension}@${target.context}`;
    this.view.status(status.busy(this.t('status.dialingAgent', { to: target.extension })));
    const whisper = await this.whisperAudio(msg, summary);
    let r: AttendedResult;
    try {
      r = await attendedTransfer(session, target, { timeoutSeconds: this.agentTimeoutS, whisperPath: whisper?.path });
    } finally {
      whisper?.release?.();
    }
    const transfer: MsgTransfer = {
      to: where,
      mode: 'attended',
      status: r.status,
      dialStatus: r.dialStatus,
      whisper: !!whisper,
      at: new Date().toISOString(),
      elapsedMs: r.elapsedMs,
    };
    const reached = r.status === 'answered';
    if (!reached && !r.callerHungUp) transfer.fallback = this.noAgent;
    msg.call = { ...(msg.call ?? {}), transfer, ...(reached ? { transferredTo: where } : {}) };
    await this.records?.transferred(msg.call, transfer);
    if (!reached && !r.callerHungUp && this.noAgent === 'ai') {
      // the caller is still ours: the conversation goes on (the flow speaks msg.reply.text and listens)
      const line = this.line(this.cfg.noAgentMessage, DEFAULT_NO_AGENT_AI, msg);
      msg.reply = { text: line, done: false };
      msg.payload = line;
      this.view.status(status.idle(this.t('status.noAgent', { to: target.extension, status: r.status })));
      return [null, transferEvent(msg, transfer)];
    }
    if (!reached && !r.callerHungUp) await this.say(session, msg, DEFAULT_NO_AGENT_MESSAGE);
    transferEvent(msg, transfer);
    await this.hangUp(msg, session, !r.callerHungUp);
    this.view.status(
      reached
        ? status.ok(this.t('status.transferred', { to: target.extension }))
        : status.idle(this.t('status.noAgent', { to: target.extension, status: r.status })),
    );
    return [msg, null];
  }

  /** The whisper, in the call's voice: msg.transfer.whisper (the flow's text) or the node's template. */
  private async whisperAudio(
    msg: DialerMsg,
    summary: unknown,
  ): Promise<{ path: string; durationMs: number; release?(): void } | undefined> {
    const speaker = speakerFor(msg.call?.id);
    const own = (msg.transfer as { whisper?: unknown } | undefined)?.whisper;
    const sum = typeof summary === 'string' && summary.trim() ? summary.trim() : lastWords(msg);
    const ctx = { ...templateContext(msg), transfer: { summary: sum } };
    const text = (
      typeof own === 'string' && own.trim()
        ? own.trim().slice(0, 1000)
        : renderTemplate(this.cfg.whisper || DEFAULT_WHISPER, ctx, { maxLength: 1000 })
    ).trim();
    if (!text) return undefined;
    if (!speaker) {
      this.view.warn(
        `attended transfer of call ${msg.call?.id ?? '?'}: no voice for the whisper (no speak node spoke on this call); dialling without one`,
      );
      return undefined;
    }
    try {
      const a = await speaker(text);
      try {
        checkWhisperPath(a.path); // it goes into Playback() in the dialplan
      } catch (err) {
        a.release?.();
        throw err;
      }
      return a;
    } catch (err) {
      this.view.warn(
        `attended transfer: the whisper could not be synthesised (${errorMessage(err)}); dialling without one`,
      );
      return undefined;
    }
  }

  private line(template: string | undefined, fallback: string, msg: DialerMsg): string {
    return renderTemplate(template || fallback, templateContext(msg), { maxLength: 1000 }).trim() || fallback;
  }

  /** The no-agent message, then (by the caller) the hangup; a voice missing or a hangup meanwhile is fine. */
  private async say(session: AgiSession, msg: DialerMsg, fallback: string): Promise<void> {
    const speaker = speakerFor(msg.call?.id);
    if (!speaker) return;
    try {
      const a = await speaker(this.line(this.cfg.noAgentMessage, fallback, msg));
      try {
        await session.streamFile(a.path, { durationMs: a.durationMs });
      } finally {
        a.release?.();
      }
    } catch (err) {
      this.view.warn(`attended transfer: the no-agent message was not played (${errorMessage(err)})`);
    }
  }
}

/** The caller's last words (msg.turn.userText), for a whisper when the model gave no summary. */
function lastWords(msg: DialerMsg): string {
  const said = typeof msg.turn?.userText === 'string' ? msg.turn.userText.trim() : '';
  return said ? `They said: ${said.slice(0, 300)}` : '';
}

/** The transfer as a `status` event for call-broadcast (event type from msg). */
function transferEvent(msg: DialerMsg, t: MsgTransfer): DialerMsg {
  msg.event = 'status';
  msg.status = {
    status: 'in_progress',
    detail: `transfer (${t.mode}) to ${t.to}: ${t.status}${t.fallback ? `, fallback ${t.fallback}` : ''}`,
    transfer: t,
  };
  return msg;
}
