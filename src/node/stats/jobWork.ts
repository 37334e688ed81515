import type { EncryptionKeyPair } from '../../records/crypto/keyAgreement.js';
import { isMedLedgerError } from '../../records/errors.js';
import { mustWithhold } from '../../records/state/statsRules.js';
import { reportsDigest } from '../../records/stats/job.js';
import type { StatsInstance } from '../../records/stats/measures.js';
import { aggregate, combinePrepShares, prepareInit, prepareNext, ProofFailed, type Prio3Vdaf } from '../../records/stats/prio3.js';
import { shareContextOfTx } from '../../records/stats/report.js';
import { openShare } from '../../records/stats/sealing.js';
import type { Tx } from '../../records/tx/types.js';

/**
 * One aggregator's work on a job (issue 13), apart from the network: preparing its own shares of every report,
 * then — with every hospital's preparation shares — combining, finishing and summing. Used by the job runner
 * (aggregator.ts) and by scripts/bench-stats.ts. Nothing here logs or returns a value of a report.
 */

/** Reports prepared between two yields to the event loop (consensus shares it): ~3 ms each, so ~25 ms. */
const YIELD_EVERY = 8;
/** Output shares summed at a time (aggregate shares and output shares have one encoding). */
const SUM_CHUNK = 512;

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface PrepareContext {
  vdaf: Prio3Vdaf;
  genesisHash: Uint8Array;
  aggregator: EncryptionKeyPair;
  /** This hospital's index in the genesis: its Prio3 aggregator id. */
  selfIndex: number;
  instance: StatsInstance;
  verifyKey: Uint8Array;
  /** Checked at every yield: true stops the work (the node is stopping) with JobAborted. */
  aborted?: () => boolean;
}

export class JobAborted extends Error {
  constructor() {
    super('statistics job work stopped');
    this.name = 'JobAborted';
  }
}

/** This aggregator's side of a job: per report (chain order) its id, and its prep state and share (undefined: invalid here). */
export interface PreparedReports {
  txIds: string[];
  states: (Uint8Array | undefined)[];
  shares: (Uint8Array | undefined)[];
  /** Reports whose share this aggregator could not open or prepare. */
  invalid: number;
}

export async function prepareReports(reports: AsyncIterable<Tx<'statsReport'>> | Iterable<Tx<'statsReport'>>, c: PrepareContext): Promise<PreparedReports> {
  const out: PreparedReports = { txIds: [], states: [], shares: [], invalid: 0 };
  for await (const tx of reports) {
    const prepared = await prepareOne(tx, c);
    out.txIds.push(tx.idHex);
    out.states.push(prepared?.prepState);
    out.shares.push(prepared?.prepShare);
    if (!prepared) out.invalid++;
    if (out.txIds.length % YIELD_EVERY === 0) {
      await nextTick();
      if (c.aborted?.()) throw new JobAborted();
    }
  }
  return out;
}

/** Undefined when the share is not there, does not open for this hospital, or does not decode. */
async function prepareOne(tx: Tx<'statsReport'>, c: PrepareContext): Promise<{ prepState: Uint8Array; prepShare: Uint8Array } | undefined> {
  const report = tx.tx.body.reports[c.instance];
  const sealed = report.shares[c.selfIndex];
  if (!sealed || report.shares.length !== c.vdaf.shares) return undefined;
  try {
    const inputShare = openShare(c.aggregator, shareContextOfTx(c.genesisHash, tx.tx, c.instance, c.selfIndex), sealed);
    return await prepareInit(c.vdaf, c.verifyKey, c.selfIndex, report.nonce, report.publicShare, inputShare);
  } catch {
    // Not sealed for this place (TAMPERED), or it does not decode (MALFORMED): invalid for this aggregator.
    return undefined;
  }
}

export interface JobOutcome {
  /** This aggregator's encoded aggregate share over the used reports; empty (withheld) when mustWithhold (too few used, > 10% dropped). */
  share: Uint8Array;
  used: number;
  dropped: number;
  /** reportsDigest of the used reports' ids. */
  digest: Uint8Array;
}

/**
 * Combines every hospital's preparation shares (`lists[h]`, genesis order; this hospital's own list included)
 * report by report: a report any hospital marked invalid, or whose proof fails, is dropped; the others are
 * finished with this aggregator's prep state and summed.
 */
export async function finishReports(
  vdaf: Prio3Vdaf,
  own: Pick<PreparedReports, 'txIds' | 'states'>,
  lists: (Uint8Array | undefined)[][],
  aborted?: () => boolean,
): Promise<JobOutcome> {
  const n = own.txIds.length;
  if (lists.length !== vdaf.shares) throw new Error(`${lists.length} share lists for ${vdaf.shares} aggregators`);
  for (const l of lists) if (l.length !== n) throw new Error(`a share list has ${l.length} entries for ${n} reports`);
  const used: string[] = [];
  let partial: Uint8Array[] = [];
  const sums: Uint8Array[] = [];
  for (let r = 0; r < n; r++) {
    if (r % YIELD_EVERY === YIELD_EVERY - 1) {
      await nextTick();
      if (aborted?.()) throw new JobAborted();
    }
    const state = own.states[r];
    const shares = lists.map((l) => l[r]);
    if (!state || shares.some((s) => s === undefined)) continue;
    let output: Uint8Array;
    try {
      const message = await combinePrepShares(vdaf, shares as Uint8Array[]);
      output = prepareNext(vdaf, state, message);
    } catch (err) {
      // A failed proof, or a share a peer sent that does not decode: the report is dropped.
      if (err instanceof ProofFailed || isMedLedgerError(err, 'MALFORMED')) continue;
      throw err;
    }
    used.push(own.txIds[r]!);
    partial.push(output);
    if (partial.length >= SUM_CHUNK) {
      sums.push(aggregate(vdaf, partial));
      partial = [];
    }
  }
  if (partial.length > 0 || sums.length === 0) sums.push(aggregate(vdaf, partial));
  // With too few valid reports, or too many dropped, the share is withheld: once on chain it would be public
  // (PROTOCOL.md §10.4).
  const share = mustWithhold(used.length, n - used.length) ? new Uint8Array(0) : sums.length === 1 ? sums[0]! : aggregate(vdaf, sums);
  return { share, used: used.length, dropped: n - used.length, digest: reportsDigest(used) };
}
