import { concatBytes, toHex, utf8 } from '../crypto/bytes.js';
import { openWithKey, sealToKey } from '../crypto/keyAgreement.js';
import { MedLedgerError } from '../errors.js';
import type { MeasureName, StatsInstance } from './measures.js';

/**
 * Sealing a Prio3 input share for one hospital's aggregator key (issue 13), with the project's one X25519 +
 * HKDF-SHA256 + AES-256-GCM pipeline (crypto/keyAgreement.ts). The associated data binds the share to its
 * network and its exact place: patient, record and version, measure, batch, instance, report nonce and
 * hospital index — a share copied into another report, instance or slot does not open.
 *
 * Wire form of a sealed share: epk (32 bytes) ‖ ciphertext ‖ tag (16 bytes).
 */
export interface ShareContext {
  genesisHash: Uint8Array;
  patient: string;
  record: string;
  version: number;
  measure: MeasureName;
  batch: string;
  instance: StatsInstance;
  /** The report's Prio3 nonce (16 bytes). */
  nonce: Uint8Array;
  /** The hospital's index in the genesis (its Prio3 aggregator id). */
  hospitalIndex: number;
}

const SHARE_INFO = utf8('medledger/stats-share/v1');
export const SEALED_SHARE_OVERHEAD = 32 + 16;

export function shareAad(c: ShareContext): Uint8Array {
  return utf8(
    [
      'medledger/stats-share/v1',
      toHex(c.genesisHash),
      c.patient,
      c.record,
      String(c.version),
      c.measure,
      c.batch,
      c.instance,
      toHex(c.nonce),
      String(c.hospitalIndex),
    ].join('|'),
  );
}

export function sealShare(aggregatorKey: Uint8Array, context: ShareContext, inputShare: Uint8Array): Uint8Array {
  const { epk, sealed } = sealToKey(aggregatorKey, SHARE_INFO, inputShare, shareAad(context));
  return concatBytes(epk, sealed);
}

/** Opens a sealed share with the hospital's aggregator key pair; TAMPERED when it was not sealed for this place. */
export function openShare(aggregator: { secretKey: Uint8Array; publicKey: Uint8Array }, context: ShareContext, sealed: Uint8Array): Uint8Array {
  if (sealed.length < SEALED_SHARE_OVERHEAD) throw new MedLedgerError('TAMPERED', 'sealed share too short');
  return openWithKey(aggregator.secretKey, aggregator.publicKey, sealed.subarray(0, 32), sealed.subarray(32), SHARE_INFO, shareAad(context));
}
