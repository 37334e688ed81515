import { Text } from 'ink';
import type { Flash } from '../context.js';

const COLORS: Record<Flash['kind'], string> = { success: 'green', denied: 'red', error: 'red', info: 'cyan' };
const MARKS: Record<Flash['kind'], string> = { success: '✔', denied: '✖', error: '✖', info: 'ℹ' };

export function FlashLine({ flash }: { flash: Flash | null }) {
  if (!flash) return null;
  return (
    <Text color={COLORS[flash.kind]}>
      {MARKS[flash.kind]} {flash.text}
    </Text>
  );
}
