#!/usr/bin/env node
/**
 * The Node-RED Flow Library's checker, `node-red-dev validate`, run offline against this package
 * (after `npm run build`). docs/contributing/testing.md#flow-library-checker says what it checks.
 *
 * Offline: the checker asks the network for the Flow Library catalogue (P08 similar names, N01 duplicate
 * node names), npm's record of node-red (P06, P07), each dependency's tree (D02) and each dependency's
 * latest version (D03). Here the catalogue is empty, node-red's record is the installed node-red's own
 * package.json, the dependency trees come from package-lock.json, and D03 is not checked (it needs the
 * registry: `FLOW_LIBRARY_ONLINE=1` runs the checker as published, network and all).
 *
 * The checker itself (pinned) is installed on first use into node_modules/.cache/node-red-dev, not as a
 * devDependency (it brings ~440 packages). Exit 1 when a check fails that is not in ACCEPTED below.
 */
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const Module = require('module');
const os = require('os');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const VERSION = '0.1.6';
const DIR = path.join(ROOT, 'node_modules', '.cache', 'node-red-dev');
const CHECKER = path.join(DIR, 'node_modules', 'node-red-dev');

/**
 * Findings we accept, with why; any other failed check fails the run. D01 (more than 6 runtime dependencies)
 * is not among them: what only the embedded parts need is in optionalDependencies, which it does not count
 * (docs/contributing/design.md#dependencies).
 */
const ACCEPTED = {
  P07:
    "engines.node is >=20.19, not Node-RED 4's >=18.5: the embedded MQTT broker (aedes 1.x) is an ES module loaded " +
    'with require(), which Node runs without a flag from 20.19; Node 18 is past its end of life',
};

function install() {
  if (fs.existsSync(path.join(CHECKER, 'package.json'))) {
    const v = JSON.parse(fs.readFileSync(path.join(CHECKER, 'package.json'), 'utf8')).version;
    if (v === VERSION) return;
  }
  fs.mkdirSync(DIR, { recursive: true });
  console.log(`installing node-red-dev@${VERSION} into ${path.relative(ROOT, DIR)}`);
  execFileSync(
    'npm',
    ['install', '--prefix', DIR, '--no-save', '--no-audit', '--no-fund', '--loglevel=error', `node-red-dev@${VERSION}`],
    { stdio: 'inherit' },
  );
}

/** name@version of every runtime package in the lockfile under `dep` (its own tree, as npm-remote-ls lists it). */
function lockTree(dep) {
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')).packages;
  const out = new Set();
  const visit = (name, from) => {
    // resolve as node does: nested node_modules first, then the top
    let dir = from;
    for (;;) {
      const key = `${dir ? `${dir}/` : ''}node_modules/${name}`;
      const p = lock[key];
      if (p) {
        const id = `${name}@${p.version}`;
        if (out.has(id)) return;
        out.add(id);
        for (const d of Object.keys({ ...p.dependencies, ...p.peerDependencies })) visit(d, key);
        return;
      }
      if (!dir) return;
      const i = dir.lastIndexOf('/node_modules/');
      dir = i < 0 ? '' : dir.slice(0, i);
    }
  };
  visit(dep, '');
  return [...out];
}

function stubNetwork() {
  const nodeRed = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', 'node-red', 'package.json'), 'utf8'));
  const axios = {
    get(url) {
      if (url === 'https://catalogue.nodered.org/catalogue.json') return Promise.resolve({ data: { modules: [] } });
      if (url === 'https://registry.npmjs.org/node-red')
        return Promise.resolve({
          data: {
            'dist-tags': { latest: nodeRed.version },
            versions: { [nodeRed.version]: { engines: nodeRed.engines } },
          },
        });
      return Promise.reject(new Error(`offline: ${url} is not stubbed`));
    },
  };
  const npmRemoteLs = { config() {}, ls: (name, _version, _flat, cb) => cb(lockTree(name)) };
  const npmCheck = () => Promise.resolve({ get: () => [] }); // D03 needs the registry
  const load = Module._load;
  Module._load = function (request, parent, isMain) {
    if (parent && parent.filename && parent.filename.startsWith(CHECKER + path.sep)) {
      if (request === 'axios') return axios;
      if (request === 'npm-remote-ls') return npmRemoteLs;
      if (request === 'npm-check') return npmCheck;
    }
    return load.call(this, request, parent, isMain);
  };
}

async function main() {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'nodes'))) throw new Error('run `npm run build` first');
  install();
  const online = process.env.FLOW_LIBRARY_ONLINE === '1';
  if (!online) stubNetwork();
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'flow-library-')), 'scorecard.json');
  const Validate = require(path.join(CHECKER, 'src', 'commands', 'validate.js'));
  await Validate.run(['--path', ROOT, '--output', out, '--embed', 'true']);
  const card = JSON.parse(fs.readFileSync(out, 'utf8'));
  const failed = Object.entries(card)
    .filter(([, v]) => v && typeof v === 'object' && v.test === false)
    .map(([k]) => k);
  console.log(`\nscorecard: ${JSON.stringify(card)}`);
  if (!online)
    console.log(
      'offline: catalogue empty (P08, N01), node-red from node_modules (P06, P07), D02 from the lockfile, D03 not checked',
    );
  const bad = failed.filter((k) => !ACCEPTED[k]);
  for (const k of failed.filter((x) => !bad.includes(x))) console.log(`accepted ${k}: ${ACCEPTED[k]}`);
  if (bad.length) {
    console.error(`Flow Library checker: failed ${bad.join(', ')}`);
    process.exit(1);
  }
  console.log('Flow Library checker: clean (but for the accepted findings above)');
  process.exit(0);
}

main().catch((err) => {
  console.error(`flow-library-check: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
