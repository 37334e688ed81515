import type { Connection, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { lpStream } from '@libp2p/utils';
import type { Libp2p } from 'libp2p';
import type { Logger } from 'pino';
import { errMessage } from './errMessage.js';
import { encodeFrame, FrameReader, P2PRequestError } from './frames.js';

/**
 * Request/response over one stream per request: the requester sends one length-prefixed request and
 * half-closes; the responder streams length-prefixed frames back and closes. Both sides enforce frame size
 * limits and idle timeouts, and both are held back by the other's pace instead of buffering without bound.
 */

export type RequestHandler = (request: Uint8Array, fromPeer: string) => AsyncIterable<Uint8Array>;

export interface HandleOptions {
  /** Largest request accepted. Default: the host's maxFrameBytes. */
  maxRequestBytes?: number;
  /** Largest response frame the handler may yield (a bigger one aborts the response). Default: the host's maxFrameBytes. */
  maxFrameBytes?: number;
  /** How long to wait for the request, and for the requester to take each batch of frames. Default 30 s. */
  timeoutMs?: number;
}

export interface RequestOptions {
  /** Idle timeout: for opening the stream and then for each response frame. Default: config requestTimeoutMs. */
  timeoutMs?: number;
  maxFrameBytes?: number;
  maxFrames?: number;
}

export interface ServeLimits {
  maxRequestBytes: number;
  maxFrameBytes: number;
  timeoutMs: number;
}

export const DEFAULT_HANDLER_TIMEOUT_MS = 30_000;
// Response frames produced in the same tick are written together: one writeV is much cheaper than many writes.
const RESPONSE_BATCH_BYTES = 256 * 1024;
const RESPONSE_BATCH_FRAMES = 256;
const SEND_HIGH_WATER_BYTES = 1024 * 1024;

/** The responder side: reads the request, runs the handler and streams its frames back. Never throws. */
export async function serveRequest(
  stream: Stream,
  connection: Connection,
  protocol: string,
  handler: RequestHandler,
  limits: ServeLimits,
  log: Logger,
): Promise<void> {
  const fromPeer = connection.remotePeer.toString();
  const lp = lpStream(stream, { maxDataLength: limits.maxRequestBytes });
  let frames: AsyncIterator<Uint8Array> | undefined;
  let sent = 0;
  try {
    const request = (await lp.read({ signal: AbortSignal.timeout(limits.timeoutMs) })).subarray();
    frames = handler(request, fromPeer)[Symbol.asyncIterator]();
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const out = batch;
      batch = [];
      batchBytes = 0;
      const signal = AbortSignal.timeout(limits.timeoutMs);
      await lp.writeV(out, { signal });
      // libp2p's 'drain' fires on every window update, not when the write buffer is empty, so waiting for
      // one drain still lets the buffer grow by a batch per update. Hold the handler until it is mostly sent.
      while (stream.writeBufferLength > SEND_HIGH_WATER_BYTES) {
        if (stream.writableNeedsDrain) await nextDrain(stream, signal);
        else await new Promise((resolve) => setImmediate(resolve));
        signal.throwIfAborted();
      }
    };
    let pending = frames.next();
    for (;;) {
      let result: IteratorResult<Uint8Array>;
      if (batch.length === 0) {
        result = await pending;
      } else {
        // Flush what we have unless the handler produces its next frame within this tick.
        const raced = await Promise.race([pending, new Promise<'idle'>((resolve) => setImmediate(resolve, 'idle'))]);
        if (raced === 'idle') {
          pending.catch(() => undefined); // still awaited below; avoid an unhandled rejection while flushing
          await flush();
          result = await pending;
        } else {
          result = raced;
        }
      }
      if (result.done) break;
      const frame = result.value;
      if (frame.byteLength > limits.maxFrameBytes) {
        throw new Error(`handler yielded a ${frame.byteLength}-byte frame, over maxFrameBytes ${limits.maxFrameBytes}`);
      }
      batch.push(frame);
      batchBytes += frame.byteLength;
      sent++;
      if (batchBytes >= RESPONSE_BATCH_BYTES || batch.length >= RESPONSE_BATCH_FRAMES) await flush();
      pending = frames.next();
    }
    await flush();
    await stream.close({ signal: AbortSignal.timeout(limits.timeoutMs) });
    log.debug({ protocol, peer: fromPeer, frames: sent }, 'served request');
  } catch (err) {
    log.debug({ protocol, peer: fromPeer, frames: sent, err: errMessage(err) }, 'request handling failed');
    stream.abort(err instanceof Error ? err : new Error(String(err)));
    // Let the handler release whatever it holds (iterators, snapshots).
    await frames?.return?.().catch(() => undefined);
  }
}

/**
 * The requester side: opens a stream to the peer, sends the request and yields each response frame.
 * Failures are P2PRequestErrors; stopping early (or failing) resets the stream so the responder stops.
 */
export async function* sendRequest(
  libp2p: Libp2p,
  peerId: string,
  fullProtocol: string,
  request: Uint8Array,
  opts: { timeoutMs: number; maxFrameBytes: number; maxFrames: number; describe: string },
): AsyncGenerator<Uint8Array> {
  const { timeoutMs, maxFrameBytes, maxFrames, describe } = opts;
  let stream: Stream;
  try {
    stream = await libp2p.dialProtocol(peerIdFromString(peerId), fullProtocol, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      throw new P2PRequestError('timeout', `${describe}: could not open a stream within ${timeoutMs} ms`, { cause: err });
    }
    if (name === 'UnsupportedProtocolError') {
      throw new P2PRequestError('refused', `${describe}: peer does not serve ${fullProtocol}`, { cause: err });
    }
    throw new P2PRequestError('refused', `${describe}: cannot open stream (${errMessage(err)})`, { cause: err });
  }

  const reader = new FrameReader(stream, maxFrameBytes, describe);
  let completed = false;
  try {
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      if (!stream.send(encodeFrame(request))) await nextDrain(stream, signal);
      await stream.close({ signal }); // half-close: the request is complete
    } catch (err) {
      if (signal.aborted) throw new P2PRequestError('timeout', `${describe}: sending the request took over ${timeoutMs} ms`, { cause: err });
      throw new P2PRequestError('reset', `${describe}: sending the request failed (${errMessage(err)})`, { cause: err });
    }
    let frames = 0;
    for (;;) {
      const frame = await reader.next(timeoutMs);
      if (frame === undefined) break;
      if (++frames > maxFrames) throw new P2PRequestError('too-large', `${describe}: more than maxFrames ${maxFrames} response frames`);
      yield frame;
    }
    completed = true;
  } finally {
    reader.dispose();
    // On error, timeout or the consumer stopping early, reset so the responder stops producing.
    if (!completed) stream.abort(new Error('request abandoned by requester'));
  }
}

/**
 * The next 'drain' event. Not stream.onDrain(): in @libp2p/utils 7.4 its promise is never reset, so after
 * the first drain it resolves at once forever and a wait loop on it spins without yielding.
 */
function nextDrain(stream: Stream, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      stream.removeEventListener('drain', onDrain);
      stream.removeEventListener('close', onClose);
      signal.removeEventListener('abort', onAbort);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (evt: { error?: Error }): void => {
      cleanup();
      reject(evt.error ?? new Error('stream closed while waiting to send'));
    };
    const onAbort = (): void => {
      cleanup();
      reject(signal.reason as Error);
    };
    if (signal.aborted) return onAbort();
    stream.addEventListener('drain', onDrain);
    stream.addEventListener('close', onClose);
    signal.addEventListener('abort', onAbort);
  });
}
