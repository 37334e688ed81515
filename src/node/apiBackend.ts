import { encodeCanonical } from '../records/encoding.js';
import type { Genesis } from '../consensus/genesis.js';
import type { StatusResponse, SubmitBatchResponse, SubmitTxResponse } from '../api/contract.js';
import type { ApiBackend, SubmitBatchBody, SubmitTxBody } from './api/backend.js';
import { evidenceOf, proofOf } from './auditorView.js';
import { listBlocks } from './chainView.js';
import type { NodeConfig } from './config.js';
import { keyProofOf } from './keyProof.js';
import type { Ledger } from './ledger.js';
import type { Mempool } from './mempool.js';
import type { NodeMetrics } from './metrics.js';
import { listPayloads } from './payloadListing.js';
import { overviewOf, publicInvitation, publicUser, recipientsFor } from './views.js';
import { statsBatchesOf, statsJobOf } from './stats/views.js';

/** The parts of a running node the API answers from (MedLedgerNode has them all). */
export interface ApiBackendSource {
  readonly config: Pick<NodeConfig, 'dataDir' | 'testControls'>;
  readonly genesis: Genesis;
  readonly ledger: Ledger;
  readonly mempool: Mempool;
  readonly metrics: NodeMetrics;
  readonly host: { readonly peerId: string; setBlockedPeers(peers: string[]): Promise<void> };
  status(): StatusResponse;
  submit(req: SubmitTxBody): Promise<SubmitTxResponse>;
  submitBatch(req: SubmitBatchBody): Promise<SubmitBatchResponse>;
  /** The statistics aggregator, if this node runs one. */
  readonly stats?: { waitingFor(job: string): string[] | undefined } | undefined;
}

/** The node as the HTTP routes see it (node/api/backend.ts): every answer read from the node at call time. */
export function createApiBackend(node: ApiBackendSource): ApiBackend {
  const { ledger } = node;
  return {
    get peerId() {
      return node.host.peerId;
    },
    genesis: node.genesis,
    dataDir: node.config.dataDir,
    testControls: node.config.testControls,
    status: () => node.status(),
    metrics: () => node.metrics.exposition(),
    submit: (req) => node.submit(req),
    submitBatch: (req) => node.submitBatch(req),
    user: (id) => ledger.state.get('users', id),
    publicUser: (id) => {
      const user = ledger.state.get('users', id);
      return user ? publicUser(user) : undefined;
    },
    invitation: (id) => {
      const inv = ledger.state.get('invitations', id);
      return inv ? publicInvitation(inv) : undefined;
    },
    keyProof: (userId) => keyProofOf(ledger, userId),
    overview: (user) => overviewOf(ledger, user),
    recipients: (user, patientId) => recipientsFor(ledger, user, patientId),
    patientKeys: (patientId, reader) => ledger.keysOfPatient(patientId, reader),
    blocks: (from, to) => listBlocks(ledger, from, to),
    rawBlocks: async (from, to) => {
      const blocks: { height: number; block: Uint8Array; cert?: Uint8Array }[] = [];
      for (let h = from; h <= Math.min(to, ledger.height); h++) {
        const block = await ledger.getBlockBytes(h, { cold: true }); // bulk: out of LevelDB's block cache
        if (!block) break;
        const cert = await ledger.getCertificate(h);
        blocks.push({ height: h, block, ...(cert ? { cert: encodeCanonical(cert) } : {}) });
      }
      return blocks;
    },
    txLocation: (txId) => ledger.txLocation(txId),
    isPending: (txId) => node.mempool.has(txId),
    proof: (txId) => proofOf(ledger, txId),
    evidence: () => evidenceOf(ledger),
    payloads: (from, to) => listPayloads(ledger, from, to),
    statsJob: (id) => statsJobOf(ledger.state, id, node.stats?.waitingFor(id)),
    statsBatches: (measure) => statsBatchesOf(ledger.state, measure),
    setBlockedPeers: (peers) => node.host.setBlockedPeers(peers),
  };
}
