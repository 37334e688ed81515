import type { Session } from '../../src/client/session.js';
import { signTx } from '../../src/records/tx/codec.js';
import type { Tx, UnsignedTx } from '../../src/records/tx/types.js';
import type { ApiClient } from '../../src/client/apiClient.js';
import type { ChainBlock } from '../../src/api/contract.js';

let nonceFloor = Date.now() * 1000;

/**
 * A signed listRecords transaction of a patient on their own data: cheap, valid, and always audited. Signed
 * for the network the session has learned (any session that has acted once, e.g. a registered patient).
 * The load generators (tests, scripts/bench, scripts/overload) all build their load with it; `at` fixes the
 * nonce and time (e.g. two transactions with one nonce), else a fresh increasing nonce and the clock.
 */
export function auditedRead(patient: Session, at?: { nonce: number; time: number }): Tx {
  const network = patient.api.knownIdentity;
  if (!network) throw new Error(`auditedRead: the session of ${patient.userId} has not learned its network yet (await session.api.identify() first)`);
  if (!at) nonceFloor = Math.max(nonceFloor + 1, Date.now() * 1000);
  const unsigned: UnsignedTx<'listRecords'> = {
    v: 1,
    type: 'listRecords',
    actor: patient.userId,
    key: patient.signer.publicKey,
    via: patient.hospital,
    nonce: at?.nonce ?? nonceFloor,
    time: at?.time ?? Date.now(),
    patient: patient.userId,
    body: {},
  };
  return signTx(unsigned, patient.signer, network.genesisHash);
}

/**
 * Submits transactions in batches to the given nodes for a bounded time and count, without waiting
 * for finality; returns the ids the nodes accepted. Stops by itself.
 */
export async function runLoad(
  targets: { api: ApiClient; patient: Session }[],
  opts: { batches: number; batchSize: number; pauseMs: number; stop?: () => boolean; acceptedBy?: string[][] },
): Promise<string[]> {
  const accepted: string[] = [];
  for (let b = 0; b < opts.batches && !opts.stop?.(); b++) {
    for (const [i, t] of targets.entries()) {
      const txs = Array.from({ length: opts.batchSize }, () => ({ tx: auditedRead(t.patient) }));
      try {
        const res = await t.api.submitBatch(txs);
        accepted.push(...res.accepted);
        opts.acceptedBy?.[i]?.push(...res.accepted);
      } catch {
        // a node that is down: the load keeps going to the others
      }
    }
    await new Promise((r) => setTimeout(r, opts.pauseMs));
  }
  return accepted;
}

/** All finalized blocks of a node from height 1 to `to`. */
export async function chainOf(api: ApiClient, to: number): Promise<ChainBlock[]> {
  const blocks: ChainBlock[] = [];
  for (let from = 1; from <= to; from += 500) {
    const page = await api.get<{ blocks: ChainBlock[] }>(`/v1/chain/blocks?from=${from}&to=${Math.min(to, from + 499)}`);
    blocks.push(...page.blocks);
  }
  return blocks;
}

/** Where each transaction id sits in a chain. */
export function positions(chain: ChainBlock[]): Map<string, string> {
  const at = new Map<string, string>();
  for (const b of chain) b.txs.forEach((id, i) => at.set(id, `${b.height}/${i}`));
  return at;
}
