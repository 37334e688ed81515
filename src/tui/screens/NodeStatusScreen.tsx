import { Box, Text } from 'ink';
import { Screen } from '../components/Screen.js';
import { useApp } from '../context.js';
import { useKeys } from '../hooks/useKeys.js';

/** The node's full status, refreshed with the status bar. */
export function NodeStatusScreen() {
  const app = useApp();
  useKeys((_input, key) => {
    if (key.escape) app.back();
  });
  const s = app.status;
  const line = (label: string, value: string, color?: string) => (
    <Text>
      {label.padEnd(12)}
      <Text {...(color ? { color } : {})}>{value}</Text>
    </Text>
  );
  return (
    <Screen title="Node status" help={[['Esc', 'back']]}>
      {!s ? <Text dimColor>waiting for the node…</Text> : null}
      {s ? (
        <Box flexDirection="column">
          {line('node', `${s.node} (${s.hospital}, network ${s.network})`)}
          {line('api', app.apiUrl)}
          {line('peer id', s.peerId)}
          {line(
            'peers',
            `${s.peers.length}/${Math.max(0, s.validators - 1)} connected${s.peers.length ? `: ${s.peers.map((p) => p.slice(-8)).join(', ')}` : ''}`,
          )}
          {line('height', `${s.height}  ${s.headHash}`)}
          {line('finalized', `${s.finalizedHeight}  ${s.finalizedHash}`)}
          {line('round', `${s.round} · mempool ${s.mempool}`)}
          {s.sync?.active ? line('sync', `catching up to height ${s.sync.target}`, 'yellow') : null}
          {line(
            'integrity',
            s.integrity.ok ? `ok, verified to ${s.integrity.verifiedHeight}` : `FAILED at ${s.integrity.alert?.height}: ${s.integrity.alert?.problem}`,
            s.integrity.ok ? 'green' : 'red',
          )}
          {line('keystores', app.keystoreDir ?? s.keystoreDir)}
          {s.penalties && Object.keys(s.penalties).length
            ? line(
                'penalties',
                Object.entries(s.penalties)
                  .map(([peer, p]) => `${peer.slice(-8)}: ${p.rejected} rejected${p.bannedUntil ? ', banned' : ''}`)
                  .join('; '),
                'yellow',
              )
            : null}
        </Box>
      ) : null}
    </Screen>
  );
}
