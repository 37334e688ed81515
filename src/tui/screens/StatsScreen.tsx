import { Box, Text } from 'ink';
import { useState } from 'react';
import type { StatsBatchesResponse, StatsJobResponse } from '../../api/contract.js';
import { resultSentence, type StatsAnswer, type StatsQuery } from '../../client/stats.js';
import { MIN_BATCH_REPORTS } from '../../records/state/statsRules.js';
import { parseBatch } from '../../records/stats/batches.js';
import { measureNames, statNames, type MeasureName, type StatName } from '../../records/stats/measures.js';
import { Form } from '../components/Form.js';
import { HistogramChart } from '../components/HistogramChart.js';
import { LoadState } from '../components/LoadState.js';
import { Screen } from '../components/Screen.js';
import { Table } from '../components/Table.js';
import { useApp, useSession } from '../context.js';
import { useAction } from '../hooks/useAction.js';
import { useAsync } from '../hooks/useAsync.js';
import { useKeys } from '../hooks/useKeys.js';
import { FORM_HELP } from './FormScreen.js';

type Step =
  | { step: 'choose'; measure?: MeasureName; stat?: StatName }
  | { step: 'batch'; measure: MeasureName; stat: StatName }
  | { step: 'running'; q: StatsQuery; pending?: StatsJobResponse }
  | { step: 'result'; q: StatsQuery; answer: StatsAnswer };

/**
 * Auditors: private statistics (issue 13). Choose a measure and a statistic, then a batch from the node's list;
 * the query is an audited transaction, the hospitals' aggregate shares are combined here. Shows the result, the
 * reports used and dropped, a bar chart for histograms (median and mode marked), and while pending the
 * hospitals whose share is missing.
 */
export function StatsScreen() {
  const app = useApp();
  const session = useSession();
  const run = useAction();
  const [state, setState] = useState<Step>({ step: 'choose' });

  const ask = async (q: StatsQuery) => {
    setState({ step: 'running', q });
    const r = await run(
      () => session.queryStats(q, { onPending: (job) => setState({ step: 'running', q, pending: job }) }),
      (o) =>
        o.value?.status === 'done'
          ? `Computed from every hospital's aggregate share (query ${o.id.slice(0, 12)} is in the audit trail)`
          : o.value?.status === 'pending'
            ? 'Still pending: ask again later (r)'
            : o.value?.status === 'withheld'
              ? 'Withheld: too few valid reports'
              : 'The hospitals disagree: no result',
    );
    if (r?.value) setState({ step: 'result', q, answer: r.value });
    else setState({ step: 'batch', measure: q.measure, stat: q.stat });
  };

  useKeys(
    (input, key) => {
      if (state.step !== 'result') return;
      if (key.escape) setState({ step: 'choose', measure: state.q.measure, stat: state.q.stat });
      else if (input === 'r') void ask(state.q);
    },
    { isActive: !app.busy && state.step === 'result' },
  );

  if (state.step === 'choose') {
    return (
      <Screen title="Statistics" help={FORM_HELP}>
        <Text dimColor>
          Aggregates across every hospital; no one sees a patient's value. A batch is released once closed, with at least {MIN_BATCH_REPORTS} reports.
        </Text>
        <Form
          fields={[
            { name: 'measure', label: 'Measure', kind: 'choice', options: [...measureNames], initial: state.measure ?? 'systolic' },
            { name: 'stat', label: 'Statistic', kind: 'choice', options: [...statNames], initial: state.stat ?? 'mean' },
          ]}
          submitLabel="Choose a batch"
          onCancel={app.back}
          isActive={!app.busy}
          onSubmit={(v) => setState({ step: 'batch', measure: v.measure as MeasureName, stat: v.stat as StatName })}
        />
      </Screen>
    );
  }
  if (state.step === 'batch') {
    return (
      <BatchPicker
        measure={state.measure}
        stat={state.stat}
        onBack={() => setState({ step: 'choose', measure: state.measure, stat: state.stat })}
        onPick={(batch) => void ask({ measure: state.measure, stat: state.stat, batch })}
      />
    );
  }
  const q = state.q;
  return (
    <Screen
      title={`Statistics — ${q.measure} ${q.stat}, batch ${q.batch}`}
      help={
        state.step === 'result'
          ? [
              ['r', 'ask again'],
              ['Esc', 'another query'],
            ]
          : []
      }
    >
      {state.step === 'running' ? <Pending job={state.pending} /> : <StatsResultView q={q} answer={state.answer} />}
    </Screen>
  );
}

