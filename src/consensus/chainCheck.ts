import { bytesEqual } from '../records/crypto/bytes.js';
import { decodeCanonical } from '../records/encoding.js';
import { isMedLedgerError } from '../records/errors.js';
import { MemoryState } from '../records/state/memoryState.js';
import { tableNames, type StateChange } from '../records/state/types.js';
import { decodeBlock, encodeBlock, genesisBlock, headerHash, type Block } from './block.js';
import { validateBlock, type ExecutedBlock, type ParentRef, type TxCache } from './blockExecution.js';
import type { SignatureVerifier } from '../records/crypto/signature.js';
import { genesisState, type Genesis } from './genesis.js';
import { certificateSchema, verifyCertificate, type Certificate } from './votes.js';

/**
 * Re-verification of a stored or downloaded chain from genesis, one block at a time, without trusting
 * whoever stored it: every block is re-executed against a fresh state (hash links, proposer signatures,
 * Merkle roots, the parent certificate it carries, every transaction signature and permission rule, the
 * audit events), and the commit certificate stored beside it must certify it. Pure: the integrity monitor
 * and `medledger verify` feed it bytes from LevelDB or from the HTTP API.
 */
export class ChainFault extends Error {
  constructor(
    readonly height: number,
    readonly problem: string,
  ) {
    super(`height ${height}: ${problem}`);
    this.name = 'ChainFault';
  }
}

/** Blocks are bounded by the genesis' maxBlockBytes; stored ones also carry their certificate. */
export function maxStoredBlockBytes(genesis: Genesis): number {
  return genesis.params.maxBlockBytes * 2 + 1024 * 1024;
}

export class ChainChecker {
  private parent: ParentRef;
  readonly state: MemoryState;

  constructor(
    readonly genesis: Genesis,
    /** What a signature pre-check on workers found valid (`signaturePrecheck.ts`): transactions and other signatures. */
    private readonly opts: { txCache?: TxCache; verify?: SignatureVerifier } = {},
    from?: { parent: ParentRef; state: MemoryState },
  ) {
    if (from) {
      this.parent = from.parent;
      this.state = from.state;
    } else {
      const block0 = genesisBlock(genesis);
      this.parent = { header: block0.header, hash: headerHash(block0.header) };
      this.state = genesisState(genesis);
    }
  }

  /** Height verified so far (0 before any block). */
  get height(): number {
    return this.parent.header.height;
  }

  get head(): ParentRef {
    return this.parent;
  }

  /** Block 0 is not signed: it must be byte for byte the one derived from the genesis file. */
  checkGenesisBlock(bytes: Uint8Array | undefined): void {
    if (!bytes) throw new ChainFault(0, 'block 0 is missing');
    if (!bytesEqual(bytes, encodeBlock(genesisBlock(this.genesis)))) {
      throw new ChainFault(0, 'block 0 is not the block of this genesis file (another network, or altered)');
    }
  }

  /** Decodes stored block bytes, naming the height when they are not a valid block. */
  decode(bytes: Uint8Array | undefined, height: number): Block {
    if (!bytes) throw new ChainFault(height, 'block is missing');
    let block: Block;
    try {
      block = decodeBlock(bytes, maxStoredBlockBytes(this.genesis));
    } catch (err) {
      throw new ChainFault(height, `block cannot be decoded: ${(err as Error).message}`);
    }
    if (block.header.height !== height) throw new ChainFault(height, `stored block claims height ${block.header.height}`);
    return block;
  }

  /**
   * Verifies the next block and, when given, its commit certificate, then moves to it. `cert: null`
   * skips the certificate (a caller that checks several replicas' certificates of one block itself).
   */
  next(block: Block, cert: Certificate | Uint8Array | null | undefined): ExecutedBlock {
    const h = this.height + 1;
    if (block.header.height !== h) throw new ChainFault(block.header.height, `expected block ${h}`);
    let executed: ExecutedBlock;
    try {
      executed = validateBlock(block, this.parent, this.state, {
        genesis: this.genesis,
        ...(this.opts.txCache ? { txCache: this.opts.txCache } : {}),
        ...(this.opts.verify ? { verify: this.opts.verify } : {}),
      });
    } catch (err) {
      if (!isMedLedgerError(err)) throw err;
      throw new ChainFault(h, err.message.replace(/^block \d+: /, ''));
    }
    if (cert !== null) this.checkCertificate(cert, h, executed.hash);
    this.state.write(executed.changes);
    this.parent = { header: block.header, hash: executed.hash };
    return executed;
  }

  /**
   * Takes the execution of the next block as given, for a block this process validated itself moments ago
   * (consensus or sync): checks that it follows the head and that its stored certificate certifies it.
   */
  adopt(executed: ExecutedBlock, cert: Certificate | Uint8Array | undefined): void {
    const h = this.height + 1;
    const { header } = executed.block;
    if (header.height !== h || !bytesEqual(header.parent, this.parent.hash))
      throw new ChainFault(header.height, `does not follow the verified block ${this.height}`);
    this.checkCertificate(cert, h, executed.hash);
    this.state.write(executed.changes);
    this.parent = { header, hash: executed.hash };
  }

  /** The certificate stored with block `height` must certify exactly that block. */
  checkCertificate(cert: Certificate | Uint8Array | undefined, height: number, hash: Uint8Array): Certificate {
    const parsed = parseCertificate(cert, height);
    try {
      verifyCertificate(parsed, this.genesis.validators, this.genesis.file.network, { height, block: hash }, this.opts.verify);
    } catch (err) {
      throw new ChainFault(height, `stored commit certificate: ${(err as Error).message}`);
    }
    return parsed;
  }

  /** An independent copy at the same height (replicas whose histories part ways here). */
  fork(): ChainChecker {
    const copy = new MemoryState();
    const changes: StateChange[] = [];
    for (const table of tableNames) for (const [key, value] of this.state.entries(table)) changes.push({ table, key, value } as StateChange);
    copy.write(changes);
    return new ChainChecker(this.genesis, this.opts, { parent: this.parent, state: copy });
  }
}

export function parseCertificate(cert: Certificate | Uint8Array | undefined, height: number): Certificate {
  if (!cert) throw new ChainFault(height, 'no commit certificate stored with the block');
  if (!(cert instanceof Uint8Array)) return cert;
  try {
    return certificateSchema.parse(decodeCanonical(cert, 'certificate'));
  } catch (err) {
    throw new ChainFault(height, `stored commit certificate cannot be decoded: ${(err as Error).message.split('\n')[0]}`);
  }
}
