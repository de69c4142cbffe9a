/** A NodeView that records what a controller shows and logs, and an identity translator. */
import type { NodeView, StatusLike } from '../../src/controllers/view';
import type { Translate } from '../../src/util/i18n';

export interface RecordingView extends NodeView {
  statuses: StatusLike[];
  warnings: string[];
  logs: string[];
  errors: { text: string; msg?: object }[];
  last(): StatusLike | undefined;
}

export function recordingView(): RecordingView {
  const v: RecordingView = {
    statuses: [],
    warnings: [],
    logs: [],
    errors: [],
    status: (s) => void v.statuses.push(s),
    warn: (t) => void v.warnings.push(t),
    log: (t) => void v.logs.push(t),
    error: (text, msg) => void v.errors.push({ text, msg }),
    last: () => v.statuses[v.statuses.length - 1],
  };
  return v;
}

/** Returns the key and its variables, so tests assert which text was chosen. */
export const keys: Translate = (key, vars) => (vars ? `${key} ${JSON.stringify(vars)}` : key);
