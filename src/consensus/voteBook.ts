import { toHex } from '../records/crypto/bytes.js';
import type { SignedVote } from './votes.js';

/**
 * The signed votes of one height, indexed by (round, type, validator) so that every lookup is O(1) and
 * what a byzantine validator can make us keep is bounded (after CometBFT's bounded vote sets):
 * - per slot (round, type, validator) the first vote and at most MAX_CONFLICTING_PER_SLOT others (enough
 *   to prove equivocation and to follow the state machine, which counts a few conflicting votes);
 * - only rounds up to MAX_ROUNDS_AHEAD above the current one.
 * Memory: rounds × validators × 2 types × (1 + MAX_CONFLICTING_PER_SLOT) votes of ~200 B, and the rounds
 * of one height grow only with honest timeouts (f validators alone cannot push a node to a higher round).
 */
export const MAX_CONFLICTING_PER_SLOT = 2;
/** Votes and proposals further ahead than this are dropped: an honest round cannot be that far ahead. */
export const MAX_ROUNDS_AHEAD = 100;

export type AddResult =
  { kind: 'added'; conflictsWith?: SignedVote } | { kind: 'duplicate' } | { kind: 'dropped'; why: 'slot-full' | 'round-too-far' | 'other-height' };

export function voteValue(v: SignedVote): string | null {
  return v.block ? toHex(v.block) : null;
}

export class VoteBook {
  private readonly slots = new Map<string, SignedVote[]>();

  constructor(readonly height: number) {}

  get size(): number {
    let n = 0;
    for (const s of this.slots.values()) n += s.length;
    return n;
  }

  /**
   * What `add` would do with this vote, without its signature checked: lets gossip validation skip the
   * signature check of votes that would be dropped or are already here.
   */
  wouldAdd(
    v: Pick<SignedVote, 'height' | 'round' | 'type' | 'validator' | 'block'>,
    currentRound: number,
  ): 'new' | 'duplicate' | 'slot-full' | 'round-too-far' | 'other-height' {
    if (v.height !== this.height) return 'other-height';
    if (v.round > currentRound + MAX_ROUNDS_AHEAD) return 'round-too-far';
    const slot = this.slots.get(slotKey(v.round, v.type, v.validator));
    if (!slot) return 'new';
    const value = v.block ? toHex(v.block) : null;
    if (slot.some((o) => voteValue(o) === value)) return 'duplicate';
    return slot.length > MAX_CONFLICTING_PER_SLOT ? 'slot-full' : 'new';
  }

  /** Adds a vote whose signature was checked; `currentRound` bounds how far ahead it may be. */
  add(v: SignedVote, currentRound: number): AddResult {
    if (v.height !== this.height) return { kind: 'dropped', why: 'other-height' };
    if (v.round > currentRound + MAX_ROUNDS_AHEAD) return { kind: 'dropped', why: 'round-too-far' };
    const key = slotKey(v.round, v.type, v.validator);
    const slot = this.slots.get(key);
    if (!slot) {
      this.slots.set(key, [v]);
      return { kind: 'added' };
    }
    const value = voteValue(v);
    if (slot.some((o) => voteValue(o) === value)) return { kind: 'duplicate' };
    if (slot.length > MAX_CONFLICTING_PER_SLOT) return { kind: 'dropped', why: 'slot-full' };
    slot.push(v);
    return { kind: 'added', conflictsWith: slot[0]! };
  }

  /** Precommits for one value in one round: the signatures of a commit certificate. */
  precommitsFor(round: number, value: string): SignedVote[] {
    const out: SignedVote[] = [];
    for (const [key, slot] of this.slots) {
      if (!key.startsWith(`${round}/precommit/`)) continue;
      const v = slot.find((o) => voteValue(o) === value);
      if (v) out.push(v);
    }
    return out;
  }

  /** Every vote of one validator, oldest round first. */
  votesOf(validator: number): SignedVote[] {
    return this.all().filter((v) => v.validator === validator);
  }

  all(): SignedVote[] {
    return [...this.slots.values()].flat().sort((a, b) => a.round - b.round);
  }
}

function slotKey(round: number, type: string, validator: number): string {
  return `${round}/${type}/${validator}`;
}
