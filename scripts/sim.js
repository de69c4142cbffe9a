#!/usr/bin/env node
'use strict';
/** `ai-dialer-sim` / `npm run sim`: the Asterisk simulator standalone (builds dist/ first when missing or stale). */
const path = require('path');
const fs = require('fs');

const entry = path.join(__dirname, '..', 'dist', 'src', 'sim', 'cli.js');
try {
  const b = require('./build');
  if (!fs.existsSync(entry) || (fs.existsSync(path.join(__dirname, '..', 'src')) && b.needsBuild())) b.build();
} catch (err) {
  if (!fs.existsSync(entry)) {
    console.error('ai-dialer-sim: build failed and no dist/ present:', err && err.message);
    process.exit(1);
  }
}
require(entry).main();
