import { writeFileSync } from 'node:fs';
import { ApiClient } from '../../client/apiClient.js';
import type { ProofResponse } from '../../api/contract.js';
import { UsageError } from '../passwordPrompt.js';

/**
 * `medledger prove --api URL --tx ID [--out FILE]`: the inclusion proof of one committed transaction, as
 * JSON (check it anywhere with `medledger verify-proof FILE --genesis FILE`).
 */
export async function runProve(opts: { api: string; tx: string; out?: string }): Promise<void> {
  if (!/^[0-9a-f]{64}$/.test(opts.tx)) throw new UsageError('--tx: a transaction id is 64 hex digits');
  const proof = await new ApiClient(opts.api).get<ProofResponse>(`/v1/proof/${opts.tx}`);
  const text = `${JSON.stringify(proof, null, 2)}\n`;
  if (opts.out) {
    writeFileSync(opts.out, text);
    process.stderr.write(`proof of ${opts.tx.slice(0, 12)}… (block ${proof.height}) written to ${opts.out}\n`);
  } else {
    process.stdout.write(text);
  }
}
