import { mkdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { allocatorInUse } from './allocator.js';
import { bytesEqual, fromBase64, toHex } from '../records/crypto/bytes.js';
import { createSigner, signatureBackend } from '../records/crypto/signature.js';
import { libsodiumUnavailable } from '../records/crypto/ed25519Backends.js';
import { MedLedgerError, isMedLedgerError } from '../records/errors.js';
import { parseGenesis, type Genesis } from '../consensus/genesis.js';
import type { SubmitBatchResponse, SubmitTxResponse, StatusResponse } from '../api/contract.js';
import { submitBatchRequestSchema, submitTxRequestSchema } from '../api/contract.js';
import { createApiServer, type ApiServer } from './api/http.js';
import { apiRoutes } from './api/routes.js';
import { createApiBackend } from './apiBackend.js';
import { ChainWriter } from './chainWriter.js';
import type { NodeConfig } from './config.js';
import { ConsensusEngine } from './consensusEngine.js';
import { encodeProposal, encodeTxBatch, encodeVotes, gossipHandlers, MAX_TX_BATCH, maxGossipBytes, TOPICS } from './gossip.js';
import { IntegrityMonitor } from './integrity/monitor.js';
import { Ledger } from './ledger.js';
import { Mempool } from './mempool.js';
import { NodeMetrics } from './metrics.js';
import { LOOP_DELAY_HIGH_WATER_MS, LoadShedder } from './loadShedder.js';
import { ApiAdmissionLimits } from './admissionLimits.js';
import { loadOrCreatePeerKey } from './p2p/peerKey.js';
import { P2PHost } from './p2p/host.js';
import { LedgerStore } from './store/ledgerStore.js';
import { PAYLOAD_PROTOCOL, SYNC_MAX_FRAME_BYTES, SYNC_PROTOCOL, SyncManager } from './sync.js';
import { admitTx } from './txAdmission.js';
import { readSecretKeyFile } from './keyFile.js';
import { TxTracker } from './txTracker.js';
import { decodeTxCached } from '../consensus/blockExecution.js';
import { txIdOfBytes } from '../records/tx/codec.js';
import { attachStatsAggregator, type StatsAggregator } from './stats/aggregator.js';
import { leafHash } from '../consensus/merkle.js';

/** Transactions of an API batch admitted between two yields to the event loop (~5 ms of work). */
const ADMISSION_SLICE = 50;

export function readGenesisFile(file: string): Genesis {
  return parseGenesis(JSON.parse(readFileSync(file, 'utf8')));
}

/** Batches locally submitted transactions into gossip messages (gossipsub has no backpressure). */
class TxOutbox {
  private items: { id: string; tx: Uint8Array; payload?: Uint8Array }[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly publish: (data: Uint8Array) => void,
    /** Still waiting for a block: a transaction already committed (or dropped) is not gossiped. */
    private readonly pending: (id: string) => boolean,
    private readonly flushMs = 20,
    private readonly maxBytes = 512 * 1024,
  ) {}

  push(id: string, tx: Uint8Array, payload?: Uint8Array): void {
    this.items.push(payload ? { id, tx, payload } : { id, tx });
    this.bytes += tx.length + (payload?.length ?? 0);
    if (this.bytes >= this.maxBytes || this.items.length >= MAX_TX_BATCH) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.items.length === 0) return;
    const items = this.items.filter((i) => this.pending(i.id)).map(({ tx, payload }) => (payload ? { tx, payload } : { tx }));
    this.items = [];
    this.bytes = 0;
    if (items.length > 0) this.publish(encodeTxBatch(items));
  }
}

/**
 * One hospital's node: the ledger (LevelDB + state), the consensus engine, the libp2p host with gossip
 * and sync, and the loopback HTTP API — wired together, started and stopped as one.
 */
export class MedLedgerNode {
  readonly mempool: Mempool;
  readonly tracker: TxTracker;
  /** Per-user rate and per-node registrations for submissions through this node's API. */
  readonly apiLimits: ApiAdmissionLimits;
  /** The one writer of the chain: consensus and sync commit through it. */
  readonly chain: ChainWriter;
  /** This node's Prometheus registry (GET /metrics). */
  readonly metrics: NodeMetrics;
  engine!: ConsensusEngine;
  host!: P2PHost;
  sync!: SyncManager;
  integrity!: IntegrityMonitor;
  shedder!: LoadShedder;
  /** The hospital's Prio3 aggregator (issue 13); absent when the config names no aggregator key file. */
  stats: StatsAggregator | undefined;
  private server!: ApiServer;
  private outbox!: TxOutbox;
  private apiUrl = '';

