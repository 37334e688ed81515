import { describe, expect, it } from 'vitest';
import { MedLedgerError, type ErrorCode } from '../../src/records/errors.js';
import type { AuditEvent } from '../../src/records/audit.js';
import { NodeMetrics, REJECTION_REASONS, rejectionReason, type MetricSources } from '../../src/node/metrics.js';
import { metricValue, parsePrometheus } from '../../scripts/bench/prometheus.js';

/**
 * The metric definitions without a node: labels stay within their fixed sets whatever an error carries, two
 * registries in one process do not clash, and the exposition parses. (GET /metrics on a running node:
 * test/node/metricsNode.test.ts.)
 */
const sources = (height = 7): MetricSources => ({
  height: () => height,
  round: () => 2,
  peers: () => 3,
  mempool: () => ({ txs: 5, bytes: 1234 }),
  integrity: () => ({ verifiedHeight: 6, alert: false }),
  payloadsMissing: () => 0,
});

describe('rejection reasons are a bounded label set', () => {
  it('keeps a known error code and turns everything else into "other"', () => {
    expect(rejectionReason(new MedLedgerError('REPLAY', 'nonce used'))).toBe('REPLAY');
    expect(rejectionReason(new MedLedgerError('BAD_SIGNATURE', 'x'))).toBe('BAD_SIGNATURE');
    expect(rejectionReason('TOO_LARGE')).toBe('TOO_LARGE');
    // Anything with a user's id, a message, a code we do not know, or no code at all.
    expect(rejectionReason('pat-alice')).toBe('other');
    expect(rejectionReason(new Error('pat-alice has no grant'))).toBe('other');
    expect(rejectionReason(new TypeError('invalid base64 string'))).toBe('other');
    expect(rejectionReason(new MedLedgerError('pat-alice' as ErrorCode, 'forged code'))).toBe('other');
    expect(rejectionReason(new MedLedgerError('toString' as ErrorCode, 'an inherited name is not a code'))).toBe('other');
    expect(rejectionReason({ code: 'REPLAY' })).toBe('other'); // not a MedLedgerError
    expect(rejectionReason(undefined)).toBe('other');
    expect(REJECTION_REASONS).toHaveLength(18);
    expect(new Set(REJECTION_REASONS).size).toBe(18);
  });

  it('exposes at most 2 × 18 rejection series however many distinct errors arrive, with no id in the output', async () => {
    const m = new NodeMetrics(sources(), { processMetrics: false });
    for (let i = 0; i < 500; i++) m.rejected(i % 2 ? 'api' : 'gossip', new MedLedgerError(`user-${i}` as ErrorCode, `pat-${i} denied`));
    m.rejected('api', new MedLedgerError('REPLAY', 'nonce 3 of pat-alice used'));
    // An admission is timed whether it admits or refuses; the refusal is counted by the caller.
    const refusal = new MedLedgerError('UNKNOWN_ACTOR', 'unknown user pat-bob');
    expect(() =>
      m.admission('gossip', () => {
        throw refusal;
      }),
    ).toThrow(/pat-bob/);
    m.rejected('gossip', refusal);
    const text = (await m.exposition()).text;
    expect(text).not.toMatch(/pat-|user-/);
    const samples = parsePrometheus(text);
    const rejected = samples.filter((s) => s.name === 'medledger_tx_rejected_total');
    expect(rejected).toHaveLength(36);
    for (const s of rejected) {
      expect(['api', 'gossip']).toContain(s.labels.source);
      expect(REJECTION_REASONS).toContain(s.labels.reason);
    }
    expect(metricValue(samples, 'medledger_tx_rejected_total', { reason: 'other' })).toBe(500);
    expect(metricValue(samples, 'medledger_tx_rejected_total', { source: 'api', reason: 'REPLAY' })).toBe(1);
    expect(metricValue(samples, 'medledger_tx_rejected_total', { source: 'gossip', reason: 'UNKNOWN_ACTOR' })).toBe(1);
    expect(metricValue(samples, 'medledger_tx_admission_seconds_count', { source: 'gossip' })).toBe(1);
  });
});

describe('NodeMetrics', () => {
  it('reads the state gauges when scraped and counts commits by outcome', async () => {
    let height = 7;
    const m = new NodeMetrics({ ...sources(), height: () => height }, { processMetrics: false });
    const ev = (outcome: 'success' | 'denied') => ({ outcome }) as AuditEvent;
    m.committed({ txs: [{}, {}, {}] as never, events: [ev('success'), ev('denied'), ev('success')] });
    height = 8;
    const samples = parsePrometheus((await m.exposition()).text);
    expect(metricValue(samples, 'medledger_chain_height')).toBe(8);
    expect(metricValue(samples, 'medledger_consensus_round')).toBe(2);
    expect(metricValue(samples, 'medledger_peers_connected')).toBe(3);
    expect(metricValue(samples, 'medledger_mempool_transactions')).toBe(5);
    expect(metricValue(samples, 'medledger_mempool_bytes')).toBe(1234);
    expect(metricValue(samples, 'medledger_integrity_verified_height')).toBe(6);
    expect(metricValue(samples, 'medledger_integrity_alert')).toBe(0);
    expect(metricValue(samples, 'medledger_blocks_committed_total')).toBe(1);
    expect(metricValue(samples, 'medledger_transactions_committed_total')).toBe(3);
    expect(metricValue(samples, 'medledger_audit_events_committed_total', { outcome: 'success' })).toBe(2);
    expect(metricValue(samples, 'medledger_audit_events_committed_total', { outcome: 'denied' })).toBe(1);
  });

  it('gives every node its own registry: two in one process, process metrics included, do not clash', async () => {
    const a = new NodeMetrics(sources(1));
    const b = new NodeMetrics(sources(2));
    a.loadShed.inc({ reason: 'mempool' }, 4);
    const [sa, sb] = [parsePrometheus((await a.exposition()).text), parsePrometheus((await b.exposition()).text)];
    expect(metricValue(sa, 'medledger_chain_height')).toBe(1);
    expect(metricValue(sb, 'medledger_chain_height')).toBe(2);
    expect(metricValue(sa, 'medledger_load_shed_total', { reason: 'mempool' })).toBe(4);
    expect(metricValue(sb, 'medledger_load_shed_total', { reason: 'mempool' })).toBe(0);
    expect(metricValue(sa, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(metricValue(sb, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect((await a.exposition()).contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });
});

describe('the exposition reader of the benchmarks', () => {
  it('reads labels with escapes and special values, and refuses an unreadable line', () => {
    const s = parsePrometheus('# HELP x y\n# TYPE x counter\nx{a="1",b="q\\"uote"} 3\ny +Inf\nz NaN 1700000000\n\n');
    expect(s).toHaveLength(3);
    expect(s[0]).toEqual({ name: 'x', labels: { a: '1', b: 'q"uote' }, value: 3 });
    expect(s[1]!.value).toBe(Infinity);
    expect(() => parsePrometheus('x{a=1} 3')).toThrow(/bad labels/);
    expect(() => parsePrometheus('{"json": true}')).toThrow(/unreadable/);
    expect(() => parsePrometheus('x abc')).toThrow(/bad sample value/);
  });
});
