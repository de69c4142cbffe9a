#!/usr/bin/env node
'use strict';
/**
 * Coverage per folder from coverage/coverage-summary.json (written by `npm test -- --coverage`):
 * one line per folder of src/ and nodes/ with statements, branches, functions and lines covered.
 */
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const file = path.join(root, 'coverage', 'coverage-summary.json');
if (!fs.existsSync(file)) {
  console.error(`${path.relative(root, file)} not found: run npm test -- --coverage first`);
  process.exit(1);
}
const summary = JSON.parse(fs.readFileSync(file, 'utf8'));
const KEYS = ['statements', 'branches', 'functions', 'lines'];
const folders = new Map();
for (const [f, s] of Object.entries(summary)) {
  if (f === 'total') continue;
  const rel = path.relative(root, f).split(path.sep);
  const folder = rel[0] === 'nodes' ? 'nodes' : rel.slice(0, 2).join('/');
  const acc = folders.get(folder) ?? Object.fromEntries(KEYS.map((k) => [k, { covered: 0, total: 0 }]));
  for (const k of KEYS) {
    acc[k].covered += s[k].covered;
    acc[k].total += s[k].total;
  }
  folders.set(folder, acc);
}
const pct = (c) => (c.total ? ((100 * c.covered) / c.total).toFixed(1) : '100.0');
const rows = [...folders.entries()].sort(([a], [b]) => a.localeCompare(b));
console.log(`| folder | statements | branches | functions | lines |\n|---|---:|---:|---:|---:|`);
for (const [folder, acc] of rows) console.log(`| ${folder} | ${KEYS.map((k) => pct(acc[k])).join(' | ')} |`);
console.log(`| **total** | ${KEYS.map((k) => summary.total[k].pct.toFixed(1)).join(' | ')} |`);
