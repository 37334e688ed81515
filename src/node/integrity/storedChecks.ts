import type { ExecutedBlock } from '../../consensus/blockExecution.js';
import { ChainFault } from '../../consensus/chainCheck.js';
import { bytesEqual, toHex } from '../../records/crypto/bytes.js';
import type { Ledger } from '../ledger.js';
import { auditBlockPayloads, type PayloadProblem } from '../payloadAudit.js';
import { expectedIndexEntries, StoreDamage } from '../store/ledgerStore.js';
import type { Pass } from './chainPass.js';
import type { MonitorOptions } from './monitor.js';
import { COLD } from './schedule.js';

/** Payload problems kept for the status (the newest; older ones are counted). */
const RECENT_PAYLOAD_PROBLEMS = 20;

/** What the store keeps beside a verified block: the block-hash index, the audit events, the payloads. */
export class StoredChecks {
  /** Payload checks: how many were checked, what was found (and handed to repair or purged). */
  readonly payloads = { checked: 0, damaged: 0, purged: 0, recent: [] as PayloadProblem[] };

  constructor(
    private readonly ledger: Ledger,
    private readonly opts: Pick<MonitorOptions, 'logger' | 'checkPayloads' | 'payloadsToRepair'>,
  ) {}

  /** Checks what is stored beside block `h` and adds its index entries to the pass' digests; throws a ChainFault. */
  async check(pass: Pass, h: number, executed: ExecutedBlock): Promise<void> {
    await this.checkHashIndex(executed.hash, h);
    // The stored audit events must be exactly the events re-derived by executing the block.
    let next = 0;
    for await (const page of this.ledger.store.storedEventsOfBlock(h, COLD)) {
      for (const { key, index, bytes: value } of page) {
        if (index === undefined || !(index < executed.events.length))
          throw new ChainFault(h, `stored audit event ${key} belongs to no transaction of the block`);
        if (index > next) throw new ChainFault(h, `audit event ${next} (transaction ${executed.txs[next]!.idHex.slice(0, 12)}…) is missing from the store`);
        if (!bytesEqual(value, executed.eventBytes[index]!)) {
          throw new ChainFault(
            h,
            `audit event ${index} (transaction ${executed.txs[index]!.idHex.slice(0, 12)}…) differs from the event the block's execution yields`,
          );
        }
        next = index + 1;
      }
    }
    if (next < executed.events.length)
      throw new ChainFault(h, `audit event ${next} (transaction ${executed.txs[next]!.idHex.slice(0, 12)}…) is missing from the store`);
    if (this.opts.checkPayloads) await this.checkPayloads(executed);
    pass.events += executed.events.length;
    executed.events.forEach((event, i) => {
      for (const { family, entry } of expectedIndexEntries(executed.txs[i]!, event, h, i)) pass.add(family, entry);
    });
  }

  async checkHashIndex(hashBytes: Uint8Array, h: number): Promise<void> {
    const at = await this.ledger.store.heightOfHash(toHex(hashBytes)).catch((err: unknown) => {
      if (err instanceof StoreDamage) return undefined;
      throw err;
    });
    if (at !== h) throw new ChainFault(h, 'the block-hash index does not lead to this block');
  }

  /**
   * The block's payloads against the hashes it commits to. Unlike the chain, a payload can be healed: a
   * damaged or missing one is dropped and marked missing (readers get "not stored here", never bad bytes),
   * and the sync manager fetches a verified copy from peers; one a deletion should have purged is purged.
   */
  private async checkPayloads(executed: ExecutedBlock): Promise<void> {
    const { problems, checked } = await auditBlockPayloads(this.ledger.store, executed);
    this.payloads.checked += checked;
    if (problems.length === 0) return;
    for (const p of problems) {
      this.opts.logger.warn(
        { height: p.height, tx: p.tx, record: p.record, problem: p.problem },
        p.action === 'repair' ? 'payload damaged or missing: repairing from peers' : 'payload of a deleted record still held: purging',
      );
      if (p.action === 'repair') {
        await this.ledger.store.markPayloadMissing(p.tx);
        this.payloads.damaged++;
      } else {
        await this.ledger.store.purgePayload(p.tx);
        this.payloads.purged++;
      }
      this.payloads.recent.push(p);
      if (this.payloads.recent.length > RECENT_PAYLOAD_PROBLEMS) this.payloads.recent.shift();
    }
    if (problems.some((p) => p.action === 'repair')) this.opts.payloadsToRepair();
  }
}
