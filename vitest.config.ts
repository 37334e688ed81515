import { defineConfig } from 'vitest/config';

/**
 * Two groups: fast in-process tests run in parallel first; then the tests that start real node
 * processes run one file at a time (each starts up to four nodes, and the machine has two cores).
 */
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
            'test/node/store.test.ts',
            'test/node/payloadFiles.test.ts',
            'test/node/integrity.test.ts',
            'test/node/compaction.test.ts',
            'test/node/configExamples.test.ts',
            'test/node/aggregatorKey.test.ts',
            'test/node/allocator.test.ts',
            'test/node/stats/**/*.test.ts',
            'test/tui/**/*.test.tsx',
            'test/attacks/unit/**/*.test.ts',
          ],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'processes',
          include: [
            'test/node/singleNode.test.ts',
            'test/node/signatureWorkerDist.test.ts',
            'test/network/**/*.test.ts',
            'test/attacks/*.test.ts',
            'test/faults/**/*.test.ts',
            'test/e2e/**/*.test.{ts,tsx}',
          ],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
