import { Text } from 'ink';

/** The keys of the current screen, e.g. `↑↓ move · Enter open · Esc back`. */
export function HelpLine({ keys }: { keys: [string, string][] }) {
  return <Text dimColor>{keys.map(([k, what]) => `${k} ${what}`).join(' · ')}</Text>;
}
