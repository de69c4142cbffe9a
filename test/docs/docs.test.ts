/**
 * The documentation keeps one home per fact and cannot rot silently:
 * - the one environment-variable table (docs/guide/configuration.md) and .env.example agree both ways;
 * - no relative link in README.md or docs/**\/*.md is dead (the file, and the #anchor of a heading);
 * - the event payload tables of docs/reference/mqtt-events.md are what the event schemas render;
 * - docs/reference/msg.md names every field of the msg contract types (src/types/msg.ts);
 * - every node type has docs/nodes/<type>.md, the source of its editor help (no hand-written help left);
 * - source comments that point into docs/ point at files that exist;
 * - README.md stays a README (at most ~12 KB, quick start, security and resilience links).
 */
import fs from 'fs';
import path from 'path';
import { renderEventPayloads, updateEventPayloads, GENERATED_BEGIN } from '../../src/events/schema-doc';
import { validateEvent } from '../../src/events/schema';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { helpMarkdown, helpHtml } = require('../../scripts/node-help') as {
  helpMarkdown: (type: string, md: string, blobBase?: string) => string;
  helpHtml: (type: string, md: string, blobBase?: string) => string;
};

const ROOT = path.resolve(__dirname, '..', '..');
const read = (p: string) => fs.readFileSync(path.join(ROOT, p), 'utf8');
const pkg = JSON.parse(read('package.json')) as { 'node-red': { nodes: Record<string, string> } };
const NODE_TYPES = Object.keys(pkg['node-red'].nodes).sort();

function markdownFiles(): string[] {
  const out = ['README.md'];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const p = path.posix.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.md')) out.push(p);
    }
  };
  walk('docs');
  return out.sort();
}

