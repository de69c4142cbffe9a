/**
 * agi-hangup: ends the call's AGI session (or, for a `transfer` reply action, hands the call to
 * the dialplan destination), then finalises the call record through the call-record service.
 */
import { getSession } from '../agi/registry';
import { endMedia } from '../media/handoff';
import { DEFAULT_TRANSFER_CONTEXT, parseTransferTarget, transferCall } from '../agi/transfer';
import type { AgiSession } from '../agi/types';
import type { CallRecords } from '../calls/records';
import { errorMessage } from '../util/errors';
import type { Translate } from '../util/i18n';
import type { DialerMsg } from '../types/msg';
import { status, type NodeView } from './view';

export interface AgiHangupConfig {
  transferContext?: string;
}

export class AgiHangupController {
  private readonly transferContext: string;

  constructor(
    cfg: AgiHangupConfig,
    private readonly view: NodeView,
    private readonly t: Translate,
    private readonly records?: CallRecords,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.transferContext = cfg.transferContext || env.TRANSFER_CONTEXT || DEFAULT_TRANSFER_CONTEXT;
  }

  failed(err: Error): void {
    this.view.status(status.error(errorMessage(err)));
  }

  async handle(msg: DialerMsg): Promise<DialerMsg> {
    const id = msg.call?.sessionId;
    const session = id ? getSession(id) : undefined;
    const wasUp = !!session && !session.hungUp;
    const action = msg.reply?.action as { type?: string; destination?: unknown } | undefined;
    // stream mode: end the call's media first, so the AGI session has control again (EXEC AudioSocket returns)
    await endMedia(id);
    if (action?.type === 'transfer' && session && wasUp) return this.transfer(msg, session, action.destination);
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
  private async transfer(msg: DialerMsg, session: AgiSession, destination: unknown): Promise<DialerMsg> {
    const target = parseTransferTarget(destination, this.transferContext);
    try {
      await transferCall(session, target);
    } catch (err) {
      session.close();
      throw err;
    }
    const where = `${target.extension}@${target.context}`;
    msg.call = { ...(msg.call ?? {}), transferredTo: where };
    await this.records?.finalise(msg.call);
    this.view.status(status.busy(this.t('status.transferred', { to: target.extension })));
    return msg;
  }
}
