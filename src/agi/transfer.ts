/**
 * Handing a call to a human: the AGI session sets where the dialplan continues (SET CONTEXT,
 * SET EXTENSION, SET PRIORITY) and ends without hanging up, so Asterisk carries on there.
 */
import { DialerError } from '../util/errors';
import type { AgiSession } from './types';

export const DEFAULT_TRANSFER_CONTEXT = 'ai-dialer-transfer';

export interface TransferTarget {
  context: string;
  extension: string;
}

/** `exten` or `exten@context`; only dialplan-safe characters, so nothing can be injected. */
export function parseTransferTarget(destination: unknown, defaultContext = DEFAULT_TRANSFER_CONTEXT): TransferTarget {
  const d = typeof destination === 'string' ? destination.trim() : '';
  const m = /^([A-Za-z0-9_+*#.-]{1,40})(?:@([A-Za-z0-9_-]{1,40}))?$/.exec(d);
  if (!m)
    throw new DialerError(
      'agi_bad_transfer',
      `transfer destination must be "extension" or "extension@context" (got ${JSON.stringify(d).slice(0, 60)})`,
    );
  if (!/^[A-Za-z0-9_-]{1,40}$/.test(defaultContext))
    throw new DialerError('agi_bad_transfer', `bad transfer context "${defaultContext}"`);
  return { extension: m[1], context: m[2] ?? defaultContext };
}

/** Point the channel at the target and close the AGI session (the channel stays up). */
export async function transferCall(session: AgiSession, target: TransferTarget): Promise<void> {
  await session.command(`SET CONTEXT ${target.context}`);
  await session.command(`SET EXTENSION ${target.extension}`);
  await session.command('SET PRIORITY 1');
  session.close();
}
