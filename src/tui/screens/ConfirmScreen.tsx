import { Text } from 'ink';
import { Screen } from '../components/Screen.js';
import { useApp } from '../context.js';
import { useKeys } from '../hooks/useKeys.js';

/** "Delete record …? y/n": y runs the action, n or Esc goes back. */
export function ConfirmScreen({ title, question, onYes }: { title: string; question: string; onYes(): void | Promise<void> }) {
  const { back, busy } = useApp();
  useKeys(
    (input, key) => {
      if (input === 'y' || input === 'Y') void onYes();
      else if (input === 'n' || input === 'N' || key.escape) back();
    },
    { isActive: !busy },
  );
  return (
    <Screen
      title={title}
      help={[
        ['y', 'yes'],
        ['n/Esc', 'no'],
      ]}
    >
      <Text>{question} (y/n)</Text>
    </Screen>
  );
}
