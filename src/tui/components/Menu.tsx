import { Box, Text } from 'ink';
import { useState } from 'react';
import { useKeys } from '../hooks/useKeys.js';

export interface MenuItem {
  /** A single key that selects the item directly. */
  hotkey: string;
  label: string;
  onSelect(): void;
}

/** A keyboard menu: ↑↓ (or j/k) and Enter, or an item's hotkey; Esc calls onBack. */
export function Menu({ items, onBack, isActive = true }: { items: MenuItem[]; onBack?: () => void; isActive?: boolean }) {
  const [index, setIndex] = useState(0);
  useKeys(
    (input, key) => {
      if (key.escape) return onBack?.();
      if (key.upArrow || input === 'k') return setIndex((i) => (i + items.length - 1) % items.length);
      if (key.downArrow || input === 'j') return setIndex((i) => (i + 1) % items.length);
      if (key.return) return items[index]?.onSelect();
      const hit = items.find((it) => it.hotkey === input);
      hit?.onSelect();
    },
    { isActive },
  );
  return (
    <Box flexDirection="column">
      {items.map((it, i) => (
        <Text key={it.hotkey} color={i === index ? 'cyan' : undefined}>
          {i === index ? '› ' : '  '}[{it.hotkey}] {it.label}
        </Text>
      ))}
    </Box>
  );
}
