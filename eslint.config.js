// Lint rules for the whole repository (`npm run lint`, run by `npm test`). Formatting is prettier's job.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', '.cluster/', 'bench-results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: 'module',
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        performance: 'readonly',
        URL: 'readonly',
        fetch: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        structuredClone: 'readonly',
        queueMicrotask: 'readonly',
        crypto: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      // prettier wraps code at 160; this catches long comments (strings and templates may run on).
      'max-len': ['error', { code: 160, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreUrls: true }],
    },
  },
  // The layering (ARCHITECTURE.md): dependencies point inward only, and LevelDB belongs to the store.
  {
    files: ['src/**/*.{ts,tsx}'],
    ignores: ['src/node/store/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [{ name: 'classic-level', message: 'LevelDB belongs to src/node/store/ (ask LedgerStore for a typed method).' }],
          patterns: [{ group: ['**/store/keys*', '**/store/testSupport*'], message: 'The key layout belongs to src/node/store/.' }],
        },
      ],
    },
  },
  {
    files: ['src/client/**', 'src/tui/**', 'src/api/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['classic-level'],
          patterns: [{ group: ['**/node/**', '!node:*'], message: 'The client side imports the contract from src/api/, nothing from src/node/.' }],
        },
      ],
    },
  },
  {
    files: ['src/records/**', 'src/consensus/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['classic-level', 'libp2p', 'ink', 'react'],
          patterns: [
            { group: ['**/node/**', '**/client/**', '**/tui/**', '**/cli/**', '**/api/**', '!node:*'], message: 'The core depends on nothing outside it.' },
          ],
        },
      ],
    },
  },
);
