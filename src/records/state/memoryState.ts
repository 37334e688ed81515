import type { StateChange, StateView, TableName, Tables } from './types.js';

/** The whole state in memory: the node loads it from LevelDB at start and keeps it in step with blocks. */
export class MemoryState implements StateView {
  private readonly tables = new Map<TableName, Map<string, unknown>>();

  get<T extends TableName>(table: T, key: string): Tables[T] | undefined {
    return this.tables.get(table)?.get(key) as Tables[T] | undefined;
  }

  entries<T extends TableName>(table: T): IterableIterator<[string, Tables[T]]> {
    return ((this.tables.get(table) ?? new Map()) as Map<string, Tables[T]>).entries();
  }

  size(table: TableName): number {
    return this.tables.get(table)?.size ?? 0;
  }

  write(changes: Iterable<StateChange>): void {
    for (const change of changes) {
      let t = this.tables.get(change.table);
      if (!t) this.tables.set(change.table, (t = new Map()));
      if (change.value === null) t.delete(change.key);
      else t.set(change.key, change.value);
    }
  }
}

/**
 * Copy-on-write layer over a base view: a block is executed against an overlay, and only when the block
 * is accepted are the overlay's changes written to the base (and to disk) — a rejected block leaves no trace.
 */
export class OverlayState implements StateView {
  private readonly writes = new Map<string, StateChange>();

  constructor(private readonly base: StateView) {}

  get<T extends TableName>(table: T, key: string): Tables[T] | undefined {
    const change = this.writes.get(`${table}\0${key}`);
    if (change) return (change.value ?? undefined) as Tables[T] | undefined;
    return this.base.get(table, key);
  }

  write(changes: Iterable<StateChange>): void {
    for (const change of changes) this.writes.set(`${change.table}\0${change.key}`, change);
  }

  /** Drops every write made so far (a denied action changes nothing but the nonce). */
  discard(): void {
    this.writes.clear();
  }

  /** Net changes, one per key, in first-write order. */
  changes(): StateChange[] {
    return [...this.writes.values()];
  }
}
