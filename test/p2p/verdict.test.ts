import { TopicValidatorResult } from '@libp2p/gossipsub';
import { pino, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { PeerPolicy } from '../../src/node/p2p/peerPolicy.js';
import { GossipError, judgeMessage, judgeValidation, type GossipHandler, type Verdict, type WeighedVerdict } from '../../src/node/p2p/verdict.js';

// The one mapping from a gossip validator's outcome to gossipsub's verdict and the sender's penalty.

type LogLine = { level: number; msg: string } & Record<string, unknown>;

function capture(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log: Logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { log, lines };
}

const WARN = 40;
const ERROR = 50;
const data = new Uint8Array(Buffer.from('secret-plaintext-in-a-message'));

function judgeThrow(err: unknown, log = capture().log) {
  return judgeValidation({ thrown: err }, { topic: 'tx', peer: 'peer-x', bytes: 29, log });
}

function judgeReturn(returned: Verdict | WeighedVerdict, log = capture().log) {
  return judgeValidation({ returned }, { topic: 'tx', peer: 'peer-x', bytes: 29, log });
}

describe('gossip verdicts', () => {
  it('an unexpected exception in a validator is ignored, charges nothing, and is logged as a warning without the message contents', async () => {
    const { log, lines } = capture();
    const handler: GossipHandler = {
      validate(d) {
        // A bug of ours that happens to quote the message it choked on.
        throw new TypeError(`cannot read ${Buffer.from(d).toString()}`);
      },
    };
    const judged = await judgeMessage(handler, data, { topic: 'tx', peer: 'peer-x', maxMessageBytes: 1024, log });
    expect(judged).toMatchObject({ verdict: 'ignore', result: TopicValidatorResult.Ignore, penalty: 0 });
    expect(judged.unexpected).toBeInstanceOf(TypeError);

    const warnings = lines.filter((l) => l.level === WARN);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ topic: 'tx', peer: 'peer-x', bytes: data.byteLength, errName: 'TypeError' });
    expect((warnings[0]!.at as string[]).length).toBeGreaterThan(0);
    expect(JSON.stringify(lines)).not.toContain('secret-plaintext');
  });

  it('an async validator that fails on its own, or throws a non-Error, is ignored too', async () => {
    const { log, lines } = capture();
    const failing: GossipHandler = { validate: async () => Promise.reject(new Error('db closed')) };
    expect(await judgeMessage(failing, data, { topic: 'block', peer: 'p', maxMessageBytes: 1024, log })).toMatchObject({ verdict: 'ignore', penalty: 0 });
    expect(judgeThrow('a string', log)).toMatchObject({ verdict: 'ignore', penalty: 0, unexpected: 'a string' });
    expect(lines.filter((l) => l.level === WARN).map((l) => l.errName)).toEqual(['Error', 'string']);
  });

  it('maps each typed error to its verdict and weight', () => {
    expect(judgeThrow(GossipError.reject('forged'))).toEqual({ verdict: 'reject', result: TopicValidatorResult.Reject, penalty: 1 });
    expect(judgeThrow(GossipError.reject('3 forged', 3.5))).toEqual({ verdict: 'reject', result: TopicValidatorResult.Reject, penalty: 3.5 });
    expect(judgeThrow(GossipError.ignore('stale'))).toEqual({ verdict: 'ignore', result: TopicValidatorResult.Ignore, penalty: 0 });
    expect(judgeThrow(GossipError.ignore('beyond the window', 1 / 50))).toEqual({ verdict: 'ignore', result: TopicValidatorResult.Ignore, penalty: 1 / 50 });
    expect(judgeThrow(new GossipError('reject', 'plain'))).toMatchObject({ verdict: 'reject', penalty: 1 });
    expect(judgeThrow(new GossipError('ignore', 'plain'))).toMatchObject({ verdict: 'ignore', penalty: 0 });
  });

  it('a typed reject is logged at debug with its reason, never as a warning', () => {
    const { log, lines } = capture();
    judgeThrow(GossipError.reject('forged vote signature'), log);
    judgeThrow(GossipError.ignore('duplicate'), log);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 20, reason: 'forged vote signature', penalty: 1 });
  });

  it('takes returned verdicts as they are, a plain reject costing one unit', () => {
    expect(judgeReturn('accept')).toEqual({ verdict: 'accept', result: TopicValidatorResult.Accept, penalty: 0 });
    expect(judgeReturn({ verdict: 'accept', penalty: 0.06 })).toEqual({ verdict: 'accept', result: TopicValidatorResult.Accept, penalty: 0.06 });
    expect(judgeReturn('reject')).toEqual({ verdict: 'reject', result: TopicValidatorResult.Reject, penalty: 1 });
    expect(judgeReturn('ignore')).toEqual({ verdict: 'ignore', result: TopicValidatorResult.Ignore, penalty: 0 });
    expect(judgeReturn({ verdict: 'ignore', penalty: 20 })).toMatchObject({ verdict: 'ignore', penalty: 20 });
  });

  it('an unknown returned verdict is ignored, charges nothing, and is logged as an error', () => {
    const { log, lines } = capture();
    expect(judgeReturn('maybe' as Verdict, log)).toMatchObject({ verdict: 'ignore', result: TopicValidatorResult.Ignore, penalty: 0 });
    expect(lines.map((l) => l.level)).toEqual([ERROR]);
  });

  it('rejects a message over the size limit without running the validator, and ignores a topic without a handler', async () => {
    let ran = false;
    const handler: GossipHandler = { validate: () => ((ran = true), 'accept') };
    const log = capture().log;
    expect(await judgeMessage(handler, data, { topic: 'tx', peer: 'p', maxMessageBytes: 10, log })).toMatchObject({ verdict: 'reject', penalty: 1 });
    expect(ran).toBe(false);
    expect(await judgeMessage(undefined, data, { topic: 'tx', peer: 'p', maxMessageBytes: 1024, log })).toMatchObject({ verdict: 'ignore', penalty: 0 });
  });
});

describe('peer policy', () => {
  it('counts rejected messages, weighs charges within the window, and bans at maxRejects units', () => {
    const banned: string[] = [];
    const policy = new PeerPolicy('self', ['self', 'a', 'b'], { maxRejects: 3, windowMs: 60_000, banMs: 60_000 }, pino({ level: 'silent' }), (p) =>
      banned.push(p),
    );
    expect(policy.refusal('self')).toBe('not allowed');
    expect(policy.refusal('x')).toBe('not allowed');
    expect(policy.refusal('a')).toBeUndefined();

    policy.charge('a', 'tx', 1 / 50, false); // a weighed ignore: charged, not counted as rejected
    policy.charge('a', 'tx', 2, true);
    expect(policy.penalties()).toEqual({ a: { rejected: 1 } });
    expect(banned).toEqual([]);
    policy.charge('a', 'tx', 1, true); // 3.02 units in the window
    expect(banned).toEqual(['a']);
    expect(policy.refusal('a')).toBe('banned');
    expect(policy.penalties().a).toMatchObject({ rejected: 2, bannedUntil: expect.any(Number) });

    policy.setBlocked(['b']);
    expect(policy.refusal('b')).toBe('blocked');
    expect([...policy.setBlocked([])]).toEqual(['b']);
    expect(policy.refusal('b')).toBeUndefined();
  });
});
