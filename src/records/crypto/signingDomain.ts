import { concatBytes, utf8 } from './bytes.js';

/**
 * Every signature in MedLedger is over `tag ‖ genesis hash ‖ content`: a NUL-terminated tag naming what is
 * signed (transaction, view request, vote, proposal, block header) and the 32-byte SHA-256 of the network's
 * genesis file. A signature made for one network (a test network) is therefore never valid on another (the
 * production network), even where the same keys are registered, and one kind of signature never passes for
 * another. Tags end in a version: v2 is the first with the genesis hash; v1 signatures verify nowhere.
 */
export const SIGNING_TAGS = {
  tx: utf8('medledger/tx/v2\0'),
  request: utf8('medledger/request/v2\0'),
  vote: utf8('medledger/vote/v2\0'),
  proposal: utf8('medledger/proposal/v2\0'),
  block: utf8('medledger/block/v2\0'),
  /** A staff activation code's signature over the keys it lets a user install (records/activation.ts). */
  activation: utf8('medledger/activation/v2\0'),
  /** The new signing key's consent to a key installation (rotateKeys, records/rotation.ts). */
  keyConsent: utf8('medledger/key-consent/v2\0'),
} as const;

export type SigningTag = keyof typeof SIGNING_TAGS;

export const GENESIS_HASH_LENGTH = 32;

export function domainMessage(tag: SigningTag, genesisHash: Uint8Array, content: Uint8Array): Uint8Array {
  if (genesisHash.length !== GENESIS_HASH_LENGTH) throw new TypeError(`a genesis hash is ${GENESIS_HASH_LENGTH} bytes, got ${genesisHash.length}`);
  return concatBytes(SIGNING_TAGS[tag], genesisHash, content);
}
