#!/usr/bin/env node
'use strict';
/**
 * Regenerate the generated parts of the docs: the event payload tables of docs/reference/mqtt-events.md
 * (from src/events/schema.ts). Builds first when dist/ is stale. test/docs/docs.test.ts fails until
 * this has been run after a schema change.
 */
const fs = require('fs');
const path = require('path');
const { build, needsBuild } = require('./build');

const root = path.resolve(__dirname, '..');
if (needsBuild()) build();
const { updateEventPayloads } = require(path.join(root, 'dist', 'src', 'events', 'schema-doc.js'));
const file = path.join(root, 'docs', 'reference', 'mqtt-events.md');
const before = fs.readFileSync(file, 'utf8');
const after = updateEventPayloads(before);
if (after !== before) {
  fs.writeFileSync(file, after);
  console.log('updated docs/reference/mqtt-events.md');
} else {
  console.log('docs/reference/mqtt-events.md is up to date');
}
