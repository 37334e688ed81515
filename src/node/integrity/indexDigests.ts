import { hash } from 'node:crypto';
import { ChainFault } from '../../consensus/chainCheck.js';
import { bytesEqual } from '../../records/crypto/bytes.js';
import type { Ledger } from '../ledger.js';
import { INDEX_FAMILIES, type IndexFamily } from '../store/ledgerStore.js';
import type { Pass } from './chainPass.js';
import { COLD, type Pacer } from './schedule.js';
import { checkState } from './stateCheck.js';

/**
 * Order-independent digest of a set of strings: per-lane sums of SHA-256, plus a count. The hashes are
 * salted with a secret drawn for each pass, so nobody who can write the database can precompute entries
 * whose hashes add up to hide a missing or extra one.
 */
export class SetDigest {
  count = 0;
  readonly lanes = new Uint32Array(8);
  constructor(private readonly salt: string) {}
  add(entry: string): void {
    const h = hash('sha256', this.salt + entry, 'buffer') as unknown as Buffer;
    for (let i = 0; i < 8; i++) this.lanes[i] = (this.lanes[i]! + h.readUInt32LE(i * 4)) >>> 0;
    this.count++;
  }
  equals(o: SetDigest): boolean {
    return this.count === o.count && this.lanes.every((v, i) => v === o.lanes[i]);
  }
}

/** The index families (tx locations and the audit indexes), each compared as one set of entries. */
export const FAMILIES = Object.keys(INDEX_FAMILIES) as IndexFamily[];

/**
 * The cross-checks, against what a pass re-derived up to its height: the indexes both ways — every event
 * has its tx-location and audit index entries and every entry points to an event matching its key — by
 * comparing a multiset digest of the expected entries with one of the stored entries (one sequential
 * scan), looking entry by entry for the first bad height only on a mismatch; then, at the head, the state.
 */
export class CrossCheck {
  /** When the last cross-check started, and what it took (wall time). */
  lastRun = 0;
  took = 0;

  constructor(
    private readonly ledger: Ledger,
    private readonly pacer: Pacer,
  ) {}

  /** Throws a ChainFault naming the first problem. */
  async run(pass: Pass): Promise<void> {
    const started = (this.lastRun = Date.now());
    const H = pass.height;
    const { store } = this.ledger;
    // One snapshot: the store as of a single moment, while commits go on.
    const snapshot = store.snapshot();
    try {
      // The head the snapshot holds (a block in flight may or may not be in it): the state is compared only there.
      const head = await store.headAt(snapshot);
      const atHead = head?.height === H;
      if (atHead && !bytesEqual(head.hash, pass.checker.head.hash)) throw new ChainFault(H, 'the stored head marker names another block');
      for (const family of FAMILIES) {
        const actual = new SetDigest(pass.salt);
        for await (const batch of this.pacer.batches(store.indexEntryBatches(family, H, { snapshot, ...COLD }))) {
          for (const entry of batch) actual.add(entry);
        }
        if (!actual.equals(pass.digests.get(family)!)) {
          const found = await store.locateIndexProblem(family, H, snapshot, (n) => this.pacer.pace(n));
          throw new ChainFault(found?.height ?? H, `index inconsistency: ${found?.problem ?? `the ${INDEX_FAMILIES[family]} index differs from the events`}`);
        }
      }
      if (atHead) await checkState(store, pass, snapshot, this.pacer);
    } finally {
      await snapshot.close();
      this.took = Date.now() - started;
    }
  }
}
