import { z } from 'zod';
import { fromHex } from '../records/crypto/bytes.js';
import { sha256 } from '../records/crypto/hash.js';
import { encodeCanonical } from '../records/encoding.js';
import { hospitalIdSchema, userIdSchema } from '../records/ids.js';
import { DEFAULT_STATS_SETTING, statsSettingSchema, type StatsSetting } from '../records/stats/batches.js';
import { MemoryState } from '../records/state/memoryState.js';
import { NETWORK_KEY, type StateChange } from '../records/state/types.js';

/**
 * The genesis file: the network's founding statement, identical on every node. It names the hospitals
 * (validators, in proposer order), their admins, and the consensus parameters all validators share.
 */
const hex32 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 32 bytes of lowercase hex');

export const consensusParamsSchema = z.strictObject({
  /** Wait after a commit before the next height's round 0: the block period. */
  periodMs: z.number().int().min(10).max(60_000).default(250),
  /** With an empty mempool the proposer waits this long before proposing an empty (heartbeat) block. */
  emptyBlockIntervalMs: z.number().int().min(10).max(600_000).default(5_000),
  timeoutProposeMs: z.number().int().min(50).max(60_000).default(1_500),
  timeoutVoteMs: z.number().int().min(50).max(60_000).default(1_000),
  /** Added per round, so timeouts grow until the slowest honest validator is heard. */
  timeoutDeltaMs: z.number().int().min(0).max(60_000).default(500),
  maxBlockTxs: z.number().int().min(1).max(20_000).default(4_000),
  maxBlockBytes: z
    .number()
    .int()
    .min(64 * 1024)
    .max(8 * 1024 * 1024)
    .default(3 * 1024 * 1024),
});
export type ConsensusParams = z.infer<typeof consensusParamsSchema>;

export const genesisSchema = z.strictObject({
  network: z.string().regex(/^[a-z0-9][a-z0-9-]{1,39}$/),
  time: z.number().int().nonnegative(),
  hospitals: z
    .array(
      z.strictObject({
        id: hospitalIdSchema,
        name: z.string().min(1).max(100),
        /** Ed25519 public key that signs this hospital's blocks and votes. */
        validatorKey: hex32,
        /** libp2p peer id of the hospital's node (the connection allow-list). */
        peerId: z.string().min(10).max(100),
        admin: z.strictObject({ id: userIdSchema, signKey: hex32, encKey: hex32.optional() }),
        /**
         * X25519 public key private statistics' input shares are sealed to (issue 13); its secret stays with the
         * hospital's node. Optional so older genesis files parse; statistics need it for every hospital.
         */
        aggregatorKey: hex32.optional(),
      }),
    )
    .min(1)
    .max(100),
  consensus: consensusParamsSchema.default(consensusParamsSchema.parse({})),
  /**
   * Private statistics' batches (issue 13): calendar months by default, `{ batchMs }` for test networks. No default
   * is filled in (that would change the hash of existing genesis files); `statsSetting` applies it.
   */
  stats: statsSettingSchema.optional(),
});
export type GenesisFile = z.infer<typeof genesisSchema>;

export interface Validator {
  index: number;
  hospital: string;
  key: Uint8Array;
  peerId: string;
  /**
   * The hash of the genesis file that appointed this validator. Its votes, proposals and block headers are
   * signed under it, so they are checked under it: a signature made for another network never verifies.
   */
  genesisHash: Uint8Array;
}

export interface Genesis {
  file: GenesisFile;
  /** SHA-256 of the canonical encoding of the file: block 0's parent, so it names this network's history. */
  hash: Uint8Array;
  validators: Validator[];
  params: ConsensusParams;
  /** The statistics batch setting (the file's, or calendar months). */
  stats: StatsSetting;
}

export function parseGenesis(raw: unknown): Genesis {
  const parsed = genesisSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`invalid genesis file: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const file = parsed.data;
  const hash = sha256(encodeCanonical(file));
  const ids = new Set(file.hospitals.map((h) => h.id));
  if (ids.size !== file.hospitals.length) throw new Error('invalid genesis file: duplicate hospital id');
  if (new Set(file.hospitals.map((h) => h.admin.id)).size !== file.hospitals.length) throw new Error('invalid genesis file: duplicate admin id');
  for (const h of file.hospitals) {
    // A hospital signs statsAggregate transactions as their actor, so its id must also be a valid actor id.
    if (h.aggregatorKey !== undefined && !userIdSchema.safeParse(h.id).success) {
      throw new Error(`invalid genesis file: hospital ${h.id} has an aggregatorKey but its id is not a valid actor id (3-40 chars)`);
    }
  }
  return {
    file,
    hash,
    validators: file.hospitals.map((h, index) => ({ index, hospital: h.id, key: fromHex(h.validatorKey), peerId: h.peerId, genesisHash: hash })),
    params: file.consensus,
    stats: file.stats ?? DEFAULT_STATS_SETTING,
  };
}

/** The state before block 1: hospitals and their admins, and the network settings the rules read. */
export function genesisChanges(genesis: Genesis): StateChange[] {
  const changes: StateChange[] = [{ table: 'network', key: NETWORK_KEY, value: { hospitals: genesis.file.hospitals.map((h) => h.id), stats: genesis.stats } }];
  for (const [index, h] of genesis.file.hospitals.entries()) {
    changes.push({
      table: 'hospitals',
      key: h.id,
      value: {
        id: h.id,
        name: h.name,
        admin: h.admin.id,
        index,
        validatorKey: fromHex(h.validatorKey),
        ...(h.aggregatorKey ? { aggregatorKey: fromHex(h.aggregatorKey) } : {}),
        lastNonce: 0,
      },
    });
    changes.push({
      table: 'users',
      key: h.admin.id,
      value: {
        id: h.admin.id,
        role: 'admin',
        hospital: h.id,
        signKey: fromHex(h.admin.signKey),
        ...(h.admin.encKey ? { encKey: fromHex(h.admin.encKey) } : {}),
        active: true,
        lastNonce: 0,
        since: genesis.file.time,
      },
    });
  }
  return changes;
}

export function genesisState(genesis: Genesis): MemoryState {
  const state = new MemoryState();
  state.write(genesisChanges(genesis));
  return state;
}
