import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NodeProcess } from '../../src/cli/nodeProcess.js';
import type { NetworkNode } from '../../src/cli/networkSetup.js';

/** What the byzantine harness (test/support/byzantineNode.ts, test-only) can be told to do. */
export const BEHAVIOURS = ['equivocate', 'invalid-payload', 'vote-flood', 'far-rounds', 'sync-strip', 'sync-alter', 'oversized', 'replay'] as const;
export type BehaviourName = (typeof BEHAVIOURS)[number];

export const BYZANTINE_ENTRY = join(dirname(fileURLToPath(import.meta.url)), 'byzantineNode.ts');

/**
 * Node `node` as a byzantine validator process: `node --import tsx byzantineNode.ts --behaviour … [args]`,
 * followed by NodeProcess's usual `<cli> node --config FILE --exit-with-stdin`, which the harness reads for
 * its config and stdin handling (and whose positional words it ignores). Same log file as the honest node.
 * tsx is resolved from the working directory (the repository root, where tests and scripts run).
 * With no behaviours the harness runs an unaltered node (a baseline with the same start-up path).
 */
export function byzantineProcess(node: NetworkNode, behaviours: readonly BehaviourName[], args: string[] = []): NodeProcess {
  return new NodeProcess(node.name, node.configFile, node.apiUrl, undefined, [
    '--import',
    'tsx',
    BYZANTINE_ENTRY,
    '--behaviour',
    behaviours.join(','),
    ...args,
  ]);
}
