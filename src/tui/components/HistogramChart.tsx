import { Box, Text } from 'ink';
import { histogramBars } from '../../client/stats.js';
import { measures, type MeasureName } from '../../records/stats/measures.js';
import type { HistogramResult } from '../../records/stats/prio3.js';

/**
 * A histogram of private statistics as horizontal bars, one per bucket from the first to the last non-empty one,
 * labelled with the bucket's bounds; the median and mode buckets are marked (and coloured).
 */
export function HistogramChart({ measure, histogram, width = 40 }: { measure: MeasureName; histogram: HistogramResult; width?: number }) {
  const bars = histogramBars(measure, histogram, width);
  if (bars.length === 0) return <Text dimColor>(empty histogram)</Text>;
  const unit = measures[measure].unit;
  const labelWidth = Math.max(...bars.map((b) => b.label.length));
  const countWidth = Math.max(...bars.map((b) => String(b.count).length));
  return (
    <Box flexDirection="column">
      {bars.map((b) => {
        const marks = [b.median ? 'median' : '', b.mode ? 'mode' : ''].filter(Boolean).join(', ');
        return (
          <Text key={b.label} wrap="truncate-end">
            {`${b.label.padStart(labelWidth)} ${unit} │`}
            <Text color={b.mode ? 'magenta' : b.median ? 'cyan' : 'green'}>{'█'.repeat(b.cells).padEnd(width)}</Text>
            {` ${String(b.count).padStart(countWidth)}`}
            {marks ? <Text bold>{`  ◀ ${marks}`}</Text> : null}
          </Text>
        );
      })}
    </Box>
  );
}
