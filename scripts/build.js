#!/usr/bin/env node
'use strict';
/**
 * Build: compile strict TypeScript to CommonJS in dist/, then lay out each node the way
 * Node-RED's loader wants it: dist/nodes/<name>/<name>.js beside <name>.html, locales/ and icons/. The
 * editor help (locales/en-US/<name>.html) is generated from docs/nodes/<name>.md (scripts/node-help.js).
 */
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { writeNodeHelp } = require('./node-help');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');

function copyDir(from, to) {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dst = path.join(to, entry.name);
    if (entry.isDirectory()) copyDir(src, dst);
    else fs.copyFileSync(src, dst);
  }
}

function build() {
  const tsc = require.resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });
  // the migrations are read at run time from the folder beside dist/src/store/migrations.js
  // (emptied first: a migration renamed or removed in the sources must not linger in dist/)
  fs.rmSync(path.join(dist, 'src', 'store', 'migrations'), { recursive: true, force: true });
  copyDir(path.join(root, 'src', 'store', 'migrations'), path.join(dist, 'src', 'store', 'migrations'));
  const nodesDir = path.join(root, 'nodes');
  const icons = path.join(root, 'icons');
  for (const name of fs.readdirSync(nodesDir)) {
    const dir = path.join(nodesDir, name);
    if (!fs.statSync(dir).isDirectory()) continue;
    const out = path.join(dist, 'nodes', name);
    fs.mkdirSync(out, { recursive: true });
    for (const f of fs.readdirSync(dir)) {
      if (f.endsWith('.html')) fs.copyFileSync(path.join(dir, f), path.join(out, f));
    }
    if (fs.existsSync(path.join(dir, 'locales'))) copyDir(path.join(dir, 'locales'), path.join(out, 'locales'));
    if (fs.existsSync(icons)) copyDir(icons, path.join(out, 'icons'));
  }
  writeNodeHelp(path.join(dist, 'nodes'));
  // the default flow is offered under Import > Examples too (Node-RED lists <package>/examples/*.json);
  // flows/ai-dialer.json stays the one source (git-ignored copy)
  fs.copyFileSync(path.join(root, 'flows', 'ai-dialer.json'), path.join(root, 'examples', 'default-flow.json'));
  fs.writeFileSync(path.join(dist, '.build-stamp'), new Date().toISOString() + '\n');
}

/** Newest modification time of the sources the build reads. */
function newestSource() {
  let newest = 0;
  const walk = (p) => {
    if (!fs.existsSync(p)) return;
    const st = fs.statSync(p);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
    else newest = Math.max(newest, st.mtimeMs);
  };
  for (const d of [
    'src',
    'nodes',
    'bench',
    'icons',
    'docs/nodes',
    'flows',
    'scripts/node-help.js',
    'tsconfig.json',
    'tsconfig.build.json',
  ])
    walk(path.join(root, d));
  return newest;
}

/** True when dist/ is missing or older than a source file. */
function needsBuild() {
  const stamp = path.join(dist, '.build-stamp');
  if (!fs.existsSync(stamp)) return true;
  return newestSource() > fs.statSync(stamp).mtimeMs;
}

module.exports = { build, needsBuild };

if (require.main === module) {
  try {
    build();
  } catch (err) {
    // tsc prints its own errors; anything else (a missing docs/nodes page, ...) says what it is here
    console.error(`build failed${err && err.stderr === undefined && err.message ? `: ${err.message}` : ''}`);
    process.exit(1);
  }
}
