#!/usr/bin/env node
'use strict';
/** `npm start`: build if the sources changed, then run the embedded runtime (src/runtime/main.ts). */
const { build, needsBuild } = require('./build');

if (needsBuild()) {
  console.log('building...');
  try {
    build();
  } catch (err) {
    console.error('ai-dialer: the build failed (see above)');
    process.exit(1);
  }
}
require('../dist/src/runtime/main.js').main();
