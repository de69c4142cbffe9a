/**
 * Node-RED's `RED._` runs i18next on every call; the per-turn nodes set their status on every call
 * turn (about 7% of CPU at 2,000 concurrent calls in bench/calls, 3.9% once fixed texts were memoised).
 * Texts without variables are translated once per process; texts with variables are translated once per
 * key and set of variable names, with markers in place of the values, and the values put in per call
 * (plain text: no i18next escaping or formatting of values). A `count` variable picks a plural form in
 * i18next, so such texts are translated every time.
 */
export type Translate = (key: string, vars?: Record<string, unknown>) => string;

/** Distinct templates kept (keys x variable-name sets; a node has a handful). */
const MAX_TEMPLATES = 2000;
const MARK = '\u0001';

export function memoTranslate(t: Translate): Translate {
  const cache = new Map<string, string>();
  /** key + variable names -> the translation split at the markers, with the variable name between parts. */
  const templates = new Map<string, { parts: string[]; names: string[] } | null>();
  return (key, vars) => {
    if (!vars) {
      let s = cache.get(key);
      if (s === undefined) {
        s = t(key);
        cache.set(key, s);
      }
      return s;
    }
    const names = Object.keys(vars);
    if (names.includes('count')) return t(key, vars);
    const tk = `${key}${MARK}${names.join(MARK)}`;
    let tpl = templates.get(tk);
    if (tpl === undefined) {
      const marks: Record<string, string> = {};
      names.forEach((n, i) => (marks[n] = `${MARK}${i}${MARK}`));
      const raw = t(key, marks);
      const split = raw.split(MARK);
      // parts at even indexes, a variable's index at odd ones; anything unexpected: no template
      const ok = split.length % 2 === 1 && split.every((p, i) => i % 2 === 0 || /^\d+$/.test(p));
      tpl = ok ? { parts: split, names } : null;
      if (templates.size >= MAX_TEMPLATES) templates.clear();
      templates.set(tk, tpl);
    }
    if (!tpl) return t(key, vars);
    let out = tpl.parts[0];
    for (let i = 1; i < tpl.parts.length; i += 2) {
      const v = vars[tpl.names[Number(tpl.parts[i])]];
      out += (v === undefined || v === null ? '' : String(v)) + tpl.parts[i + 1];
    }
    return out;
  };
}
