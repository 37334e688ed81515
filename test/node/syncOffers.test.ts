import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { MAX_REDACTED_OFFER_BYTES, SyncManager } from '../../src/node/sync.js';

/** The candidates a node keeps for a redacted grant payload until f+1 peers agree: bounded whatever peers send. */
type Offers = Map<string, Map<string, { payload: Uint8Array; peers: Set<string> }>>;

function manager(): { offer: (tx: string, payload: Uint8Array, peer: string) => void; offers: Offers; drop: (tx: string) => void; bytes: () => number } {
  const sync = new SyncManager({
    ledger: {} as never,
    chain: {} as never,
    host: () => ({}) as never,
    logger: pino({ level: 'silent' }),
    maxBlockBytes: 1 << 20,
  });
  const inner = sync as unknown as {
    offerRedacted(tx: string, payload: Uint8Array, peer: string): void;
    dropOffers(tx: string): void;
    redactedOffers: Offers;
    redactedOfferBytes: number;
  };
  return {
    offer: (tx, payload, peer) => inner.offerRedacted(tx, payload, peer),
    drop: (tx) => inner.dropOffers(tx),
    offers: inner.redactedOffers,
    bytes: () => inner.redactedOfferBytes,
  };
}

describe('sync: redacted payload candidates from peers', () => {
  it('a lying peer offering many large, different payloads cannot hold more than the byte bound', () => {
    const m = manager();
    const big = 1024 * 1024;
    for (let i = 0; i < 100; i++) m.offer(`tx${i}`, new Uint8Array(big).fill(i), 'liar');
    expect(m.bytes()).toBeLessThanOrEqual(MAX_REDACTED_OFFER_BYTES);
    expect(m.bytes()).toBe(Math.floor(MAX_REDACTED_OFFER_BYTES / big) * big);
    // Forgetting candidates frees their bytes, so honest offers are taken again.
    for (let i = 0; i < 100; i++) m.drop(`tx${i}`);
    expect(m.bytes()).toBe(0);
    m.offer('tx-honest', new Uint8Array(10), 'honest');
    expect(m.offers.get('tx-honest')?.size).toBe(1);
  });

  it('at most 8 distinct contents per transaction; identical bytes from more peers add peers, not copies', () => {
    const m = manager();
    for (let i = 0; i < 20; i++) m.offer('tx', new Uint8Array([i]), `peer${i}`);
    expect(m.offers.get('tx')?.size).toBe(8);
    m.offer('tx', new Uint8Array([1]), 'peer-b');
    m.offer('tx', new Uint8Array([1]), 'peer-c');
    expect([...m.offers.get('tx')!.values()].find((o) => o.payload[0] === 1)?.peers.size).toBe(3);
    expect(m.bytes()).toBe(8);
  });

  it('at most 10,000 transactions with candidates', () => {
    const m = manager();
    for (let i = 0; i < 10_050; i++) m.offer(`tx${i}`, new Uint8Array([1]), 'p');
    expect(m.offers.size).toBe(10_000);
  });
});
