import { auditEventSchema } from '../../consensus/proof.js';
import type { AuditEvent } from '../../records/audit.js';
import type { AuditFilter } from '../../records/tx/types.js';
import { indexKey, indexPrefix, K, padTime, parseSeqKey, seqKey, SEQ_LENGTH, timeIndexRoot, type IndexName } from './keys.js';
import type { PendingBatch } from './pendingBatch.js';
import { decodeStored, EMPTY, levelOptions, type Level, type ReadOptions } from './values.js';

export interface AuditPage {
  events: AuditEvent[];
  /** Pass back to continue with older events; absent at the end of the trail. */
  cursor?: string;
}

export type EventFilter = AuditFilter & { staffOnly?: boolean; atHeight?: number };

/** A stored audit event, checked against the audit event schema. */
export function decodeEvent(value: Uint8Array, seq: string): AuditEvent {
  const { height, index } = parseSeqKey(seq);
  return decodeStored<AuditEvent>(auditEventSchema, value, `audit event ${height}/${index}`, height);
}

/** The audit index entries of one event (the integrity monitor checks them both ways). */
export function indexEntries(event: AuditEvent): [IndexName, string | number][] {
  const entries: [IndexName, string | number][] = [
    ['user', event.agent.user],
    ['hospital', event.agent.hospital],
    ['time', event.recorded],
  ];
  if (event.patient) entries.push(['patient', event.patient]);
  if (event.record) entries.push(['record', event.record]);
  return entries;
}

/** The audit events of every transaction, by chain position, with the indexes that answer audit queries. */
export class AuditIndex {
  constructor(private readonly db: Level) {}

  async getEvent(height: number, index: number): Promise<AuditEvent | undefined> {
    const seq = seqKey(height, index);
    const v = await this.db.get(K.event(seq));
    return v ? decodeEvent(v, seq) : undefined;
  }

  /** The stored bytes of a block's audit events, in order: the eventsRoot leaves, never re-encoded. */
  async blockEventBytes(height: number): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    for await (const value of this.db.values(blockRange(height))) out.push(value);
    return out;
  }

  /**
   * Every stored entry in a block's range of audit events, as stored, in pages (one native read and one
   * await per page, not per event: the integrity monitor reads back every committed block): `index` is the
   * transaction it belongs to, undefined when its key is not one of the block's event keys; `key` names it
   * in messages.
   */
  async *storedEventsOfBlock(height: number, opts?: ReadOptions): AsyncGenerator<{ key: string; index: number | undefined; bytes: Uint8Array }[]> {
    const entries = this.db.iterator({ ...blockRange(height), ...levelOptions(opts) });
    try {
      for (;;) {
        const page = await entries.nextv(1_000);
        if (page.length === 0) return;
        yield page.map(([key, bytes]) => {
          const index = Number(key.slice(-5));
          return { key, index: Number.isInteger(index) && key === K.event(seqKey(height, index)) ? index : undefined, bytes };
        });
      }
    } finally {
      await entries.close();
    }
  }

  /** The audit events of heights `from`..`to`, in chain order (stop early by leaving the loop). */
  async *eventsInHeights(from: number, to: number): AsyncGenerator<{ height: number; event: AuditEvent }> {
    for await (const [key, value] of this.db.iterator({ gte: K.event(seqKey(from, 0)), lt: K.event(seqKey(to + 1, 0)) })) {
      const seq = key.slice(K.eventPrefix.length);
      yield { height: parseSeqKey(seq).height, event: decodeEvent(value, seq) };
    }
  }

  /**
   * Audit trail, newest first, through the most selective index for the filter; the other filter
   * fields are checked on the events read. `staffOnly` keeps admins to staff actions.
   */
  async queryEvents(filter: EventFilter, opts: { limit: number; cursor?: string }): Promise<AuditPage> {
    const { range, index, root } = rangeFor(filter, opts.cursor);
    const events: AuditEvent[] = [];
    let last: string | undefined;
    let more = false;
    // Index keys a page at a time and their events in one getMany: one native round trip per page
    // instead of one per event (a patient's events lie all over the store).
    const keys = this.db.keys({ ...range, reverse: true });
    try {
      scan: for (;;) {
        const page = await keys.nextv(Math.min(1_000, Math.max(16, opts.limit - events.length + 1)));
        if (page.length === 0) break;
        const seqs = page.map((key) => key.slice(key.length - SEQ_LENGTH));
        const values = await this.db.getMany(seqs.map((seq) => K.event(seq)));
        for (const [i, key] of page.entries()) {
          if (events.length >= opts.limit) {
            more = true;
            break scan;
          }
          last = key.slice(root.length);
          const value = values[i];
          if (!value) continue; // the integrity monitor reports index entries without events
          const event = decodeEvent(value, seqs[i]!);
          if (matches(event, filter)) events.push(event);
          // Blocks follow time within the transaction window, so a scan by patient/user may stop early.
          if (index !== 'time' && filter.from !== undefined && event.recorded < filter.from - 15 * 60_000) break scan;
        }
      }
    } finally {
      await keys.close();
    }
    return more && last ? { events, cursor: last } : { events };
  }

  /** A transaction's audit event (its bytes as executed) with its index entries, into the block's batch. */
  stageEvent(batch: PendingBatch, seq: string, eventBytes: Uint8Array, event: AuditEvent): void {
    batch.append(K.event(seq), eventBytes);
    for (const [index, value] of indexEntries(event)) batch.append(indexKey(index, value, seq), EMPTY);
  }
}

const blockRange = (height: number) => ({ gte: K.event(seqKey(height, 0)), lt: K.event(seqKey(height + 1, 0)) });

function rangeFor(filter: AuditFilter, cursor: string | undefined): { range: { gte: string; lt: string }; index: IndexName; root: string } {
  const chosen: [IndexName, string] | null = filter.record
    ? ['record', filter.record]
    : filter.patient
      ? ['patient', filter.patient]
      : filter.user
        ? ['user', filter.user]
        : filter.hospital
          ? ['hospital', filter.hospital]
          : null;
  if (chosen) {
    const root = indexPrefix(chosen[0], chosen[1]);
    return { index: chosen[0], root, range: { gte: root, lt: cursor ? `${root}${cursor}` : `${root}\xff` } };
  }
  const root = timeIndexRoot;
  const upper = cursor ?? (filter.to !== undefined ? padTime(filter.to + 1) : '\xff');
  return { index: 'time', root, range: { gte: `${root}${padTime(filter.from ?? 0)}`, lt: `${root}${upper}` } };
}

function matches(e: AuditEvent, f: EventFilter): boolean {
  if (f.atHeight !== undefined && e.height > f.atHeight) return false;
  if (f.patient !== undefined && e.patient !== f.patient) return false;
  if (f.user !== undefined && e.agent.user !== f.user) return false;
  if (f.record !== undefined && e.record !== f.record) return false;
  if (f.hospital !== undefined && e.agent.hospital !== f.hospital) return false;
  if (f.action !== undefined && e.action !== f.action) return false;
  if (f.outcome !== undefined && e.outcome !== f.outcome) return false;
  if (f.from !== undefined && e.recorded < f.from) return false;
  if (f.to !== undefined && e.recorded > f.to) return false;
  if (f.staffOnly && e.agent.role === 'patient') return false;
  return true;
}
