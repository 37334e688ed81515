import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { Genesis } from '../consensus/genesis.js';
import { bytesEqual, fromHex } from '../records/crypto/bytes.js';
import { encryptionPublicKey, type EncryptionKeyPair } from '../records/crypto/keyAgreement.js';

/** `{ "secretKey": hex }`, mode 0600, beside validator.key.json (written by `medledger init`). */
const aggregatorKeyFileSchema = z.strictObject({ secretKey: z.string().regex(/^[0-9a-f]{64}$/) });

/**
 * The hospital's statistics aggregator key pair (issue 13), or undefined when the node config names no key
 * file (the node then takes no part in statistics). Throws when the file is malformed or its public key is
 * not the hospital's `aggregatorKey` in the genesis file. The secret is never logged.
 */
export function loadAggregatorKey(config: { hospital: string; aggregatorKeyFile?: string }, genesis: Genesis): EncryptionKeyPair | undefined {
  if (config.aggregatorKeyFile === undefined) return undefined;
  const parsed = aggregatorKeyFileSchema.safeParse(JSON.parse(readFileSync(config.aggregatorKeyFile, 'utf8')));
  if (!parsed.success) throw new Error(`aggregator key file ${config.aggregatorKeyFile} is malformed (expected {"secretKey": "<64 hex>"})`);
  const secretKey = fromHex(parsed.data.secretKey);
  const publicKey = encryptionPublicKey(secretKey);
  const expected = genesis.file.hospitals.find((h) => h.id === config.hospital)?.aggregatorKey;
  if (expected === undefined) throw new Error(`the genesis file has no aggregatorKey for ${config.hospital}`);
  if (!bytesEqual(publicKey, fromHex(expected)))
    throw new Error(`aggregator key in ${config.aggregatorKeyFile} is not ${config.hospital}'s aggregatorKey in the genesis file`);
  return { secretKey, publicKey };
}
