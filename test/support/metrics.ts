import { NodeMetrics } from '../../src/node/metrics.js';

/** Metrics of a node that is not running (all sources zero, no process metrics): for engine and admission rigs. */
export function idleNodeMetrics(): NodeMetrics {
  return new NodeMetrics(
    {
      height: () => 0,
      round: () => 0,
      peers: () => 0,
      mempool: () => ({ txs: 0, bytes: 0 }),
      integrity: () => ({ verifiedHeight: 0, alert: false }),
      payloadsMissing: () => 0,
    },
    { processMetrics: false },
  );
}
