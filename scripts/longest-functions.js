#!/usr/bin/env node
/**
 * Longest functions per folder (lines from the function's first to its last line, nested functions
 * included), for the "thin nodes" measure of issue 13.
 *
 *   node scripts/longest-functions.js [--top N] [folder ...]   (default: nodes src, top 3)
 *
 * Counts function declarations, function expressions, arrow functions, methods, accessors and
 * constructors in the .ts files under each folder (tests and .d.ts excluded).
 */
'use strict';
const fs = require('fs');
const path = require('path');
const ts = require('typescript');

const args = process.argv.slice(2);
let top = 3;
const folders = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--top') top = Number(args[++i]) || top;
  else folders.push(args[i]);
}
if (!folders.length) folders.push('nodes', 'src');

function files(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...files(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && !e.name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

function name(node, sf) {
  if (node.name && ts.isIdentifier(node.name)) return node.name.text;
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const p = node.parent;
  if (p && ts.isVariableDeclaration(p) && ts.isIdentifier(p.name)) return p.name.text;
  if (p && ts.isPropertyAssignment(p) && ts.isIdentifier(p.name)) return p.name.text;
  if (p && ts.isBinaryExpression(p)) return p.left.getText(sf).slice(0, 40);
  if (p && ts.isExportAssignment(p)) return 'export =';
  if (p && ts.isCallExpression(p)) return `(callback of ${p.expression.getText(sf).slice(0, 40)})`;
  return '(anonymous)';
}

function measure(file) {
  const text = fs.readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out = [];
  const visit = (node) => {
    if (ts.isFunctionLike(node) && node.body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      out.push({ file, line: start + 1, lines: end - start + 1, name: name(node, sf) });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

for (const folder of folders) {
  const all = files(folder).flatMap(measure);
  all.sort((a, b) => b.lines - a.lines);
  const outer = all.filter((f) => f.name !== 'export =');
  console.log(`${folder}/: ${all.length} functions`);
  for (const f of all.slice(0, top)) console.log(`  ${String(f.lines).padStart(4)}  ${f.file}:${f.line} ${f.name}`);
  if (outer.length !== all.length) {
    console.log(`  longest besides the 'export = function (RED)' wrappers:`);
    for (const f of outer.slice(0, top)) console.log(`  ${String(f.lines).padStart(4)}  ${f.file}:${f.line} ${f.name}`);
  }
  const over = (n) => all.filter((f) => f.lines > n && f.name !== 'export =').length;
  console.log(`  over 50 lines: ${over(50)}, over 100 lines: ${over(100)}`);
}