/** Markdown with fenced code blocks and inline code removed (links there are examples, not links). */
function withoutCode(md: string): string {
  return md.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's heading anchors: rendered text, lower case, punctuation dropped, spaces to hyphens, -N for repeats. */
export function headingAnchors(md: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const text = md.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  for (const m of text.matchAll(/^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$/gm)) {
    const rendered = m[1]
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/<[^>]+>/g, '')
      .replace(/[`*~]/g, '');
    const base = rendered
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Names in backticks in the first column of every table whose first header is "Variable". */
function tableVariables(md: string): Map<string, string> {
  const vars = new Map<string, string>();
  const lines = md.split('\n');
  for (let i = 0; i + 1 < lines.length; i++) {
    if (!/^\|\s*Variable\s*\|/i.test(lines[i]) || !/^\|\s*:?-{3,}/.test(lines[i + 1])) continue;
    for (let j = i + 2; j < lines.length && lines[j].startsWith('|'); j++) {
      const first = lines[j].split('|')[1] ?? '';
      for (const m of first.matchAll(/`([A-Z][A-Z0-9_]*)`/g)) vars.set(m[1], lines[j]);
    }
  }
  return vars;
}

function envExampleNames(): Set<string> {
  const names = new Set<string>();
  for (const line of read('.env.example').split('\n')) {
    const m = /^#?\s*([A-Z][A-Z0-9_]*)=/.exec(line);
    if (m) names.add(m[1]);
  }
  return names;
}

describe('the environment-variable table', () => {
  const table = tableVariables(read('docs/guide/configuration.md'));
  const example = envExampleNames();

  test('is one table of many variables, and no other page has a variable table', () => {
    expect(table.size).toBeGreaterThan(80);
    const others = markdownFiles().filter((f) => f !== 'docs/guide/configuration.md' && tableVariables(read(f)).size > 0);
    expect(others).toEqual([]);
  });

  test('every variable of .env.example is in the table', () => {
    expect([...example].filter((v) => !table.has(v)).sort()).toEqual([]);
  });

  test('every variable of the table is in .env.example, or is marked "not in .env.example"', () => {
    const missing = [...table]
      .filter(([name, row]) => !example.has(name) && !/not in `?\.env\.example`?/.test(row))
      .map(([name]) => name);
    expect(missing.sort()).toEqual([]);
  });

  test('a table row has four cells (variable, npm start default, docker-compose, meaning)', () => {
    const bad = [...table.values()].filter((row) => row.trim().replace(/^\||\|$/g, '').split(' | ').length !== 4);
    expect(bad).toEqual([]);
  });
});

describe('links', () => {
  test('the anchor rule matches GitHub for the headings used here', () => {
    const a = headingAnchors(
      '# A\n## `POST /api/v1/campaigns` — create\n## Topic tree (v1)\n### campaign_progress\n## A\n```\n# not a heading\n```\n',
    );
    expect([...a]).toEqual(['a', 'post-apiv1campaigns--create', 'topic-tree-v1', 'campaign_progress', 'a-1']);
  });

  test('no relative link in README.md or docs/**/*.md is dead (files and #anchors)', () => {
    const dead: string[] = [];
    const anchorsOf = new Map<string, Set<string>>();
    const anchors = (file: string) => {
      if (!anchorsOf.has(file)) anchorsOf.set(file, headingAnchors(read(file)));
      return anchorsOf.get(file)!;
    };
    let checked = 0;
    for (const file of markdownFiles()) {
      const text = withoutCode(read(file));
      for (const m of text.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const target = m[1];
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
        checked++;
        const [rel, anchor] = target.split('#');
        const dest = rel ? path.posix.normalize(path.posix.join(path.posix.dirname(file), rel)) : file;
        if (dest.startsWith('..') || !fs.existsSync(path.join(ROOT, dest))) {
          dead.push(`${file}: ${target} (no such file)`);
          continue;
        }
        if (anchor !== undefined) {
          if (!dest.endsWith('.md')) dead.push(`${file}: ${target} (anchor into a non-markdown file)`);
          else if (!anchors(dest).has(decodeURIComponent(anchor))) dead.push(`${file}: ${target} (no such heading)`);
        }
      }
    }
    expect(checked).toBeGreaterThan(100);
    expect(dead).toEqual([]);
  });

  test('every repository file the docs name in backticks exists (src/..., test/..., asterisk-config/...)', () => {
    const missing: string[] = [];
    const top = 'src|nodes|test|bench|scripts|asterisk-config|deploy|flows|examples|dashboard|docs';
    const re = new RegExp(`\`((?:${top})/[\\w./-]+\\.[a-z]+)\``, 'g');
    for (const file of markdownFiles())
      for (const m of read(file).matchAll(re))
        if (!fs.existsSync(path.join(ROOT, m[1]))) missing.push(`${file}: ${m[1]}`);
    expect(missing).toEqual([]);
  });

  test('a dead link is found (the check can fail)', () => {
    const md = '# Title\n[x](#title) [y](#nope)';
    expect(headingAnchors(md).has('title')).toBe(true);
    expect(headingAnchors(md).has('nope')).toBe(false);
  });

  test('source comments that point into docs/ point at files that exist, and nothing points at docs/readme or DESIGN.md', () => {
    const bad: string[] = [];
    const walk = (dir: string) => {
      const abs = path.join(ROOT, dir);
      if (!fs.existsSync(abs)) return;
      for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
        const p = path.posix.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(ts|js|json|html|yml|sh|conf|template)$/.test(e.name) || e.name === 'Dockerfile') {
          const text = read(p);
          if (/docs\/readme\/|DESIGN\.md|ASTERISK-FACTS/.test(text)) bad.push(`${p}: cites a removed document`);
          for (const m of text.matchAll(/\bdocs\/[\w./-]+\.md\b/g))
            if (!fs.existsSync(path.join(ROOT, m[0]))) bad.push(`${p}: ${m[0]}`);
        }
      }
    };
    for (const d of ['src', 'nodes', 'scripts', 'bench', 'test', 'flows', 'examples', 'deploy', '.ci']) walk(d);
    for (const f of ['docker-compose.yml', 'Dockerfile'])
      if (/docs\/readme\/|DESIGN\.md/.test(read(f))) bad.push(`${f}: cites a removed document`);
    expect(bad.filter((b) => !b.startsWith('test/docs/docs.test.ts'))).toEqual([]);
  });
});

