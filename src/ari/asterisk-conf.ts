/**
 * A small parser for Asterisk .conf files (the subset the shipped asterisk-config/ uses): sections
 * `[name]`, `[name](template)`, `[name](!)`, `key = value`, `key => value`, `same => ...`,
 * `#include file`, `;` comments. Used by the config lint test and available to tooling.
 */
import fs from 'fs';
import path from 'path';

export interface ConfEntry {
  key: string;
  value: string;
  line: number;
}
export interface ConfSection {
  name: string;
  /** `(!)` templates and `(tpl)` inheritance. */
  options: string[];
  entries: ConfEntry[];
  file: string;
  line: number;
}
export interface ConfFile {
  file: string;
  sections: ConfSection[];
  includes: Array<{ target: string; line: number }>;
  errors: string[];
}

export function parseConf(text: string, file = 'inline'): ConfFile {
  const out: ConfFile = { file, sections: [], includes: [], errors: [] };
  let current: ConfSection | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    // Comments: `;` to end of line, except `\;`.
    const s = raw.replace(/(^|[^\\]);.*$/, '$1').trim();
    if (!s) return;
    if (s.startsWith('#include') || s.startsWith('#tryinclude')) {
      const m = /^#(?:try)?include\s+"?([^"]+?)"?\s*$/.exec(s);
      if (!m) out.errors.push(`${file}:${line}: malformed include`);
      else out.includes.push({ target: m[1], line });
      return;
    }
    if (s.startsWith('#exec')) {
      out.errors.push(`${file}:${line}: #exec is not allowed in shipped configuration`);
      return;
    }
    const sec = /^\[([^\]]+)\]\s*(?:\(([^)]*)\))?$/.exec(s);
    if (sec) {
      current = {
        name: sec[1].trim(),
        options: sec[2] ? sec[2].split(',').map((x) => x.trim()) : [],
        entries: [],
        file,
        line,
      };
      out.sections.push(current);
      return;
    }
    const kv = /^([A-Za-z0-9_.\-${}()]+)\s*(=>|=)\s*(.*)$/.exec(s);
    if (!kv) {
      out.errors.push(`${file}:${line}: cannot parse: ${s}`);
      return;
    }
    if (!current) {
      out.errors.push(`${file}:${line}: setting outside any [section]`);
      return;
    }
    current.entries.push({ key: kv[1], value: kv[3].trim(), line });
  });
  return out;
}

/** Parse a file and, recursively, what it #includes (relative to its folder). Missing includes are errors. */
export function loadConf(filePath: string, seen = new Set<string>()): ConfFile {
  const abs = path.resolve(filePath);
  const conf = parseConf(fs.readFileSync(abs, 'utf8'), path.basename(abs));
  seen.add(abs);
  for (const inc of conf.includes) {
    const target = path.resolve(path.dirname(abs), inc.target);
    if (!fs.existsSync(target)) {
      conf.errors.push(`${conf.file}:${inc.line}: #include ${inc.target} does not exist`);
      continue;
    }
    if (seen.has(target)) {
      conf.errors.push(`${conf.file}:${inc.line}: #include ${inc.target} is circular`);
      continue;
    }
    const sub = loadConf(target, seen);
    conf.sections.push(...sub.sections);
    conf.errors.push(...sub.errors);
  }
  return conf;
}

/** One dialplan priority line. */
export interface DialplanStep {
  context: string;
  exten: string;
  priority: string;
  label?: string;
  app: string;
  args: string;
}

/** The dialplan steps of extensions.conf sections (exten => and same =>). */
export function dialplanSteps(conf: ConfFile): DialplanStep[] {
  const steps: DialplanStep[] = [];
  for (const sec of conf.sections) {
    if (sec.name === 'general' || sec.name === 'globals') continue;
    let exten = '';
    for (const e of sec.entries) {
      if (e.key !== 'exten' && e.key !== 'same') continue;
      let rest = e.value;
      if (e.key === 'exten') {
        const c = rest.indexOf(',');
        exten = rest.slice(0, c).trim();
        rest = rest.slice(c + 1);
      }
      const c2 = rest.indexOf(',');
      let priority = rest.slice(0, c2).trim();
      const appPart = rest.slice(c2 + 1).trim();
      let label: string | undefined;
      const lm = /^([^()]+)\(([^)]+)\)$/.exec(priority);
      if (lm) {
        priority = lm[1];
        label = lm[2];
      }
      const am = /^([A-Za-z_]+)(?:\((.*)\))?$/.exec(appPart);
      steps.push({ context: sec.name, exten, priority, label, app: am ? am[1] : appPart, args: am?.[2] ?? '' });
    }
  }
  return steps;
}
