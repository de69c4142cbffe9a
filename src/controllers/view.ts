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

/** Status shorthands so every node shows states the same way. */
export const status = {
  idle: (text: string): StatusLike => ({ fill: 'grey', shape: 'ring', text }),
  busy: (text: string): StatusLike => ({ fill: 'blue', shape: 'dot', text }),
  ok: (text: string): StatusLike => ({ fill: 'green', shape: 'dot', text }),
  warn: (text: string): StatusLike => ({ fill: 'yellow', shape: 'ring', text }),
  error: (text: string): StatusLike => ({ fill: 'red', shape: 'ring', text }),
};

/** The status after a failure: `<stage> <kind>` for stage errors, else the message's start. */
export function failureStatus(err: Error): StatusLike {
  const e = err as Error & { stage?: unknown; kind?: unknown };
  if (typeof e.stage === 'string' && typeof e.kind === 'string') return status.error(`${e.stage} ${e.kind}`);
  return status.error(err.message.slice(0, 60));
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
