/** Typed errors shared by every module. Nodes pass them to done(err) so Catch nodes see them. */

export class DialerError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message);
    this.name = 'DialerError';
    this.code = code;
    if (options && 'cause' in options) (this as { cause?: unknown }).cause = options.cause;
  }
}

export type Stage = 'tts' | 'stt' | 'llm' | 'agi' | 'ari' | 'store' | 'mqtt' | 'campaign' | 'playback' | 'record';
export type FailureKind =
  | 'network'
  | 'timeout'
  | 'bad_response'
  | 'not_installed'
  | 'not_configured'
  | 'hangup'
  | 'refused'
  | 'unauthorized'
  | 'not_found'
  | 'invalid_input'
  | 'internal';

/** A failure of one stage of a call, saying which stage, what kind of failure, and which engine. */
export class StageError extends DialerError {
  readonly stage: Stage;
  readonly kind: FailureKind;
  readonly engine?: string;
  constructor(stage: Stage, kind: FailureKind, message: string, options?: { engine?: string; cause?: unknown }) {
    super(`${stage}_${kind}`, `${stage}${options?.engine ? ` (${options.engine})` : ''}: ${message}`, options);
    this.name = 'StageError';
    this.stage = stage;
    this.kind = kind;
    this.engine = options?.engine;
  }
  toJSON(): Record<string, unknown> {
    return { code: this.code, stage: this.stage, kind: this.kind, engine: this.engine, message: this.message };
  }
}

/** Message of any thrown value, for logs and status lines. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Any thrown value as a StageError of `stage` (unexpected errors become kind `internal`). */
export function toStageError(err: unknown, stage: Stage, engine?: string): StageError {
  if (err instanceof StageError) return err;
  const e = err as { stage?: Stage; kind?: FailureKind } | null;
  if (e && typeof e === 'object' && typeof e.stage === 'string' && typeof e.kind === 'string') {
    return new StageError(e.stage, e.kind, errorMessage(err), { engine, cause: err });
  }
  return new StageError(stage, 'internal', errorMessage(err), { engine, cause: err });
}
