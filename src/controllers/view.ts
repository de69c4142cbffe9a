/**
 * What a controller needs from the node that hosts it: a status line and a log. Controllers have
 * no Node-RED import; the node file passes itself (a Node-RED node satisfies this shape) and the
 * kit's translator.
 */
export type StatusFill = 'red' | 'green' | 'yellow' | 'blue' | 'grey';

/** The shape of Node-RED's node status (empty object: no status). */
export interface StatusLike {
  fill?: StatusFill;
  shape?: 'ring' | 'dot';
  text?: string;
}

export interface NodeView {
  status(s: StatusLike): void;
  warn(text: string): void;
  log(text: string): void;
  error(text: string, msg?: object): void;
}

/**
 * The longest status text a node shows (characters). The editor draws the text under the node without
 * clipping it, so a longer one runs into the nodes beside and below; Node-RED's own debug node cuts
 * its status at 32 too. The whole story goes to the log (view.warn / view.error), not the status.
 */
export const STATUS_MAX = 32;

/** `text` in at most STATUS_MAX characters: whitespace folded, cut with an ellipsis. */
export function fitStatus(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length <= STATUS_MAX ? one : `${one.slice(0, STATUS_MAX - 1).trimEnd()}…`;
}

/** A status with its text fitted (every status a node shows is built here). */
export function statusOf(fill: StatusFill, shape: 'ring' | 'dot', text: string): StatusLike {
  return { fill, shape, text: fitStatus(text) };
}

/** Status shorthands so every node shows states the same way. */
export const status = {
  idle: (text: string): StatusLike => statusOf('grey', 'ring', text),
  busy: (text: string): StatusLike => statusOf('blue', 'dot', text),
  ok: (text: string): StatusLike => statusOf('green', 'dot', text),
  warn: (text: string): StatusLike => statusOf('yellow', 'ring', text),
  error: (text: string): StatusLike => statusOf('red', 'ring', text),
};

/** The status after a failure: `<stage> <kind>` for stage errors, else the message's start. */
export function failureStatus(err: Error): StatusLike {
  const e = err as Error & { stage?: unknown; kind?: unknown };
  if (typeof e.stage === 'string' && typeof e.kind === 'string') return status.error(`${e.stage} ${e.kind}`);
  return status.error(err.message);
}

/** Calls `fn` at most once per `ms` (trailing): status lines under load. */
export function throttled(fn: () => void, ms = 250): { (): void; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const run = (() => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      fn();
    }, ms);
  }) as { (): void; cancel(): void };
  run.cancel = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  return run;
}