  private constructor(
    readonly config: NodeConfig,
    readonly genesis: Genesis,
    readonly ledger: Ledger,
    readonly logger: Logger,
  ) {
    const limits = config.limits;
    this.mempool = new Mempool(
      { maxTxs: limits.mempoolMaxTxs, maxBytes: limits.mempoolMaxBytes, maxPerUser: limits.mempoolMaxPerUser },
      { onEvict: (entry, error) => this.tracker.fail(entry.tx.idHex, error) },
    );
    this.apiLimits = new ApiAdmissionLimits(limits);
    this.tracker = new TxTracker(ledger);
    // Read when scraped: the API (and so /metrics) is up only once everything below is wired.
    this.metrics = new NodeMetrics({
      height: () => ledger.height,
      round: () => this.engine.round,
      peers: () => this.host.connectedPeers().length,
      mempool: () => ({ txs: this.mempool.size, bytes: this.mempool.byteSize }),
      integrity: () => {
        const s = this.integrity.status();
        return { verifiedHeight: s.verifiedHeight, alert: !s.ok };
      },
      payloadsMissing: () => this.sync.repairs.missing,
    });
    this.chain = new ChainWriter(ledger, this.metrics);
  }

  static async start(config: NodeConfig, logger: Logger = pino({ level: config.logLevel, base: { node: config.name } })): Promise<MedLedgerNode> {
    mkdirSync(config.dataDir, { recursive: true });
    const genesis = readGenesisFile(config.genesisFile);
    const hospitalIndex = genesis.validators.findIndex((v) => v.hospital === config.hospital);
    if (hospitalIndex < 0) throw new Error(`hospital ${config.hospital} is not in the genesis file`);
    const signer = createSigner(readSecretKeyFile(config.validatorKeyFile, 'validator key'));
    if (!bytesEqual(signer.publicKey, genesis.validators[hospitalIndex]!.key)) {
      throw new Error(`validator key in ${config.validatorKeyFile} is not ${config.hospital}'s key in the genesis file`);
    }
    const store = await LedgerStore.open(join(config.dataDir, 'ledger'));
    const ledger = await Ledger.open(store, genesis, {
      onDamage: (err) => logger.error({ err }, 'damaged state entry left out of the loaded state (the integrity monitor reports it)'),
    });
    const node = new MedLedgerNode(config, genesis, ledger, logger);
    await node.wire(hospitalIndex, signer);
    return node;
  }

