/**
 * What the speech and LLM nodes put in `msg.error` when a stage fails.
 *
 * Policy (documented in each node's help, applied by the node kit's onInput): a failure goes to
 * output 2 with `msg.error` when output 2 is wired, and the node finishes with done() (the flow
 * handles it). When output 2 is NOT wired the node calls done(err) so a Catch node sees it. Never
 * both, so nothing is handled twice. Which outputs are wired is the kit's business (outputWired).
 */
import { toStageError, type StageError } from '../util/errors';
import type { MsgError } from '../types/msg';

export type FailureInfo = MsgError;

/** Any thrown value as a StageError of `stage` (unexpected errors become kind `internal`). */
export const asStageError = toStageError;

export function failureInfo(err: StageError): FailureInfo {
  const out: FailureInfo = { stage: err.stage, kind: err.kind, message: err.message };
  if (err.engine) out.engine = err.engine;
  return out;
}
