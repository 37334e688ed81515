import type { AuditEvent } from '../records/audit.js';
import { MedLedgerError } from '../records/errors.js';
import type { UnsignedTx } from '../records/tx/types.js';
import type { TxResult } from '../api/contract.js';
import type { Ledger } from './ledger.js';
import { resultOf } from './views.js';

export interface Final {
  event: AuditEvent;
  /** Only for the waiter that asked for it: the answer computed when the block was committed. */
  result?: TxResult;
}

interface Waiter {
  /** The submission that admitted the transaction: it alone gets the answer of a read or query. */
  answerFor: UnsignedTx | null;
  resolve: (f: Final) => void;
  reject: (err: Error) => void;
}

/**
 * Lets API calls wait until their transaction is final (or learn why it never will be). The answer to an
 * audited read or query is computed the moment its block is committed, from the state of that block, and
 * handed only to the request that admitted the transaction: a replay of the same signed bytes, by the signer
 * or anyone else, gets the audit event and nothing more.
 */
export class TxTracker {
  private readonly waiters = new Map<string, Waiter[]>();

  constructor(private readonly ledger: Ledger) {
    ledger.on('committed', ({ executed }) => {
      if (this.waiters.size === 0) return;
      executed.txs.forEach((tx, i) => {
        const list = this.waiters.get(tx.idHex);
        if (!list) return;
        this.waiters.delete(tx.idHex);
        const event = executed.events[i]!;
        for (const w of list) {
          if (!w.answerFor) {
            w.resolve({ event });
            continue;
          }
          // Started now, before the next block can be committed: the reads see this block's state.
          resultOf(this.ledger, w.answerFor, event).then(
            (result) => w.resolve(result ? { event, result } : { event }),
            (err: Error) => w.reject(err),
          );
        }
      });
    });
  }

  wait(idHex: string, timeoutMs: number, answerFor: UnsignedTx | null = null): Promise<Final | null> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const list = this.waiters.get(idHex)?.filter((w) => w !== entry);
        if (list && list.length > 0) this.waiters.set(idHex, list);
        else this.waiters.delete(idHex);
        resolve(null);
      }, timeoutMs);
      const entry: Waiter = {
        answerFor,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const list = this.waiters.get(idHex);
      if (list) list.push(entry);
      else this.waiters.set(idHex, [entry]);
    });
  }

  fail(idHex: string, error: MedLedgerError): void {
    const list = this.waiters.get(idHex);
    if (!list) return;
    this.waiters.delete(idHex);
    for (const w of list) w.reject(error);
  }
}
