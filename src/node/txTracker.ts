import type { AuditEvent } from '../records/audit.js';
import { MedLedgerError } from '../records/errors.js';
import type { Ledger } from './ledger.js';

/** Lets API calls wait until their transaction is final (or learn why it never will be). */
export class TxTracker {
  private readonly waiters = new Map<string, { resolve: (e: AuditEvent) => void; reject: (err: Error) => void }[]>();

  constructor(ledger: Ledger) {
    ledger.on('committed', ({ executed }) => {
      if (this.waiters.size === 0) return;
      executed.txs.forEach((tx, i) => {
        const list = this.waiters.get(tx.idHex);
        if (!list) return;
        this.waiters.delete(tx.idHex);
        for (const w of list) w.resolve(executed.events[i]!);
      });
    });
  }

  wait(idHex: string, timeoutMs: number): Promise<AuditEvent | null> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const list = this.waiters.get(idHex)?.filter((w) => w !== entry);
        if (list && list.length > 0) this.waiters.set(idHex, list);
        else this.waiters.delete(idHex);
        resolve(null);
      }, timeoutMs);
      const entry = {
        resolve: (e: AuditEvent) => {
          clearTimeout(timer);
          resolve(e);
        },
        reject: (err: Error) => {
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
