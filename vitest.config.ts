import { defineConfig } from 'vitest/config';

/**
 * Two groups: fast in-process tests run in parallel first; then the tests that start real node
 * processes run one file at a time (each starts up to four nodes, and the machine has two cores).
 */
/** Tests under test/node/ that start node processes (the rest of test/node/ runs in process). */
const nodeProcessTests = ['test/node/singleNode.test.ts', 'test/node/metricsNode.test.ts', 'test/node/signatureWorkerDist.test.ts'];

export default defineConfig({
  test: {
    setupFiles: ['./src/polyfill.ts', './test/support/isolatedHome.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 90_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: [
            'test/records/**/*.test.ts',
            'test/consensus/**/*.test.ts',
            'test/p2p/**/*.test.ts',
            'test/node/**/*.test.ts',
            'test/tui/**/*.test.tsx',
            'test/attacks/unit/**/*.test.ts',
          ],
          // These start node processes: they run in the second group.
          exclude: ['**/node_modules/**', ...nodeProcessTests],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'processes',
          include: [...nodeProcessTests, 'test/network/**/*.test.ts', 'test/attacks/*.test.ts', 'test/faults/**/*.test.ts', 'test/e2e/**/*.test.{ts,tsx}'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
