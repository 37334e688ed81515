import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import { fromHex } from '../records/crypto/bytes.js';

/** `{ "secretKey": "<64 hex>" }`, as `medledger init` writes the validator and aggregator keys (mode 0600). */
const secretKeyFileSchema = z.strictObject({ secretKey: z.string().regex(/^[0-9a-f]{64}$/) });

/**
 * Reads a node's secret key file. Refuses a file other users may read (the key would already be exposed) and a
 * malformed one — with a message that never quotes the file: JSON.parse's own error shows the text around the
 * fault, which would put part of the secret into the start-up error and the log.
 */
export function readSecretKeyFile(file: string, what: string): Uint8Array {
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) throw new Error(`${what} file ${file} is readable by other users (mode ${mode.toString(8)}): chmod 600 it`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    raw = undefined;
  }
  const parsed = secretKeyFileSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${what} file ${file} is malformed (expected {"secretKey": "<64 hex digits>"})`);
  return fromHex(parsed.data.secretKey);
}
