import type { ClassicLevel } from 'classic-level';
import { z } from 'zod';
import { decodeCanonical } from '../../records/encoding.js';
import { bytes, uintSchema } from '../../records/ids.js';

/** The LevelDB under the store: only the modules of `src/node/store/` ever hold it. */
export type Level = ClassicLevel<string, Uint8Array>;
type LevelSnapshot = ReturnType<Level['snapshot']>;
export const EMPTY = new Uint8Array(0);

/** Range options for every key under `prefix`. */
export const under = (prefix: string) => ({ gte: prefix, lt: `${prefix}\xff` });

/**
 * A value read back from LevelDB that is not what the store wrote there: not canonical CBOR, or not of the
 * shape its key holds. Disk damage (or someone editing the files), never a peer's or a user's fault; the
 * integrity monitor reports it like any other damage it finds.
 */
export class StoreDamage extends Error {
  readonly code = 'STORE_DAMAGE';
  constructor(
    /** What the value should have been ("audit event 000000000003/00001", "chain head"). */
    readonly what: string,
    readonly detail: string,
    /** The height the value belongs to, when it belongs to one. */
    readonly height?: number,
  ) {
    super(`damaged ${what} in the store: ${detail}`);
    this.name = 'StoreDamage';
  }
}

/** Decodes a stored CBOR value and checks it against the schema of what the key holds. */
export function decodeStored<T>(schema: z.ZodType<T>, value: Uint8Array, what: string, height?: number): T {
  let decoded: unknown;
  try {
    decoded = decodeCanonical(value, what);
  } catch (err) {
    throw new StoreDamage(what, (err as Error).message, height);
  }
  const parsed = schema.safeParse(decoded);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new StoreDamage(what, `${issue?.path.join('.') || 'value'}: ${issue?.message ?? 'invalid'}`, height);
  }
  return parsed.data;
}

/** A stored text value (a sequence key, a transaction id) checked against its pattern. */
export function decodeStoredText(pattern: RegExp, value: Uint8Array, what: string): string {
  const text = new TextDecoder().decode(value);
  if (!pattern.test(text)) throw new StoreDamage(what, `${JSON.stringify(text.slice(0, 40))} is not of the stored form`);
  return text;
}

export const SEQ_PATTERN = /^\d{17}$/;
export const TX_ID_PATTERN = /^[0-9a-f]{64}$/;

export const chainHeadSchema = z.strictObject({ height: uintSchema, hash: bytes(32) });
export type ChainHead = z.infer<typeof chainHeadSchema>;

/**
 * One consistent view of the store (a LevelDB snapshot): reads given it see the store as of the moment it
 * was taken, while commits go on. Close it when done.
 */
export class StoreSnapshot {
  constructor(
    /** The LevelDB token; only the store's modules pass it on. */
    readonly token: LevelSnapshot,
  ) {}
  close(): Promise<void> {
    return this.token.close();
  }
}

/** How a scan or read may run: on a snapshot, and `cold` (kept out of LevelDB's block cache). */
export interface ReadOptions {
  snapshot?: StoreSnapshot;
  cold?: boolean;
}

export function levelOptions(opts: ReadOptions = {}): { snapshot?: LevelSnapshot; fillCache?: boolean } {
  return { ...(opts.snapshot ? { snapshot: opts.snapshot.token } : {}), ...(opts.cold ? { fillCache: false } : {}) };
}