function Pending({ job }: { job?: StatsJobResponse | undefined }) {
  if (!job) return <Text color="yellow">Querying: signing, submitting, waiting for the hospitals' aggregate shares…</Text>;
  return (
    <Box flexDirection="column">
      <Text color="yellow">
        Aggregating {job.reports} reports: waiting for the aggregate share of {job.missing.join(', ') || '…'}
      </Text>
      {job.waitingFor.length ? <Text dimColor>This node waits for preparation shares of {job.waitingFor.join(', ')}</Text> : null}
    </Box>
  );
}

/** The answer of one query: result, reports used and dropped, the chart for histograms; or who is missing. */
export function StatsResultView({ q, answer }: { q: StatsQuery; answer: StatsAnswer }) {
  const job = `job ${answer.job.job.slice(0, 12)} — ${answer.reused ? 'computed earlier; this query reused its stored aggregate' : 'computed for this query'}`;
  if (answer.status === 'pending') {
    return (
      <Box flexDirection="column">
        <Text color="yellow" bold>
          Still pending: missing the aggregate share of {answer.missing.join(', ') || '(none listed)'}
        </Text>
        {answer.waitingFor.length ? <Text color="yellow">Waiting for preparation shares of {answer.waitingFor.join(', ')}</Text> : null}
        <Text dimColor>Every hospital must take part (Prio3 needs all aggregators): the query waits until they answer.</Text>
        <Text dimColor>{job}</Text>
      </Box>
    );
  }
  if (answer.status === 'withheld') {
    return (
      <Box flexDirection="column">
        <Text color="yellow" bold>
          Withheld: only {answer.used} reports passed the proof ({answer.dropped} dropped as invalid), fewer than {MIN_BATCH_REPORTS}; nothing is released.
        </Text>
        <Text dimColor>{job}</Text>
      </Box>
    );
  }
  if (answer.status === 'failed') {
    return (
      <Box flexDirection="column">
        <Text color="red" bold>
          Failed: the hospitals' aggregates disagree ({answer.disagreeing.join(', ')}); no result is released.
        </Text>
        <Text dimColor>{job}</Text>
      </Box>
    );
  }
  return (
    <Box flexDirection="column">
      <Text bold color="green">
        {answer.result ? `${q.measure}: ${resultSentence(q.measure, answer.result)}` : `${q.measure}: no valid report in this batch`}
      </Text>
      <Text>
        Reports used: {answer.used} · dropped as invalid: {answer.dropped}
      </Text>
      {answer.histogram ? (
        <Box marginTop={1}>
          <HistogramChart measure={q.measure} histogram={answer.histogram} />
        </Box>
      ) : null}
      <Text dimColor>{job}</Text>
    </Box>
  );
}

function BatchPicker({ measure, stat, onPick, onBack }: { measure: MeasureName; stat: StatName; onPick(batch: string): void; onBack(): void }) {
  const session = useSession();
  const app = useApp();
  const [selected, setSelected] = useState(0);
  const listing = useAsync(async () => {
    const [{ batches }, { genesis }] = await Promise.all([
      session.api.statsBatches(session.userId, session.signer, measure),
      session.recipientKeys.trustAnchor(),
    ]);
    return { batches: [...batches].reverse(), setting: genesis.stats };
  }, [session, measure]);
  const rows = listing.state === 'done' ? listing.value.batches : [];
  const i = Math.min(selected, rows.length - 1);
  useKeys(
    (input, key) => {
      if (key.escape) return onBack();
      if (key.upArrow || input === 'k') return setSelected(Math.max(0, i - 1));
      if (key.downArrow || input === 'j') return setSelected(Math.min(rows.length - 1, i + 1));
      if (key.return && rows[i]) onPick(rows[i].batch);
    },
    { isActive: !app.busy },
  );
  const stateOf = (b: StatsBatchesResponse['batches'][number]) => {
    const batch = listing.state === 'done' ? parseBatch(listing.value.setting, b.batch) : undefined;
    if (batch && batch.end > Date.now()) return 'open (still collecting)';
    if (b.reports < MIN_BATCH_REPORTS) return `too small (< ${MIN_BATCH_REPORTS})`;
    return b.jobs.histogram ? 'closed · aggregated' : 'closed';
  };
  return (
    <Screen
      title={`Statistics — ${measure} ${stat}: choose a batch`}
      help={[
        ['↑↓', 'move'],
        ['Enter', 'query'],
        ['Esc', 'back'],
      ]}
    >
      <LoadState of={listing} loading="loading the batches…" />
      {listing.state === 'done' ? (
        <Table
          columns={[
            { title: 'Batch', width: 20 },
            { title: 'Reports', width: 7 },
            { title: 'State', width: 40 },
          ]}
          rows={rows.map((b) => [b.batch, String(b.reports), stateOf(b)])}
          selected={i}
          empty={`no ${measure} reports yet`}
        />
      ) : null}
    </Screen>
  );
}
