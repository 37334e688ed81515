import { ApiClient } from '../../client/apiClient.js';

/** `medledger status --api URL [--json]`: the node's view of the chain (PROTOCOL.md §7.6). */
export async function runStatus(opts: { api: string; json?: boolean }): Promise<void> {
  const s = await new ApiClient(opts.api).status();
  if (opts.json) {
    const { node, peerId, height, headHash, finalizedHeight, finalizedHash, peers } = s;
    process.stdout.write(
      `${JSON.stringify({ node, peerId, height, headHash, finalizedHeight, finalizedHash, peers, hospital: s.hospital, network: s.network, round: s.round, mempool: s.mempool, integrity: s.integrity })}\n`,
    );
    return;
  }
  const lines = [
    `node       ${s.node} (${s.hospital}, network ${s.network})`,
    `peer id    ${s.peerId}`,
    `height     ${s.height}  ${s.headHash}`,
    `finalized  ${s.finalizedHeight}  ${s.finalizedHash}`,
    `peers      ${s.peers.length}/${s.validators - 1} connected`,
    `round      ${s.round}   mempool ${s.mempool}`,
    `integrity  ${s.integrity.ok ? `ok (verified to ${s.integrity.verifiedHeight})` : `ALERT at height ${s.integrity.alert?.height}: ${s.integrity.alert?.problem}`}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
