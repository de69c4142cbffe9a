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
};
