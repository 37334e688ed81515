import { TopicValidatorResult } from '@libp2p/gossipsub';
import type { Logger } from 'pino';

/**
 * Gossip validation outcomes, and the one place (judgeValidation) where an outcome becomes the gossipsub
 * verdict and the penalty charged to the sender. After Lodestar's GossipActionError:
 *  - a validator returns 'accept', or a WeighedVerdict when the message also cost us useless work;
 *  - it refuses a message by throwing a GossipError whose action says whose fault it is: 'reject' (the
 *    sender's: provably bad data; not delivered, not forwarded, gossipsub scores it down, and `penalty`
 *    reject units are charged) or 'ignore' (nobody's, or merely useless now: a duplicate, a stale height, a
 *    race; charged only an explicit `penalty`, by default nothing);
 *  - anything else it throws is a bug of ours, not the sender's fault: the message is ignored, nothing is
 *    charged, and a warning is logged (error name and stack frames only, never the message's bytes).
 */

export type Verdict = 'accept' | 'reject' | 'ignore';
/**
 * A verdict with the cost the message caused, in reject units (a plain 'reject' is 1): a batch that made us
 * check many bad signatures costs its sender that many, and merely useless work a fraction each.
 */
export interface WeighedVerdict {
  verdict: Verdict;
  penalty: number;
}

export type GossipAction = 'reject' | 'ignore';

/** A message refused on purpose: `action` is the verdict, `penalty` the reject units charged to the sender. */
export class GossipError extends Error {
  override readonly name = 'GossipError';
  readonly penalty: number;
  constructor(
    readonly action: GossipAction,
    /** Why, for the debug log: our own words, never the message's contents. */
    readonly reason: string,
    penalty?: number,
  ) {
    super(`gossip ${action}: ${reason}`);
    this.penalty = penalty ?? (action === 'reject' ? 1 : 0);
  }

  /** The sender's fault: provably bad data. */
  static reject(reason: string, penalty = 1): GossipError {
    return new GossipError('reject', reason, penalty);
  }

  /** Not useful here (or not the sender's fault); charged only `penalty`, by default nothing. */
  static ignore(reason: string, penalty = 0): GossipError {
    return new GossipError('ignore', reason, penalty);
  }
}

export interface GossipHandler {
  /**
   * Runs for every gossip message received on the topic, before it is delivered or forwarded. Returns a
   * verdict (normally 'accept'), or throws a GossipError to reject or ignore the message.
   */
  validate(data: Uint8Array, fromPeer: string): Verdict | WeighedVerdict | Promise<Verdict | WeighedVerdict>;
  /** Called only for messages that validate() accepted. */
  deliver?(data: Uint8Array, fromPeer: string): void;
}

/** What a validator did: returned a verdict, or threw. */
export type ValidationOutcome = { returned: Verdict | WeighedVerdict } | { thrown: unknown };

export interface Judgement {
  verdict: Verdict;
  /** The same verdict, as gossipsub takes it. */
  result: TopicValidatorResult;
  /** Reject units to charge the sender (0: nothing). */
  penalty: number;
  /** Set when the validator failed on its own (our bug): the message is ignored and nothing is charged. */
  unexpected?: unknown;
}

export interface JudgeContext {
  topic: string;
  peer: string;
  bytes: number;
  log: Logger;
}

const RESULT: Record<Verdict, TopicValidatorResult> = {
  accept: TopicValidatorResult.Accept,
  reject: TopicValidatorResult.Reject,
  ignore: TopicValidatorResult.Ignore,
};

/** Runs the topic's validator, first refusing a message over the size limit; never throws. */
export async function runValidator(
  handler: GossipHandler | undefined,
  data: Uint8Array,
  fromPeer: string,
  maxMessageBytes: number,
): Promise<ValidationOutcome> {
  if (data.byteLength > maxMessageBytes) return { thrown: GossipError.reject('over the size limit') };
  // Subscribed without a handler: neither deliver nor forward.
  if (!handler) return { thrown: GossipError.ignore('no handler for the topic') };
  try {
    return { returned: await handler.validate(data, fromPeer) };
  } catch (err) {
    return { thrown: err };
  }
}

/** The one mapping from a validation outcome to the gossipsub verdict and the sender's penalty. */
export function judgeValidation(outcome: ValidationOutcome, ctx: JudgeContext): Judgement {
  const { topic, peer, bytes, log } = ctx;
  if ('thrown' in outcome) {
    const err = outcome.thrown;
    if (err instanceof GossipError) {
      if (err.action === 'reject') log.debug({ topic, peer, bytes, reason: err.reason, penalty: err.penalty }, 'gossip message rejected');
      return judged(err.action, err.penalty);
    }
    log.warn({ topic, peer, bytes, ...describeUnexpected(err) }, 'gossip validator failed on its own; message ignored, sender not charged');
    return { ...judged('ignore', 0), unexpected: err };
  }
  const returned = outcome.returned;
  const verdict: unknown = typeof returned === 'string' ? returned : returned?.verdict;
  if (verdict !== 'accept' && verdict !== 'reject' && verdict !== 'ignore') {
    log.error({ topic, verdict: String(verdict) }, 'gossip validator returned an unknown verdict; ignoring the message');
    return { ...judged('ignore', 0), unexpected: new Error(`unknown verdict ${String(verdict)}`) };
  }
  const penalty = typeof returned === 'string' ? undefined : returned.penalty;
  return judged(verdict, penalty ?? (verdict === 'reject' ? 1 : 0));
}

/** What the host decides for one received message: runValidator, then judgeValidation. */
export async function judgeMessage(
  handler: GossipHandler | undefined,
  data: Uint8Array,
  ctx: { topic: string; peer: string; maxMessageBytes: number; log: Logger },
): Promise<Judgement> {
  const outcome = await runValidator(handler, data, ctx.peer, ctx.maxMessageBytes);
  return judgeValidation(outcome, { topic: ctx.topic, peer: ctx.peer, bytes: data.byteLength, log: ctx.log });
}

function judged(verdict: Verdict, penalty: number): Judgement {
  return { verdict, result: RESULT[verdict], penalty };
}

/**
 * What is logged of an unexpected error: its name and where it was thrown. Not its message, which may quote
 * the gossip message it choked on.
 */
function describeUnexpected(err: unknown): { errName: string; at?: string[] } {
  if (!(err instanceof Error)) return { errName: typeof err };
  const frames = (err.stack ?? '')
    .split('\n')
    .filter((line) => /^\s+at /.test(line))
    .slice(0, 5)
    .map((line) => line.trim());
  return frames.length > 0 ? { errName: err.name, at: frames } : { errName: err.name };
}
