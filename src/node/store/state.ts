import type { z } from 'zod';
import { encodeCanonical } from '../../records/encoding.js';
import { MemoryState } from '../../records/state/memoryState.js';
import { tableNames, type StateChange, type TableName } from '../../records/state/types.js';
import { K } from './keys.js';
import type { PendingBatch } from './pendingBatch.js';
import { stateSchemas } from './stateSchemas.js';
import { decodeStored, levelOptions, under, type Level, type ReadOptions, StoreDamage } from './values.js';

/**
 * Names one state entry the way the store does (as its LevelDB key, `s/<table>/<key>`): what
 * `stateEntryBatches` yields, so the integrity monitor can compare the stored state with a re-derived one
 * without knowing the layout.
 */
export const stateEntryId = (table: TableName, key: string): string => K.state(table, key);

/** The replicated state tables as stored, one LevelDB entry per row. */
export class StateStore {
  constructor(private readonly db: Level) {}

  /**
   * The whole state, each row checked against its table's schema. A row that fails the check is disk
   * damage: it is left out and handed to `onDamage` (the integrity monitor reports it against the chain);
   * without `onDamage` it is thrown.
   */
  async loadState(opts: { onDamage?: (damage: StoreDamage) => void } = {}): Promise<MemoryState> {
    const state = new MemoryState();
    const changes: StateChange[] = [];
    for await (const [key, value] of this.db.iterator(under(K.statePrefix))) {
      const rest = key.slice(K.statePrefix.length);
      const slash = rest.indexOf('/');
      const table = rest.slice(0, slash) as TableName;
      if (!tableNames.includes(table)) continue;
      const schema: z.ZodType<unknown> = stateSchemas[table];
      try {
        changes.push({ table, key: rest.slice(slash + 1), value: decodeStored(schema, value, `state entry ${key}`) } as StateChange);
      } catch (err) {
        if (!(err instanceof StoreDamage) || !opts.onDamage) throw err;
        opts.onDamage(err);
      }
    }
    state.write(changes);
    return state;
  }

  /** Every stored state entry as [stateEntryId, stored bytes], a thousand at a time. */
  async *stateEntryBatches(opts?: ReadOptions): AsyncGenerator<[string, Uint8Array][]> {
    const it = this.db.iterator({ ...under(K.statePrefix), ...levelOptions(opts) });
    try {
      for (;;) {
        const batch = await it.nextv(1_000);
        if (batch.length === 0) return;
        yield batch;
      }
    } finally {
      await it.close();
    }
  }

  stageChanges(batch: PendingBatch, changes: readonly StateChange[]): void {
    for (const c of changes) {
      if (c.value === null) batch.del(K.state(c.table, c.key));
      else batch.put(K.state(c.table, c.key), encodeCanonical(c.value));
    }
  }
}
