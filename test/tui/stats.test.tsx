import { cleanup, render } from 'ink-testing-library';
import { afterEach, describe, expect, it } from 'vitest';
import type { StatsJobResponse } from '../../src/api/contract.js';
import { histogramBars, histogramText, resultSentence, type StatsAnswer } from '../../src/client/stats.js';
import { histogramResult } from '../../src/records/stats/prio3.js';
import { bucketCount, measures } from '../../src/records/stats/measures.js';
import { HistogramChart } from '../../src/tui/components/HistogramChart.js';
import { StatsResultView } from '../../src/tui/screens/StatsScreen.js';

/** Private statistics' presentation (issue 13): the bar chart and the result view, rendered with fixed results. */
afterEach(() => cleanup());

// Systolic buckets are 10 mmHg wide from 20: bucket 10 = 120–129, 11 = 130–139, 12 = 140–149.
function systolicHistogram(counts: Record<number, number>) {
  const all = Array.from({ length: bucketCount(measures.systolic) }, (_, i) => BigInt(counts[i] ?? 0));
  return histogramResult('systolic', all);
}

const job = (over: Partial<StatsJobResponse> = {}): StatsJobResponse => ({
  job: 'ab'.repeat(32),
  measure: 'systolic',
  batch: '2026-11',
  instance: 'histogram',
  status: 'done',
  reports: 13,
  used: 12,
  dropped: 1,
  shares: [],
  missing: [],
  waitingFor: [],
  ...over,
});

describe('histogram bars', () => {
  it('spans the first to the last non-empty bucket, scales to the fullest, and marks median and mode', () => {
    // 12 reports: 3 in 120–129, 0 in 130–139, 7 in 140–149, 2 in 150–159 → median (6th value) and mode in 140–149.
    const h = systolicHistogram({ 10: 3, 12: 7, 13: 2 });
    expect(h.median).toBe(12);
    expect(h.mode).toBe(12);
    const bars = histogramBars('systolic', h, 14);
    expect(bars.map((b) => [b.label, b.count, b.cells, b.median, b.mode])).toEqual([
      ['120–129', 3, 6, false, false],
      ['130–139', 0, 0, false, false],
      ['140–149', 7, 14, true, true],
      ['150–159', 2, 4, false, false],
    ]);
    expect(histogramText('systolic', h, 14)).toEqual([
      '120–129 mmHg │██████         3',
      '130–139 mmHg │               0',
      '140–149 mmHg │██████████████ 7  ◀ median, mode',
      '150–159 mmHg │████           2',
    ]);
  });

  it('gives a non-empty bucket at least one cell, and labels temperature buckets in °C', () => {
    const counts = Array.from({ length: bucketCount(measures.temperature) }, () => 0n);
    counts[23] = 200n; // 36.5–36.9 °C
    counts[24] = 1n;
    const h = histogramResult('temperature', counts);
    const bars = histogramBars('temperature', h, 20);
    expect(bars.map((b) => [b.label, b.cells])).toEqual([
      ['36.5–36.9', 20],
      ['37.0–37.4', 1],
    ]);
    expect(
      histogramBars(
        'temperature',
        histogramResult(
          'temperature',
          counts.map(() => 0n),
        ),
      ),
    ).toEqual([]);
  });
});

describe('result sentences', () => {
  it('states each statistic in the measure’s unit', () => {
    expect(resultSentence('systolic', { stat: 'mean', count: 12, mean: 131.25 })).toBe('mean 131.25 mmHg');
    expect(resultSentence('temperature', { stat: 'stddev', count: 12, stddev: 0.4, mean: 36.85 })).toBe(
      'standard deviation 0.40 °C (population; mean 36.85 °C)',
    );
    expect(resultSentence('heartRate', { stat: 'count', count: 12 })).toBe('count 12');
    expect(resultSentence('systolic', { stat: 'median', count: 12, bucket: 12, lo: 140, hi: 149 })).toBe('median bucket 140–149 mmHg');
  });
});

describe('HistogramChart and StatsResultView', () => {
  it('draws the chart with bucket labels, counts and the median/mode mark', () => {
    const h = systolicHistogram({ 10: 3, 12: 7, 13: 2 });
    const frame = render(<HistogramChart measure="systolic" histogram={h} width={14} />).lastFrame() ?? '';
    expect(frame.split('\n')).toEqual([
      '120–129 mmHg │██████         3',
      '130–139 mmHg │               0',
      '140–149 mmHg │██████████████ 7  ◀ median, mode',
      '150–159 mmHg │████           2',
    ]);
  });

  it('shows the result, the reports used and dropped, the chart, and whether the job was reused', () => {
    const h = systolicHistogram({ 10: 3, 12: 7, 13: 2 });
    const answer: StatsAnswer = {
      status: 'done',
      result: { stat: 'median', count: 12, bucket: 12, lo: 140, hi: 149 },
      histogram: h,
      used: 12,
      dropped: 1,
      job: job(),
      reused: true,
    };
    const frame = render(<StatsResultView q={{ measure: 'systolic', stat: 'median', batch: '2026-11' }} answer={answer} />).lastFrame() ?? '';
    expect(frame).toContain('systolic: median bucket 140–149 mmHg');
    expect(frame).toContain('Reports used: 12 · dropped as invalid: 1');
    expect(frame).toContain('140–149 mmHg │');
    expect(frame).toContain('◀ median, mode');
    expect(frame).toContain(`job ${'ab'.repeat(6)} — computed earlier; this query reused its stored aggregate`);
  });

  it('names the hospitals still missing while a job is pending, the disagreeing ones when it failed, and says when it is withheld', () => {
    const pending: StatsAnswer = {
      status: 'pending',
      job: job({ status: 'pending', used: undefined, dropped: undefined, missing: ['hosp-c', 'hosp-d'], waitingFor: ['hosp-d'] }),
      missing: ['hosp-c', 'hosp-d'],
      waitingFor: ['hosp-d'],
      reused: false,
    };
    const q = { measure: 'systolic' as const, stat: 'mean' as const, batch: '2026-11' };
    const p = render(<StatsResultView q={q} answer={pending} />).lastFrame() ?? '';
    expect(p).toContain('Still pending: missing the aggregate share of hosp-c, hosp-d');
    expect(p).toContain('Waiting for preparation shares of hosp-d');
    expect(p).toContain('computed for this query');
    cleanup();
    const failed: StatsAnswer = { status: 'failed', job: job({ status: 'failed', disagreeing: ['hosp-b'] }), disagreeing: ['hosp-b'], reused: false };
    expect(render(<StatsResultView q={q} answer={failed} />).lastFrame()).toContain("Failed: the hospitals' aggregates disagree (hosp-b)");
    cleanup();
    const withheld: StatsAnswer = { status: 'withheld', job: job({ used: 9, dropped: 4 }), used: 9, dropped: 4, reused: false };
    expect(render(<StatsResultView q={q} answer={withheld} />).lastFrame()).toContain(
      'Withheld: only 9 reports passed the proof (4 dropped as invalid), fewer than 10; nothing is',
    );
  });
});
