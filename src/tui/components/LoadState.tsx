import { Text } from 'ink';
import type { AsyncState } from '../hooks/useAsync.js';

/** The line a screen shows while its data loads, or the error that ended the load; nothing once done. */
export function LoadState({ of, loading = 'loading…' }: { of: AsyncState<unknown>; loading?: string }) {
  if (of.state === 'loading') return <Text dimColor>{loading}</Text>;
  if (of.state === 'error') return <Text color="red">Error: {of.error}</Text>;
  return null;
}
