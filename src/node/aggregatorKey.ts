import type { Genesis } from '../consensus/genesis.js';
import { bytesEqual, fromHex } from '../records/crypto/bytes.js';
import { encryptionPublicKey, type EncryptionKeyPair } from '../records/crypto/keyAgreement.js';
import { readSecretKeyFile } from './keyFile.js';

/**
 * The hospital's statistics aggregator key pair (issue 13), or undefined when the node config names no key
 * file (the node then takes no part in statistics). Throws when the file is malformed or its public key is
 * not the hospital's `aggregatorKey` in the genesis file. The secret is never logged.
 */
export function loadAggregatorKey(config: { hospital: string; aggregatorKeyFile?: string }, genesis: Genesis): EncryptionKeyPair | undefined {
  if (config.aggregatorKeyFile === undefined) return undefined;
  // `{ "secretKey": hex }`, mode 0600, beside validator.key.json (written by `medledger init`).
  const secretKey = readSecretKeyFile(config.aggregatorKeyFile, 'aggregator key');
  const publicKey = encryptionPublicKey(secretKey);
  const expected = genesis.file.hospitals.find((h) => h.id === config.hospital)?.aggregatorKey;
  if (expected === undefined) throw new Error(`the genesis file has no aggregatorKey for ${config.hospital}`);
  if (!bytesEqual(publicKey, fromHex(expected)))
    throw new Error(`aggregator key in ${config.aggregatorKeyFile} is not ${config.hospital}'s aggregatorKey in the genesis file`);
  return { secretKey, publicKey };
}
