#!/usr/bin/env node
'use strict';
/** `npm test`: build (the runtime and package tests load dist/), then run every Jest suite. */
const { spawnSync } = require('child_process');
const path = require('path');
const { build, needsBuild } = require('./build');

if (needsBuild()) build();
const jest = require.resolve('jest/bin/jest');
// PGlite loads parts of itself with dynamic import(), which Jest's VM supports only with this flag.
const env = {
  ...process.env,
  NODE_OPTIONS: [process.env.NODE_OPTIONS, '--experimental-vm-modules'].filter(Boolean).join(' '),
};
const r = spawnSync(process.execPath, [jest, ...process.argv.slice(2)], {
  stdio: 'inherit',
  env,
  cwd: path.resolve(__dirname, '..'),
});
process.exit(r.status === null ? 1 : r.status);
