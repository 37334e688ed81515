import { Box, Text } from 'ink';

export interface Column {
  title: string;
  width: number;
}

/** Pads or cuts a cell to its column (with … when cut), so rows line up under the header. */
export function fit(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, Math.max(0, width - 1))}…` : text.padEnd(width);
}

/**
 * A fixed-width text table with a highlighted row. `cellColor` colours single cells (e.g. a denied
 * outcome in red); the last column is not padded. Rows never wrap: in a narrow terminal they are cut
 * at the edge (the highlighted row's details are shown in full below the table).
 */
export function Table({
  columns,
  rows,
  selected,
  cellColor,
  empty = '(none)',
}: {
  columns: Column[];
  rows: string[][];
  selected?: number;
  cellColor?: (row: number, col: number) => string | undefined;
  empty?: string;
}) {
  const cell = (text: string, col: number) => (col === columns.length - 1 ? text : fit(text, columns[col]!.width));
  return (
    <Box flexDirection="column">
      <Text bold wrap="truncate-end">{`  ${columns.map((c, i) => cell(c.title, i)).join(' | ')}`}</Text>
      <Text dimColor wrap="truncate-end">{`  ${columns.map((c) => '-'.repeat(c.width)).join('-+-')}`}</Text>
      {rows.length === 0 ? <Text dimColor> {empty}</Text> : null}
      {rows.map((row, r) => (
        <Text key={r} color={r === selected ? 'cyan' : undefined} bold={r === selected} wrap="truncate-end">
          {r === selected ? '› ' : '  '}
          {row.map((text, c) => (
            <Text key={c} color={cellColor?.(r, c)}>
              {cell(text, c)}
              {c < row.length - 1 ? ' | ' : ''}
            </Text>
          ))}
        </Text>
      ))}
    </Box>
  );
}
