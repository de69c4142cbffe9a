'use strict';
/** ESLint (flat config): typescript-eslint's recommended rules over the TypeScript sources and tests. */
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');
const globals = require('globals');

module.exports = tseslint.config(
  { ignores: ['dist/', 'coverage/', 'node_modules/', 'data/', 'test-artifacts/', 'bench/results/'] },
  // a disable comment that no longer silences anything is itself an error
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // Stripping control characters from hostile input (caller text, channel variables, AGI lines) is
      // deliberate here: the rule's "probably a mistake" does not apply.
      'no-control-regex': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
  {
    files: ['**/*.ts'],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    // Tests read back JSON (flow files, HTTP bodies, database rows, Node-RED messages) and check it with
    // expect(); typing every nested shape there buys nothing. Production code (src/, nodes/, bench/) keeps the rule.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // TODO(issue 13, engineer thin): the node files are being rewritten as thin wrappers over nodes/lib/kit.ts;
    // drop this block once they lint clean (nodes/lib/ is not covered by it).
    files: ['nodes/*/*.ts'],
    ignores: ['nodes/lib/**'],
    rules: {
      '@typescript-eslint/no-this-alias': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-require-imports': 'off',
    },
    linterOptions: { reportUnusedDisableDirectives: 'off' },
  },
  {
    files: ['**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { ...globals.node } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['dashboard/**/*.js'],
    languageOptions: { sourceType: 'module', globals: { ...globals.browser } },
  },
);
