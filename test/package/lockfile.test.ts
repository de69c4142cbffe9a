/**
 * A fresh `npm install` leaves package-lock.json alone: the lockfile's record of the package itself
 * (engines, dependencies, bin) is package.json's. (A mismatch made every fresh clone dirty at once.)
 */
import fs from 'fs';
import path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');
const read = (f: string) => JSON.parse(fs.readFileSync(path.join(ROOT, f), 'utf8')) as Record<string, any>;

test("the lockfile's root package agrees with package.json", () => {
  const pkg = read('package.json');
  const root = read('package-lock.json').packages[''];
  expect(root.name).toBe(pkg.name);
  expect(root.version).toBe(pkg.version);
  expect(root.engines).toEqual(pkg.engines);
  expect(root.dependencies).toEqual(pkg.dependencies);
  expect(root.optionalDependencies).toEqual(pkg.optionalDependencies);
  expect(root.devDependencies).toEqual(pkg.devDependencies);
  expect(root.bin).toEqual(pkg.bin);
  expect(root.license).toBe(pkg.license);
});
