#!/usr/bin/env node
'use strict';
/**
 * `npm run bench [area...]`: build if needed, then run each benchmark in dist/bench/<area>/index.js
 * and print its rows as a table. Areas: agi, ari, campaign, events, speech, api, calls, conversation (all when none given).
 */
const fs = require('fs');
const path = require('path');
const { build, needsBuild } = require('./build');

function table(rows) {
  if (!rows.length) return '(no rows)';
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v) =>
    v === undefined || v === null
      ? ''
      : typeof v === 'number'
        ? Number.isInteger(v)
          ? String(v)
          : v.toFixed(2)
        : String(v);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals) => '| ' + vals.map((v, i) => v.padEnd(widths[i])).join(' | ') + ' |';
  return [
    line(cols),
    '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|',
    ...rows.map((r) => line(cols.map((c) => cell(r[c])))),
  ].join('\n');
}

async function main() {
  if (needsBuild()) build();
  const root = path.resolve(__dirname, '..', 'dist', 'bench');
  const wanted = process.argv.slice(2);
  const areas = fs.existsSync(root)
    ? fs.readdirSync(root).filter((a) => fs.existsSync(path.join(root, a, 'index.js')))
    : [];
  const run = wanted.length
    ? wanted
    : ['agi', 'ari', 'campaign', 'events', 'speech', 'api', 'calls', 'conversation'].filter((a) => areas.includes(a));
  let failed = false;
  for (const area of run) {
    const file = path.join(root, area, 'index.js');
    if (!fs.existsSync(file)) {
      console.error(`no benchmark named "${area}" (have: ${areas.join(', ')})`);
      failed = true;
      continue;
    }
    console.log(`\n## bench/${area}`);
    const started = Date.now();
    try {
      const rows = await require(file).run();
      console.log(table(rows));
      console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
    } catch (err) {
      failed = true;
      console.error(`bench/${area} failed: ${err && err.stack ? err.stack : err}`);
    }
  }
  process.exit(failed ? 1 : 0);
}
main();
