/**
 * The chain the storage and verification benchmarks measure: four hospitals' keys and genesis in a
 * temporary directory, and a chain of real user-signed transactions in certified blocks written into
 * hospital A's LevelDB with the node's own store code (each patient registers, then lists records).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNetwork, newUserKeys, type NetworkLayout } from '../src/cli/networkSetup.js';
import { buildBlock } from '../src/consensus/blockExecution.js';
import { parseGenesis, type Genesis } from '../src/consensus/genesis.js';
import { proposerIndex } from '../src/consensus/tendermint.js';
import { certificateFromVotes, signVote } from '../src/consensus/votes.js';
import type { Ledger } from '../src/node/ledger.js';
import { createSigner, type Signer } from '../src/records/crypto/signature.js';
import { signTx } from '../src/records/tx/codec.js';
import type { Tx, UnsignedTx } from '../src/records/tx/types.js';
import { readSecretKeyFile } from '../src/node/keyFile.js';

export interface BenchNetwork {
  dir: string;
  layout: NetworkLayout;
  genesis: Genesis;
  validators: Signer[];
  /** Hospital A's LevelDB directory. */
  storeDir: string;
}

export async function benchNetwork(prefix: string, basePort: number): Promise<BenchNetwork> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const layout = await createNetwork({ dir, nodes: 4, basePort, adminPassword: () => 'Bench-Password-1!', kdf: { N: 1024, r: 8, p: 1 }, logLevel: 'warn' });
  const genesis = parseGenesis(JSON.parse(readFileSync(layout.genesisFile, 'utf8')));
  const validators = layout.nodes.map((n) => createSigner(readSecretKeyFile(join(n.dir, 'validator.key.json'), 'validator key')));
  return { dir, layout, genesis, validators, storeDir: join(layout.nodes[0]!.dataDir, 'ledger') };
}

export interface WrittenChain {
  events: number;
  blocks: number;
  /** Client signing time included in the write (ms). */
  signMs: number;
  /** Block times: the first, and one past the last (blocks are 100 ms apart). */
  start: number;
  end: number;
}

export async function writeSyntheticChain(
  net: BenchNetwork,
  ledger: Ledger,
  opts: { events: number; patients: number; blockSize: number },
): Promise<WrittenChain> {
  const { genesis, validators, layout } = net;
  const patients = Array.from({ length: opts.patients }, (_, i) => newUserKeys(`pat-${i}`, 'patient', layout.nodes[i % 4]!.hospital));
  const signers = patients.map((p) => createSigner(p.signSecret));
  const start = genesis.file.time + 1_000;
  let nonce = 1;
  let written = 0;
  let signMs = 0;
  let time = start;
  for (let index = 0; written < opts.events;) {
    const txs: Tx[] = [];
    const s0 = performance.now();
    for (let k = 0; k < opts.blockSize && written + txs.length < opts.events; k++, index++) {
      const i = index % opts.patients;
      const p = patients[i]!;
      const base = { v: 1 as const, actor: p.userId, key: p.signPublic, via: p.hospital, nonce: nonce++, time };
      const unsigned =
        index < opts.patients
          ? ({ ...base, type: 'registerPatient', body: { encKey: p.encPublic! } } as UnsignedTx<'registerPatient'>)
          : ({ ...base, type: 'listRecords', patient: p.userId, body: {} } as UnsignedTx<'listRecords'>);
      txs.push(signTx(unsigned, signers[i]!, genesis.hash));
    }
    signMs += performance.now() - s0;
    const height = ledger.height + 1;
    const { executed, dropped } = buildBlock({
      genesis,
      parent: ledger.headRef,
      lastCommit: await ledger.headCertificate(),
      state: ledger.state,
      candidates: txs,
      round: 0,
      time,
      signer: validators[proposerIndex(4, height, 0)]!,
    });
    if (dropped.length > 0) throw new Error(`dropped ${dropped.length}: ${dropped[0]!.error.message}`);
    const votes = [0, 1, 2].map((v) =>
      signVote({ type: 'precommit', network: genesis.file.network, height, round: 0, validator: v, block: executed.hash }, validators[v]!, genesis.hash),
    );
    await ledger.commit({ executed, cert: certificateFromVotes(votes), payloads: new Map() });
    written += executed.txs.length;
    time += 100;
  }
  return { events: written, blocks: ledger.height, signMs, start, end: time };
}