  private async wire(selfIndex: number, signer: ReturnType<typeof createSigner>): Promise<void> {
    const { config, genesis, ledger, logger, mempool, chain, metrics } = this;
    logger.info(
      { backend: signatureBackend(), ...(libsodiumUnavailable ? { libsodium: libsodiumUnavailable } : {}) },
      `Ed25519 signatures through ${signatureBackend()}`,
    );
    const sync = new SyncManager({ ledger, chain, host: () => this.host, logger, maxBlockBytes: genesis.params.maxBlockBytes, metrics });
    this.sync = sync;
    this.engine = new ConsensusEngine({
      ledger,
      chain,
      mempool,
      self: { index: selfIndex, signer },
      publishProposal: (p) => this.publish('block', encodeProposal(p)),
      publishVotes: (votes) => this.publish('vote', encodeVotes(votes)),
      behind: (height, peer) => sync.behind(height, peer),
      dropped: (entry, error) => this.tracker.fail(entry.tx.idHex, error),
      logger,
      metrics,
    });
    this.outbox = new TxOutbox(
      (data) => this.publish('tx', data),
      (id) => this.mempool.has(id),
    );

    const privateKey = await loadOrCreatePeerKey(config.peerKeyFile);
    const ownPeerId = genesis.validators[selfIndex]!.peerId;
    this.host = await P2PHost.start(
      {
        network: genesis.file.network,
        privateKey,
        listen: config.p2p.listen,
        announce: config.p2p.announce,
        allowedPeers: genesis.validators.map((v) => v.peerId).filter((id) => id !== ownPeerId),
        staticPeers: config.p2p.peers,
        topics: [...TOPICS],
        maxMessageBytes: maxGossipBytes(genesis.params.maxBlockBytes),
        logger: logger.child({ module: 'p2p' }),
      },
      // Gossiped transactions are never shed for load: a node that skipped one batch of a user but took the
      // next would propose the later nonces first and make the earlier ones stale (nonces only increase).
      gossipHandlers({ ledger, mempool, engine: this.engine, logger, metrics }),
    );
    if (this.host.peerId !== ownPeerId) {
      throw new Error(`peer key ${config.peerKeyFile} has id ${this.host.peerId}, but the genesis file names ${ownPeerId} for ${config.hospital}`);
    }
    await this.host.handle(SYNC_PROTOCOL, (request) => this.sync.serve(request), { maxFrameBytes: SYNC_MAX_FRAME_BYTES });
    await this.host.handle(PAYLOAD_PROTOCOL, (request) => this.sync.servePayloads(request), { maxFrameBytes: SYNC_MAX_FRAME_BYTES });
    this.stats = await attachStatsAggregator({ node: this, config, genesis, ledger, chain, host: this.host, signer, metrics, logger });
    this.host.onPeerConnect((peer) => {
      this.engine.resendOwn();
      // A reconnecting peer may be ahead: one request finds out.
      this.sync.behind(Number.MAX_SAFE_INTEGER, peer);
    });
    await this.engine.start();
    // Re-verifies the stored chain from genesis now, then every new block and periodically (issue #5).
    this.integrity = new IntegrityMonitor(ledger, {
      logger: logger.child({ module: 'integrity' }),
      busy: () => this.sync.progress.active,
      payloadsToRepair: () => this.sync.repairSoon(),
      ...config.integrity,
    });
    this.integrity.start();
    this.sync.startRepairs();
    // Resumes every pending job of the ledger (restart-safe: all of it is recomputed from the chain).
    this.stats?.start();

    this.shedder = new LoadShedder(
      {
        // Two blocks' worth of queue keeps every proposal full: more only adds latency and memory.
        mempoolHighWater: Math.min(config.limits.mempoolMaxTxs, 2 * genesis.params.maxBlockTxs),
        rssHighWater: config.limits.rssHighWaterMB * 1024 * 1024,
        loopDelayHighWaterMs: LOOP_DELAY_HIGH_WATER_MS,
      },
      () => this.mempool.size,
      metrics,
    );
    this.server = createApiServer(apiRoutes(createApiBackend(this)), {
      maxBodyBytes: config.limits.maxRequestBytes,
      logger: logger.child({ module: 'api' }),
      listenHost: config.api.host,
      allowedHosts: config.api.allowedHosts,
      ...(config.api.headersTimeoutMs !== undefined ? { headersTimeoutMs: config.api.headersTimeoutMs } : {}),
      ...(config.api.rateLimit ? { rateLimit: config.api.rateLimit } : {}),
    });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(config.api.port, config.api.host, () => resolve());
    });
    const address = this.server.address() as AddressInfo;
    this.apiUrl = `http://${config.api.host}:${address.port}`;
    const expire = setInterval(() => {
      for (const e of this.mempool.expire(Date.now()))
        this.tracker.fail(e.tx.idHex, new MedLedgerError('BAD_TIME', 'transaction expired before it could be included'));
    }, 30_000);
    expire.unref();
    logger.info({ api: this.apiUrl, peerId: this.host.peerId, height: ledger.height, allocator: allocatorInUse() }, 'node ready');
  }

  get api(): string {
    return this.apiUrl;
  }

  private publish(topic: string, data: Uint8Array): void {
    this.host.publish(topic, data).catch((err: Error) => this.logger.warn({ topic, err: err.message }, 'publish failed'));
  }

  status(): StatusResponse {
    const head = this.ledger.headRef;
    const hash = toHex(head.hash);
    return {
      node: this.config.name,
      hospital: this.config.hospital,
      network: this.genesis.file.network,
      peerId: this.host.peerId,
      height: this.ledger.height,
      headHash: hash,
      // Only final blocks are ever stored: the head is the finalized head.
      finalizedHeight: this.ledger.height,
      finalizedHash: hash,
      peers: this.host.connectedPeers(),
      validators: this.genesis.validators.length,
      round: this.engine.round,
      mempool: this.mempool.size,
      integrity: this.integrity.status(),
      load: { ...this.shedder.status(), api: { ...this.server.stats } },
      payloads: {
        checked: this.integrity.payloads.checked,
        damaged: this.integrity.payloads.damaged,
        purged: this.integrity.payloads.purged,
        ...this.sync.repairs,
        recent: [...this.integrity.payloads.recent],
      },
      consensusStats: this.engine.stats,
      ...(this.engine.halted ? { halted: this.engine.halted } : {}),
      keystoreDir: this.config.keystoreDir,
      sync: { active: this.sync.progress.active, target: this.sync.progress.target },
      penalties: this.host.penalties(),
    };
  }

  /** A user's signed transaction: admitted, gossiped, and (by default) awaited until final. */
  async submit(req: ReturnType<typeof submitTxRequestSchema.parse>): Promise<SubmitTxResponse> {
    this.shedder.admit();
    const bytes = fromBase64(req.tx);
    const payload = req.payload !== undefined ? fromBase64(req.payload) : undefined;
    let tx: ReturnType<typeof decodeTxCached>;
    try {
      tx = decodeTxCached(bytes, leafHash(bytes), this.ledger.genesis.hash, this.ledger.txCache);
    } catch (err) {
      this.metrics.rejected('api', err);
      throw err;
    }
    // Idempotent re-submission: a transaction already final answers with its audit event, never with the
    // answer of a read or query (that went to the live request only; asking again is a new transaction).
    const location = await this.ledger.txLocation(tx.idHex);
    if (location) return this.committedResponse(tx.idHex, location.height, location.index);
    let admission: ReturnType<typeof admitTx>;
    try {
      admission = this.admit(bytes, payload, Date.now());
    } catch (err) {
      // A retried submission may have become final between the check above and admission.
      const committed = isMedLedgerError(err, 'REPLAY') ? await this.ledger.txLocation(tx.idHex) : undefined;
      if (committed) return this.committedResponse(tx.idHex, committed.height, committed.index);
      this.metrics.rejected('api', err);
      throw err;
    }
    // Only the request that admitted the transaction gets the answer of a read or query.
    const waiting = req.wait ? this.tracker.wait(tx.idHex, req.timeoutMs, admission.status === 'added' ? tx.tx : null) : null;
    if (admission.status === 'added') {
      this.outbox.push(tx.idHex, bytes, payload);
      this.engine.onMempoolTx();
    }
    if (!waiting) return { id: tx.idHex, status: 'pending' };
    const final = await waiting;
    if (!final) return { id: tx.idHex, status: 'pending' };
    return { id: tx.idHex, status: 'committed', height: final.event.height, event: final.event, ...(final.result ? { result: final.result } : {}) };
  }

  private async committedResponse(id: string, height: number, index: number): Promise<SubmitTxResponse> {
    const event = (await this.ledger.getEvent(height, index))!;
    return { id, status: 'committed', height, event };
  }

  /** Admission of one transaction submitted through this node's API, timed (a refusal is counted by the caller, once final). */
  private admit(bytes: Uint8Array, payload: Uint8Array | undefined, now: number): ReturnType<typeof admitTx> {
    return this.metrics.admission('api', () =>
      admitTx({ ledger: this.ledger, mempool: this.mempool }, bytes, payload, { viaHospital: this.config.hospital, now, api: this.apiLimits }),
    );
  }

  /** Bulk submission without waiting (load generators, imports). */
  async submitBatch(req: ReturnType<typeof submitBatchRequestSchema.parse>): Promise<SubmitBatchResponse> {
    const busy = this.shedder.reason();
    if (busy === 'memory' || busy === 'loop') this.shedder.admit();
    const accepted: string[] = [];
    const rejected: SubmitBatchResponse['rejected'] = [];
    const now = Date.now();
    for (const [index, item] of req.txs.entries()) {
      // Admission is CPU work on the event loop that consensus shares: let timers and gossip in regularly.
      if (index > 0 && index % ADMISSION_SLICE === 0) await new Promise((r) => setImmediate(r));
      try {
        this.shedder.admit();
      } catch (err) {
        // Counted as load shed by the shedder, not as a refusal of the transaction.
        rejected.push({ index, code: 'UNAVAILABLE', message: (err as Error).message });
        continue;
      }
      try {
        const bytes = fromBase64(item.tx);
        const payload = item.payload !== undefined ? fromBase64(item.payload) : undefined;
        const admission = this.admit(bytes, payload, now);
        if (admission.status === 'added') this.outbox.push(admission.tx.idHex, bytes, payload);
        accepted.push(admission.tx.idHex);
      } catch (err) {
        if (!isMedLedgerError(err) && !(err instanceof TypeError)) throw err;
        // A batch sent again (its answer was lost with a dropped socket) is answered like its first time: a
        // transaction already final is accepted, as POST /v1/tx answers it with its event.
        const id = isMedLedgerError(err, 'REPLAY') ? txIdOfBytes(fromBase64(item.tx)) : undefined;
        if (id !== undefined && (await this.ledger.txLocation(id))) accepted.push(id);
        else {
          rejected.push({ index, code: isMedLedgerError(err) ? err.code : 'MALFORMED', message: (err as Error).message });
          this.metrics.rejected('api', isMedLedgerError(err) ? err : 'MALFORMED');
        }
      }
    }
    if (accepted.length > 0) this.engine.onMempoolTx();
    return { accepted, rejected };
  }

  async stop(): Promise<void> {
    // Nothing is committed from now on; the step or synced block in progress finishes first.
    await this.chain.close();
    await this.engine.stop();
    await this.stats?.stop();
    this.outbox.flush();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    await this.host.stop();
    await this.sync.close();
    await this.integrity.stop();
    this.shedder.stop();
    await this.ledger.close();
    this.logger.info('node stopped');
  }
}
