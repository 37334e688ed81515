import { Option, type Command } from 'commander';
import { DEFAULT_STATS_WAIT_MS, histogramText, resultSentence, type StatsAnswer } from '../../client/stats.js';
import { MIN_BATCH_REPORTS } from '../../records/state/statsRules.js';
import { batchLabelSchema } from '../../records/stats/batches.js';
import { measureNames, statNames, type MeasureName, type StatName } from '../../records/stats/measures.js';
import { UsageError } from '../passwordPrompt.js';
import { reportOutcome, signIn, withUserOptions, type UserOptions } from '../userSession.js';

/**
 * `medledger stats` (auditors) and `medledger stats-consent on|off` (patients): private statistics (issue 13).
 * Only aggregates are printed: the result, the reports used and dropped, and for histograms a bar chart.
 */
interface StatsOpts extends UserOptions {
  measure: MeasureName;
  stat: StatName;
  batch: string;
  wait: string;
  json?: boolean;
}

/** The longest wait --wait accepts, in seconds. */
const MAX_WAIT_S = 3_600;

export function addStatsCommand(cmd: Command): Command {
  return withUserOptions(cmd.description('auditors: one statistic of one measure over one closed batch, computed from every hospital’s aggregate share'))
    .addOption(new Option('--measure <measure>', 'what was measured').choices([...measureNames]).makeOptionMandatory())
    .addOption(new Option('--stat <stat>', 'the statistic').choices([...statNames]).makeOptionMandatory())
    .requiredOption('--batch <label>', "the batch: a month, e.g. 2026-12 (or the ISO start a test network's genesis sets)")
    .option('--wait <seconds>', 'how long to wait for the hospitals’ aggregate shares', String(DEFAULT_STATS_WAIT_MS / 1000))
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nStill pending after --wait: the missing hospitals are named and the exit code is 1 (ask again later).')
    .action(async (o: StatsOpts) => {
      if (!batchLabelSchema.safeParse(o.batch).success) throw new UsageError('--batch: a month like 2026-12, or an ISO start time like 2026-12-01T21:30:00Z');
      const wait = Number(o.wait);
      if (!/^\d+$/.test(o.wait) || wait > MAX_WAIT_S) throw new UsageError(`--wait: whole seconds, 0 to ${MAX_WAIT_S}`);
      const session = await signIn(o);
      if (session.keys.role !== 'auditor') throw new UsageError(`statistics are queried by auditors; ${session.userId} is a ${session.keys.role}`);
      let shown = '';
      const r = await session.queryStats(
        { measure: o.measure, stat: o.stat, batch: o.batch },
        {
          timeoutMs: wait * 1000,
          onPending: (job) => {
            const line = `waiting for ${(job.waitingFor.length ? job.waitingFor : job.missing).join(', ') || 'the aggregation'}…`;
            if (!o.json && line !== shown) process.stderr.write(`${line}\n`);
            shown = line;
          },
        },
      );
      if (!reportOutcome(r, '', true)) return;
      const a = r.value!;
      // Pending after the wait, withheld or failed: no result, exit 1 (like a denial: the ledger's state, not a usage error).
      if (a.status !== 'done') process.exitCode = 1;
      process.stdout.write(o.json ? `${JSON.stringify(answerJson(o, r.id, a))}\n` : answerText(o, a));
    });
}

function answerJson(o: StatsOpts, tx: string, a: StatsAnswer) {
  const base = { measure: o.measure, stat: o.stat, batch: o.batch, tx, job: a.job.job, reused: a.reused, status: a.status };
  if (a.status === 'pending') return { ...base, missing: a.missing, waitingFor: a.waitingFor };
  if (a.status === 'failed') return { ...base, disagreeing: a.disagreeing };
  if (a.status === 'withheld') return { ...base, used: a.used, dropped: a.dropped };
  return { ...base, used: a.used, dropped: a.dropped, ...(a.result ? { result: a.result } : {}), ...(a.histogram ? { histogram: a.histogram } : {}) };
}

function answerText(o: StatsOpts, a: StatsAnswer): string {
  const job = `job ${a.job.job.slice(0, 12)}${a.reused ? ' (computed earlier: this query reused its stored aggregate)' : ''}`;
  if (a.status === 'pending') {
    // waitingFor: whom this node's aggregator still needs (the blocker); missing: whose aggregate share is not on chain.
    const waiting = a.waitingFor.length ? ` — waiting for ${a.waitingFor.join(', ')}` : '';
    return `${o.measure} ${o.stat} of batch ${o.batch}: still pending${waiting}; no aggregate share yet from ${a.missing.join(', ') || '(none listed)'}\n${job}\n`;
  }
  if (a.status === 'failed') return `${o.measure} ${o.stat} of batch ${o.batch}: FAILED — the hospitals disagree (${a.disagreeing.join(', ')})\n${job}\n`;
  if (a.status === 'withheld') {
    return `${o.measure} ${o.stat} of batch ${o.batch}: WITHHELD — only ${a.used} reports passed the proof (${a.dropped} dropped as invalid), fewer than ${MIN_BATCH_REPORTS}: nothing is released\n${job}\n`;
  }
  const lines = [
    a.result ? `${o.measure} ${resultSentence(o.measure, a.result)} — batch ${o.batch}` : `${o.measure} of batch ${o.batch}: no valid report`,
    `reports used: ${a.used} · dropped as invalid: ${a.dropped}`,
  ];
  if (a.histogram && a.result && (a.result.stat === 'histogram' || a.result.stat === 'median' || a.result.stat === 'mode')) {
    lines.push('', ...histogramText(o.measure, a.histogram));
  }
  lines.push(job);
  return `${lines.join('\n')}\n`;
}

export function addStatsConsentCommand(cmd: Command): Command {
  return withUserOptions(cmd.description('patients: contribute (on) or stop contributing (off) the vitals of your future records to anonymous statistics'))
    .argument('<on|off>', 'on: contribute; off: stop')
    .action(async (choice: string, o: UserOptions) => {
      if (choice !== 'on' && choice !== 'off') throw new UsageError('stats-consent: on or off');
      const session = await signIn(o);
      const r = await session.setStatsConsent(choice === 'on');
      reportOutcome(
        r,
        choice === 'on'
          ? 'you now contribute the vitals of your new and updated records to anonymous statistics'
          : 'you no longer contribute to anonymous statistics (reports already made stay in their batches)',
      );
    });
}
