/**
 * Node-RED's `RED._` runs i18next on every call; the per-turn nodes set their status on every call
 * turn (about 7% of CPU at 2,000 concurrent calls in bench/calls). Texts without variables are
 * translated once per process.
 */
export type Translate = (key: string, vars?: Record<string, unknown>) => string;

export function memoTranslate(t: Translate): Translate {
  const cache = new Map<string, string>();
  return (key, vars) => {
    if (vars) return t(key, vars);
    let s = cache.get(key);
    if (s === undefined) {
      s = t(key);
      cache.set(key, s);
    }
    return s;
  };
}
