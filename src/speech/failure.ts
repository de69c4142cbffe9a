/**
 * What the speech and LLM nodes put in `msg.error` when a stage fails, and how they report it.
 *
 * Policy (documented in each node's help): a failure goes to output 2 with `msg.error` when output 2
 * is wired, and the node finishes with done() (the flow handles it). When output 2 is NOT wired the
 * node calls done(err) so a Catch node sees it. Never both, so nothing is handled twice.
 */
import { StageError, errorMessage, type Stage } from '../util/errors';

export interface FailureInfo {
  stage: string;
  kind: string;
  engine?: string;
  message: string;
}

/** Any thrown value as a StageError of `stage` (unexpected errors become kind `internal`). */
export function asStageError(err: unknown, stage: Stage, engine?: string): StageError {
  if (err instanceof StageError) return err;
  const e = err as { stage?: Stage; kind?: StageError['kind'] };
  if (e && typeof e === 'object' && typeof e.stage === 'string' && typeof e.kind === 'string') {
    return new StageError(e.stage, e.kind, errorMessage(err), { engine, cause: err });
  }
  return new StageError(stage, 'internal', errorMessage(err), { engine, cause: err });
}

export function failureInfo(err: StageError): FailureInfo {
  const out: FailureInfo = { stage: err.stage, kind: err.kind, message: err.message };
  if (err.engine) out.engine = err.engine;
  return out;
}

/** True when the node's output `index` has at least one wire. */
export function outputWired(node: unknown, index: number): boolean {
  const wires = (node as { wires?: unknown[][] }).wires;
  return Array.isArray(wires) && Array.isArray(wires[index]) && wires[index].length > 0;
}
