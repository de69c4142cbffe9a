/** Jest: TypeScript tests through ts-jest (transpile only; `npm run typecheck` does the type checking). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  testTimeout: 60000,
  maxWorkers: 2,
  // The runtime tests start servers; give every file its own process so no socket leaks across files.
  detectOpenHandles: false,
  // `npm test -- --coverage` (CI): the package's code, a summary for scripts/coverage-folders.js, and a floor
  collectCoverageFrom: ['src/**/*.ts', 'nodes/**/*.ts', '!**/*.d.ts'],
  coverageReporters: ['text-summary', 'json-summary', 'lcov'],
  // measured 2026-12-04 (full suite, PGlite + PostgreSQL): statements 89.6, branches 79.7, functions 87.4,
  // lines 92.5; the floor sits ~2.5 points below. Raise it when coverage rises; never lower it to pass.
  coverageThreshold: { global: { statements: 87, branches: 77, functions: 85, lines: 90 } },
};
