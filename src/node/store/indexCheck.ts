import type { AuditEvent } from '../../records/audit.js';
import type { Tx } from '../../records/tx/types.js';
import { decodeEvent, indexEntries } from './auditIndex.js';
import { indexKey, K, seqKey, SEQ_LENGTH, type IndexName } from './keys.js';
import { levelOptions, under, type Level, type ReadOptions, type StoreSnapshot } from './values.js';

/**
 * The store's indexes as the integrity monitor checks them, both ways, without knowing their layout: each
 * index family is a set of entries (opaque strings); `expectedIndexEntries` says which entries one transaction
 * and its audit event imply, `indexEntryBatches` reads the stored ones, and the two sets must be equal.
 */

/** The index families (transaction locations and the audit indexes) with the names messages use, in check order. */
export const INDEX_FAMILIES = {
  txLocation: 'transaction location',
  patient: 'patient',
  user: 'user',
  hospital: 'hospital',
  record: 'record',
  time: 'time',
  statsReport: 'statistics report',
} as const satisfies Record<'txLocation' | 'statsReport' | IndexName, string>;
export type IndexFamily = keyof typeof INDEX_FAMILIES;

/** Key tag of each family: a family is every key under `${tag}/`. */
const TAG: Record<IndexFamily, string> = { txLocation: 't', patient: 'ip', user: 'iu', hospital: 'ih', record: 'ir', time: 'it', statsReport: 'sr' };
const FAMILY_OF_TAG = new Map(Object.entries(TAG).map(([family, tag]) => [tag, family as IndexFamily]));

const txLocationEntry = (txIdHex: string, seq: string) => `${K.txLocation(txIdHex)}=${seq}`;
const printable = (key: string) => key.replace(/\0/g, '\\0');

function expectedIndexKeys(event: AuditEvent, seq: string): string[] {
  return indexEntries(event).map(([index, value]) => indexKey(index, value, seq));
}

/** The statistics report index entry of a successful statsReport (its measure and batch are in the tx body only). */
function statsReportKey(tx: Tx, event: AuditEvent, seq: string): string | undefined {
  if (tx.tx.type !== 'statsReport' || event.outcome !== 'success') return undefined;
  const body = (tx as Tx<'statsReport'>).tx.body;
  return K.statsReport(body.measure, body.batch, seq);
}

/** The index entries a sound store holds for transaction `index` of block `height` and its audit event. */
export function expectedIndexEntries(tx: Tx, event: AuditEvent, height: number, index: number): { family: IndexFamily; entry: string }[] {
  const seq = seqKey(height, index);
  const out: { family: IndexFamily; entry: string }[] = [{ family: 'txLocation', entry: txLocationEntry(tx.idHex, seq) }];
  for (const key of expectedIndexKeys(event, seq)) out.push({ family: FAMILY_OF_TAG.get(key.slice(0, key.indexOf('/')))!, entry: key });
  const stats = statsReportKey(tx, event, seq);
  if (stats) out.push({ family: 'statsReport', entry: stats });
  return out;
}

export class IndexCheck {
  constructor(private readonly db: Level) {}

  /** The stored entries of one family that belong to heights up to `upTo`, a thousand stored entries at a time. */
  async *indexEntryBatches(family: IndexFamily, upTo: number, opts?: ReadOptions): AsyncGenerator<string[]> {
    const range = { ...under(`${TAG[family]}/`), ...levelOptions(opts) };
    const decoder = new TextDecoder();
    if (family === 'txLocation') {
      const it = this.db.iterator(range);
      try {
        for (let batch = await it.nextv(1_000); batch.length > 0; batch = await it.nextv(1_000)) {
          const out: string[] = [];
          for (const [key, value] of batch) {
            const seq = decoder.decode(value);
            if (!(Number(seq.slice(0, 12)) > upTo)) out.push(`${key}=${seq}`);
          }
          yield out;
        }
      } finally {
        await it.close();
      }
    } else {
      const it = this.db.keys(range);
      try {
        for (let batch = await it.nextv(1_000); batch.length > 0; batch = await it.nextv(1_000)) {
          yield batch.filter((key) => !(Number(key.slice(-SEQ_LENGTH, -5)) > upTo));
        }
      } finally {
        await it.close();
      }
    }
  }

