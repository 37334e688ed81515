import { Box, Text } from 'ink';
import type { NodeStatusState } from '../hooks/useNodeStatus.js';

/**
 * Node name, peers, height, finalized height; and, the moment the node's integrity monitor reports a
 * problem, the red alert of PROTOCOL.md §8.3 ("No data integrity in the server's database").
 */
export function StatusBar({ node }: { node: NodeStatusState }) {
  const s = node.status;
  const alert = s && !s.integrity.ok ? s.integrity.alert : undefined;
  return (
    <Box flexDirection="column" borderStyle="single" borderTop borderBottom={false} borderLeft={false} borderRight={false}>
      {s ? (
        <Text>
          node <Text bold>{s.node}</Text> ({s.hospital}) · peers {s.peers.length}/{Math.max(0, s.validators - 1)} · height {s.height} · finalized{' '}
          {s.finalizedHeight} ·{' '}
          {s.integrity.ok ? <Text color="green">integrity ok (verified to {s.integrity.verifiedHeight})</Text> : <Text color="red">integrity FAILED</Text>}
        </Text>
      ) : (
        <Text dimColor>connecting to the node…</Text>
      )}
      {s && !s.integrity.ok ? (
        <Text color="red" bold>
          No data integrity in the server's database: {alert?.problem ?? 'integrity check failed'} (height {alert?.height ?? s.integrity.verifiedHeight + 1})
        </Text>
      ) : null}
      {s?.halted ? (
        <Text color="red" bold>
          Consensus halted at height {s.halted.height}: {s.halted.reason}
        </Text>
      ) : null}
      {node.error ? <Text color="red">Node unreachable: {node.error} (retrying)</Text> : null}
    </Box>
  );
}