describe('generated and checked reference pages', () => {
  test('the event payload tables of docs/reference/mqtt-events.md are what the schemas render', () => {
    const doc = read('docs/reference/mqtt-events.md');
    expect(doc).toContain(GENERATED_BEGIN);
    // run `node scripts/docs.js` when this fails after a schema change
    expect(updateEventPayloads(doc)).toBe(doc);
    expect(renderEventPayloads()).toContain('### conversation_turn');
  });

  test('every JSON event shown in the docs is valid against its schema', () => {
    const shown: unknown[] = [];
    for (const file of markdownFiles())
      for (const m of read(file).matchAll(/```json\n([\s\S]*?)```/g))
        if (/"v":1,"type":"/.test(m[1])) shown.push(JSON.parse(m[1]));
    expect(shown.length).toBeGreaterThan(0);
    expect(shown.map((e) => validateEvent(e))).toEqual(shown.map(() => []));
  });

  test('docs/reference/msg.md names every field of the msg contract types', () => {
    const msgMd = read('docs/reference/msg.md');
    const sources = [read('src/types/msg.ts'), read('src/agi/call.ts')];
    const fields = new Set<string>();
    for (const src of sources)
      for (const body of src.matchAll(/export interface (?:Msg\w+|DialerMsg|AgiCall|TurnTiming)[^{]*\{([\s\S]*?)\n\}/g))
        for (const f of body[1].matchAll(/^\s+(\w+)\??:/gm)) fields.add(f[1]);
    expect(fields.size).toBeGreaterThan(30);
    const missing = [...fields].filter((f) => !f.startsWith('_') && !new RegExp(`\\b${f}\\b`).test(msgMd));
    expect(missing.sort()).toEqual([]);
  });
});

describe('node reference', () => {
  test('every node type has docs/nodes/<type>.md with a title, a summary and the help sections', () => {
    const problems: string[] = [];
    for (const type of NODE_TYPES) {
      const file = `docs/nodes/${type}.md`;
      if (!fs.existsSync(path.join(ROOT, file))) {
        problems.push(`${file} missing`);
        continue;
      }
      const md = read(file);
      if (!new RegExp(`^# .*\\(\`${type}\`\\)\\n\\n[A-Z]`).test(md)) problems.push(`${file}: title or summary`);
      if (!/^## Details$/m.test(md)) problems.push(`${file}: no ## Details`);
      const isConfig = /^ai-dialer-/.test(type);
      if (!isConfig && !(/^## Inputs$/m.test(md) && /^## Outputs$/m.test(md))) problems.push(`${file}: Inputs/Outputs`);
    }
    expect(problems).toEqual([]);
    const extra = fs
      .readdirSync(path.join(ROOT, 'docs', 'nodes'))
      .filter((f) => !NODE_TYPES.includes(f.replace(/\.md$/, '')));
    expect(extra).toEqual([]);
  });

  test('no hand-written help is left in nodes/ (the build generates it)', () => {
    const handWritten: string[] = [];
    for (const type of NODE_TYPES) {
      const dir = path.join(ROOT, 'nodes', type);
      const locale = path.join(dir, 'locales', 'en-US');
      if (fs.existsSync(path.join(locale, `${type}.html`))) handWritten.push(`nodes/${type}/locales/en-US/${type}.html`);
      if (!fs.existsSync(path.join(locale, `${type}.json`))) handWritten.push(`nodes/${type}: locale messages missing`);
      for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.html')))
        if (/data-help-name/.test(fs.readFileSync(path.join(dir, f), 'utf8'))) handWritten.push(`nodes/${type}/${f}`);
    }
    expect(handWritten).toEqual([]);
  });

  test('the help conversion drops the title, moves headings down, and links into the repository', () => {
    const md = '# x (`t`)\n\nSummary [a](ari-originate.md#details) [b](../guide/configuration.md) [c](#inputs) [d](https://e.x/)\n\n## Inputs\n\n```\n# kept\n```\n';
    const out = helpMarkdown('t', md, 'https://github.com/o/r/blob/main/');
    expect(out).toBe(
      'Summary [a](https://github.com/o/r/blob/main/docs/nodes/ari-originate.md#details) ' +
        '[b](https://github.com/o/r/blob/main/docs/guide/configuration.md) [c](#inputs) [d](https://e.x/)\n\n' +
        '### Inputs\n\n```\n# kept\n```\n',
    );
    expect(helpHtml('t', md, '')).toMatch(/^<!--[^\n]*-->\n<script type="text\/markdown" data-help-name="t">\n/);
    expect(() => helpMarkdown('t', 'a </script> b')).toThrow(/script/);
  });

  test('the build wrote the generated help for every node into dist/', () => {
    for (const type of NODE_TYPES) {
      const html = fs.readFileSync(path.join(ROOT, 'dist', 'nodes', type, 'locales', 'en-US', `${type}.html`), 'utf8');
      expect(html).toBe(helpHtml(type, read(`docs/nodes/${type}.md`)));
    }
  });
});

describe('README.md', () => {
  const readme = read('README.md');

  test('is a README: at most ~12 KB, with the quick start and the links that matter', () => {
    expect(Buffer.byteLength(readme)).toBeLessThanOrEqual(12 * 1024);
    for (const s of [
      'npm install && npm start',
      'npm test',
      'docs/images/dashboard.png',
      'adminAuth',
      '## Security',
      'docs/operations/security.md',
      'docs/operations/resilience.md',
      'docs/guide/configuration.md',
    ])
      expect(readme).toContain(s);
  });

  test('links every page under docs/', () => {
    const pages = markdownFiles().filter((f) => f.startsWith('docs/'));
    expect(pages.filter((p) => !readme.includes(`(${p}`))).toEqual([]);
  });
});
