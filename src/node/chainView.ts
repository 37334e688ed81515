import { toHex } from '../records/crypto/bytes.js';
import { headerHash } from '../consensus/block.js';
import { txIdOfBytes } from '../records/tx/codec.js';
import { MAX_BLOCKS_PER_PAGE, type ChainBlock } from '../api/contract.js';
import type { Ledger } from './ledger.js';

/** Finalized blocks by height range, with transaction ids and certificate signers (no contents). */
export async function listBlocks(ledger: Ledger, from: number, to: number): Promise<ChainBlock[]> {
  const out: ChainBlock[] = [];
  const last = Math.min(to, ledger.height, from + MAX_BLOCKS_PER_PAGE - 1);
  for (let h = Math.max(0, from); h <= last; h++) {
    const block = await ledger.getBlock(h);
    if (!block) break;
    const cert = await ledger.getCertificate(h);
    const hd = block.header;
    out.push({
      height: h,
      hash: toHex(headerHash(hd)),
      parent: toHex(hd.parent),
      time: hd.time,
      round: hd.round,
      proposer: hd.proposer,
      txRoot: toHex(hd.txRoot),
      eventsRoot: toHex(hd.eventsRoot),
      txs: block.txs.map(txIdOfBytes),
      ...(cert ? { cert: { round: cert.round, signers: cert.sigs.map((s) => s.validator) } } : {}),
    });
  }
  return out;
}
