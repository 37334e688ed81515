/**
 * LevelDB key layout. Heights and indexes are zero-padded so lexicographic order is chain order, which
 * lets every index answer "newest first" with one reverse range scan and no full scan.
 */
const pad = (n: number, width: number) => n.toString().padStart(width, '0');

export const seqKey = (height: number, index: number) => `${pad(height, 12)}${pad(index, 5)}`;
export const parseSeqKey = (seq: string) => ({ height: Number(seq.slice(0, 12)), index: Number(seq.slice(12, 17)) });
export const SEQ_LENGTH = 17;

export const K = {
  head: 'm/head',
  genesis: 'm/genesis',
  consensus: 'm/consensus',
  consensusBlock: (hashHex: string) => `m/cblock/${hashHex}`,
  consensusBlockPrefix: 'm/cblock/',
  block: (h: number) => `b/${pad(h, 12)}`,
  blockPrefix: 'b/',
  cert: (h: number) => `c/${pad(h, 12)}`,
  blockByHash: (hashHex: string) => `bh/${hashHex}`,
  txLocation: (txIdHex: string) => `t/${txIdHex}`,
  event: (seq: string) => `e/${seq}`,
  eventPrefix: 'e/',
  state: (table: string, key: string) => `s/${table}/${key}`,
  statePrefix: 's/',
  /** Off-chain payload of a transaction (ciphertext, wrapped keys): purgeable. */
  payload: (txIdHex: string) => `p/${txIdHex}`,
  payloadPrefix: 'p/',
  /** Marks a payload that a record deletion redacted (it no longer matches the hash in its transaction). */
  redacted: (txIdHex: string) => `pr/${txIdHex}`,
  /** A committed payload this node does not hold yet (sync could not get a verified copy): to be repaired. */
  missingPayload: (txIdHex: string) => `pm/${txIdHex}`,
  missingPayloadPrefix: 'pm/',
  /** blob id → id of the transaction whose payload holds its ciphertext. */
  blob: (blob: string) => `bl/${blob}`,
  /** wrapped data key of a blob for one user → {tx whose payload carries it, key}. */
  wrappedKey: (blob: string, user: string) => `wk/${blob}\0${user}`,
  wrappedKeyPrefix: (blob: string) => `wk/${blob}\0`,
  /** Every wrapped key of every blob of a record (blob ids start with the record id). */
  wrappedKeyRecordPrefix: (record: string) => `wk/${record}/`,
  /** A grant payload (by transaction id) that carries a key of the blob: every one is redacted on deletion. */
  blobGrant: (blob: string, txIdHex: string) => `gb/${blob}\0${txIdHex}`,
  blobGrantPrefix: (blob: string) => `gb/${blob}\0`,
  /** blobs of a record, and of a patient. */
  recordBlob: (record: string, blob: string) => `rb/${record}\0${blob}`,
  recordBlobPrefix: (record: string) => `rb/${record}\0`,
  patientBlob: (patient: string, blob: string) => `pb/${patient}\0${blob}`,
  patientBlobPrefix: (patient: string) => `pb/${patient}\0`,
  /** Committed (successful) statsReport transactions of a (measure, batch), value-less, in chain order (issue 13). */
  statsReport: (measure: string, batch: string, seq: string) => `sr/${measure}/${batch}\0${seq}`,
  statsReportPrefix: (measure: string, batch: string) => `sr/${measure}/${batch}\0`,
  evidence: (height: number, id: string) => `x/${pad(height, 12)}/${id}`,
  evidencePrefix: 'x/',
} as const;

/** Audit indexes: value-less keys ending in the event's sequence key. */
export type IndexName = 'patient' | 'user' | 'hospital' | 'record' | 'time';
const INDEX_TAG: Record<IndexName, string> = { patient: 'ip', user: 'iu', hospital: 'ih', record: 'ir', time: 'it' };

export function indexPrefix(index: IndexName, value: string | number): string {
  return `${INDEX_TAG[index]}/${index === 'time' ? pad(Number(value), 13) : `${value}\0`}`;
}

export function indexKey(index: IndexName, value: string | number, seq: string): string {
  return `${indexPrefix(index, value)}${seq}`;
}

export const timeIndexRoot = `${INDEX_TAG.time}/`;
export const padTime = (t: number) => pad(t, 13);