  /**
   * Entry by entry, only after a digest mismatch: stored entries that point to no event or to an event
   * that does not match, and events (up to `upTo`) that lack an entry. The lowest height wins. `pace` runs
   * between entries (the monitor stops or yields there).
   */
  async locateIndexProblem(
    family: IndexFamily,
    upTo: number,
    snapshot: StoreSnapshot,
    pace: (count: number) => Promise<void>,
  ): Promise<{ height: number; problem: string } | null> {
    const { db } = this;
    const snap = { snapshot: snapshot.token };
    const txLocations = family === 'txLocation';
    // A statistics report entry names its measure and batch, which only the transaction holds: here an entry must
    // point to a successful statsReport event, and every such event must have an entry (a wrong measure or batch
    // is caught by the digests, not located here).
    const statsReports = family === 'statsReport';
    const statsSeqs = new Set<string>();
    let worst: { height: number; problem: string } | null = null;
    const note = (height: number, problem: string) => {
      if (!worst || height < worst.height) worst = { height, problem };
    };
    const name = INDEX_FAMILIES[family];
    const prefix = `${TAG[family]}/`;
    // Stored entries → events.
    let batch: { key: string; seq: string }[] = [];
    const flush = async () => {
      const values = await db.getMany(
        batch.map((b) => K.event(b.seq)),
        snap,
      );
      batch.forEach(({ key, seq }, i) => {
        const height = Number(seq.slice(0, 12));
        const value = values[i];
        if (!value) return note(height, `${name} index entry ${printable(key)} points to audit event ${seq} which does not exist`);
        const event = decodeEvent(value, seq);
        const fits = txLocations
          ? key === K.txLocation(event.tx)
          : statsReports
            ? event.type === 'statsReport' && event.outcome === 'success'
            : expectedIndexKeys(event, seq).includes(key);
        if (!fits) note(height, `${name} index entry ${printable(key)} does not match the audit event it points to (transaction ${event.tx.slice(0, 12)}…)`);
      });
      batch = [];
    };
    const source = txLocations ? db.iterator({ ...under(prefix), ...snap }) : db.iterator({ ...under(prefix), ...snap, values: false });
    let n = 0;
    for await (const [key, value] of source) {
      await pace(++n);
      const seq = txLocations ? new TextDecoder().decode(value) : key.slice(-SEQ_LENGTH);
      const height = Number(seq.slice(0, 12));
      if (!/^\d{17}$/.test(seq)) {
        note(upTo, `${name} index entry ${printable(key)} is malformed`);
        continue;
      }
      if (height > upTo) continue;
      if (statsReports) statsSeqs.add(seq);
      batch.push({ key, seq });
      if (batch.length >= 1_000) await flush();
    }
    if (batch.length > 0) await flush();
    // Events → stored entries.
    let events: { seq: string; event: AuditEvent; keys: string[] }[] = [];
    const check = async () => {
      const keys = events.flatMap((e) => e.keys);
      const values = await db.getMany(keys, snap);
      let k = 0;
      for (const { seq, event, keys: mine } of events) {
        for (let j = 0; j < mine.length; j++) {
          const value = values[k++];
          const present = value !== undefined && (!txLocations || new TextDecoder().decode(value) === seq);
          if (!present)
            note(event.height, `audit event of transaction ${event.tx.slice(0, 12)}… (${seq}) has no ${txLocations ? 'correct ' : ''}${name} index entry`);
        }
      }
      events = [];
    };
    for await (const [key, value] of db.iterator({ gte: K.eventPrefix, lt: K.event(seqKey(upTo + 1, 0)), ...snap })) {
      await pace(++n);
      const seq = key.slice(K.eventPrefix.length);
      const event = decodeEvent(value, seq);
      if (statsReports) {
        if (event.type === 'statsReport' && event.outcome === 'success' && !statsSeqs.has(seq))
          note(event.height, `audit event of transaction ${event.tx.slice(0, 12)}… (${seq}) has no ${name} index entry`);
        continue;
      }
      const keys = txLocations ? [K.txLocation(event.tx)] : expectedIndexKeys(event, seq).filter((k) => k.startsWith(prefix));
      events.push({ seq, event, keys });
      if (events.length >= 1_000) await check();
    }
    if (events.length > 0) await check();
    return worst;
  }
}
