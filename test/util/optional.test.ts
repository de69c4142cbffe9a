/**
 * The optional dependencies (src/util/optional.ts): a package that is not installed fails with one
 * error naming it and the command that installs it; any other failure is passed on unchanged.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { createRequire } from 'module';
import { MissingPackageError, OPTIONAL_PACKAGES, requireOptional, resolveOptional } from '../../src/util/optional';

const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  optionalDependencies: Record<string, string>;
};

describe('optional dependencies', () => {
  test('package.json declares exactly the optional packages the code knows, none of them also required', () => {
    expect(Object.keys(pkg.optionalDependencies).sort()).toEqual(Object.keys(OPTIONAL_PACKAGES).sort());
    for (const name of Object.keys(OPTIONAL_PACKAGES)) expect(pkg.dependencies[name]).toBeUndefined();
  });

  test('installed ones resolve and load', () => {
    expect(resolveOptional('@electric-sql/pglite')).toMatch(/pglite/);
    expect(resolveOptional('@echogarden/fvad-wasm', '@echogarden/fvad-wasm/fvad.wasm')).toMatch(/fvad\.wasm$/);
  });

  test('a missing one: the error names the package, the feature and the install command', () => {
    const name = 'ai-dialer-no-such-package';
    let err: unknown;
    try {
      requireOptional(name, require, 'The test feature');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MissingPackageError);
    expect(err).toMatchObject({ code: 'missing_package', packageName: name });
    expect((err as Error).message).toBe(
      `The test feature needs the package ${name}, which is not installed (an optional dependency of ` +
        `node-red-contrib-ai-dialer, left out by npm --omit=optional or a failed install). Install it where the ` +
        `package is installed (for Node-RED: cd ~/.node-red && npm install ${name}), then restart.`,
    );
    // a known package gets its feature's name; a file inside a missing package names the package
    expect(() => resolveOptional('aedes', 'aedes/no-such-file.js')).toThrow(
      /^The embedded MQTT broker \(used when no MQTT_URL \/ external broker is set\) needs the package aedes, .*npm install aedes\),/,
    );
  });

  test('an installed package that fails on its own missing import is reported as that failure, not as itself missing', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-optional-'));
    try {
      fs.mkdirSync(path.join(dir, 'node_modules', 'broken-pkg'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'node_modules', 'broken-pkg', 'index.js'), "require('its-own-missing-dep');\n");
      const req = createRequire(path.join(dir, 'x.js'));
      let err: unknown;
      try {
        requireOptional('broken-pkg', req);
      } catch (e) {
        err = e;
      }
      expect(err).not.toBeInstanceOf(MissingPackageError);
      expect((err as NodeJS.ErrnoException).code).toBe('MODULE_NOT_FOUND');
      expect((err as Error).message).toMatch(/its-own-missing-dep/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
