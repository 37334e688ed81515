import { Box, Text } from 'ink';
import type { ReactNode } from 'react';
import { useApp } from '../context.js';
import { FlashLine } from './FlashLine.js';
import { HelpLine } from './HelpLine.js';

/** The frame of every screen: title, body, the last action's result, "working…", and the key help. */
export function Screen({ title, help, children }: { title: string; help: [string, string][]; children?: ReactNode }) {
  const { flash, busy } = useApp();
  return (
    <Box flexDirection="column">
      <Text bold color="cyan">
        {title}
      </Text>
      <Box flexDirection="column" marginY={1}>
        {children}
      </Box>
      {busy ? <Text color="yellow">Working… (signing, submitting and waiting until final)</Text> : <FlashLine flash={flash} />}
      <HelpLine keys={help} />
    </Box>
  );
}
