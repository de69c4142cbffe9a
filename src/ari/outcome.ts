/**
 * Hangup causes (Q.850, as Asterisk names them) and the one place that decides a call's outcome
 * from what ARI told us. See docs/nodes/ari-originate.md for the table.
 *
 * Asterisk facts (docs/contributing/simulator.md): the cause alone does not tell busy or congestion. A trunk answering SIP 486 gives
 * cause 17 and `dialstatus: BUSY`; in-band Busy()/Congestion() behind a Local channel gives cause 0
 * with `dialstatus: BUSY`/`CONGESTION`. No answer ends with cause 19 and last dialstatus `RINGING`.
 * So: the Dial event's dialstatus first, the ChannelDestroyed cause second.
 */

export type Outcome = 'answered' | 'completed' | 'busy' | 'no_answer' | 'congestion' | 'failed' | 'cancelled';
export type FinalOutcome = Exclude<Outcome, 'answered'>;

/** Cause codes we name (subset of Asterisk's causes.h, with its ast_cause2str texts). */
export const CAUSES: Record<number, string> = {
  0: 'Unknown',
  1: 'Unallocated (unassigned) number',
  3: 'No route to destination',
  16: 'Normal Clearing',
  17: 'User busy',
  18: 'No user responding',
  19: 'User alerting, no answer',
  20: 'Subscriber absent',
  21: 'Call Rejected',
  27: 'Destination out of order',
  28: 'Invalid number format',
  31: 'Normal, unspecified',
  34: 'Circuit/channel congestion',
  38: 'Network out of order',
  41: 'Temporary failure',
  42: 'Switching equipment congestion',
  44: 'Requested channel not available',
  127: 'Interworking, unspecified',
};

export function causeText(cause: number): string {
  return CAUSES[cause] ?? 'Unknown';
}

const CONGESTION_CAUSES = new Set([34, 38, 41, 42, 44]);
const NO_ANSWER_CAUSES = new Set([18, 19]);

export interface OutcomeInput {
  /** True once the channel was seen Up (answered). */
  answered: boolean;
  /** True when we hung it up on purpose (cancel input, node stop). */
  cancelled: boolean;
  /** The last meaningful dialstatus from Dial events ('' and PROGRESS ignored), upper case. */
  dialStatus?: string;
  /** ChannelDestroyed cause, when the channel was seen destroyed. */
  cause?: number;
}

/**
 * The final outcome of a call that has ended. Order: cancelled by us; answered -> completed;
 * dialstatus (BUSY, CONGESTION, NOANSWER, CHANUNAVAIL, CANCEL); then the cause code.
 */
export function finalOutcome(i: OutcomeInput): { outcome: FinalOutcome; reason: string } {
  if (i.cancelled) return { outcome: 'cancelled', reason: 'hung up by us' };
  if (i.answered) return { outcome: 'completed', reason: i.cause !== undefined ? causeText(i.cause) : 'ended' };
  const ds = (i.dialStatus ?? '').toUpperCase();
  switch (ds) {
    case 'BUSY':
      return { outcome: 'busy', reason: 'dialstatus BUSY' };
    case 'CONGESTION':
      return { outcome: 'congestion', reason: 'dialstatus CONGESTION' };
    case 'NOANSWER':
      return { outcome: 'no_answer', reason: 'dialstatus NOANSWER' };
    case 'CHANUNAVAIL':
      return {
        outcome: 'failed',
        reason: `endpoint unavailable (CHANUNAVAIL${i.cause !== undefined ? `, cause ${i.cause} ${causeText(i.cause)}` : ''})`,
      };
    case 'INVALIDARGS':
      return { outcome: 'failed', reason: 'invalid dial arguments' };
    default:
      break;
  }
  const c = i.cause;
  if (c === 17) return { outcome: 'busy', reason: 'cause 17 User busy' };
  if (c !== undefined && NO_ANSWER_CAUSES.has(c)) return { outcome: 'no_answer', reason: `cause ${c} ${causeText(c)}` };
  if (c !== undefined && CONGESTION_CAUSES.has(c))
    return { outcome: 'congestion', reason: `cause ${c} ${causeText(c)}` };
  // Rang, never answered, then cleared normally by the far end or the network: nobody picked up.
  if (ds === 'RINGING' && (c === 16 || c === 0 || c === undefined))
    return { outcome: 'no_answer', reason: 'rang, not answered' };
  if (c === undefined) return { outcome: 'failed', reason: 'channel ended without a cause' };
  return { outcome: 'failed', reason: `cause ${c} ${causeText(c)}` };
}

/**
 * AMD result for the flow. Asterisk's AMD() sets AMDSTATUS to MACHINE, HUMAN, NOTSURE or HANGUP
 * and AMDCAUSE to e.g. `TOOLONG-5000`. NOTSURE (including TOOLONG) takes the human path unless
 * `notSureAs` says 'machine'.
 */
export interface AmdResult {
  status: 'HUMAN' | 'MACHINE' | 'NOTSURE' | 'HANGUP' | 'NOTRUN';
  cause?: string;
  /** The path the flow should take. */
  path: 'human' | 'machine' | 'hangup';
}

export function classifyAmd(
  status: string | undefined,
  cause: string | undefined,
  opts: { notSureAs?: 'human' | 'machine' } = {},
): AmdResult {
  const s = (status ?? '').trim().toUpperCase();
  const c = cause?.trim() || undefined;
  switch (s) {
    case 'HUMAN':
      return { status: 'HUMAN', cause: c, path: 'human' };
    case 'MACHINE':
      return { status: 'MACHINE', cause: c, path: 'machine' };
    case 'NOTSURE':
      return { status: 'NOTSURE', cause: c, path: opts.notSureAs === 'machine' ? 'machine' : 'human' };
    case 'HANGUP':
      return { status: 'HANGUP', cause: c, path: 'hangup' };
    default:
      return { status: 'NOTRUN', path: 'human' };
  }
}
