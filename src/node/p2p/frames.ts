import type { Stream } from '@libp2p/interface';

/**
 * Length-prefixed (unsigned varint) framing for the request/response protocols, and the errors that
 * request() reports. Kept apart from host.ts so the byte handling can be read (and tested) on its own.
 */

export type P2PRequestErrorKind = 'refused' | 'timeout' | 'too-large' | 'protocol' | 'reset';

/** A failed request(): `kind` says which way it failed, the message says where. */
export class P2PRequestError extends Error {
  override readonly name = 'P2PRequestError';
  constructor(
    readonly kind: P2PRequestErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// 2^53 needs 8 varint bytes; anything longer is garbage, not a length.
const MAX_VARINT_BYTES = 8;
const HIGH_WATER_BYTES = 1024 * 1024;

export function encodeFrame(data: Uint8Array): Uint8Array {
  let n = data.byteLength;
  const header: number[] = [];
  while (n >= 0x80) {
    header.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  header.push(n);
  const out = new Uint8Array(header.length + data.byteLength);
  out.set(header, 0);
  out.set(data, header.length);
  return out;
}

/**
 * Reads length-prefixed frames from a stream until the remote closes its writable end. While the consumer
 * is busy with a frame and more than HIGH_WATER_BYTES are buffered, the stream is paused: that stops yamux
 * window updates, so the sender stalls instead of our memory growing. A frame larger than that is still
 * read whole, since the reader is waiting for it.
 */
export class FrameReader {
  private readonly chunks: Uint8Array[] = [];
  private buffered = 0;
  private ended = false;
  private failure: Error | undefined;
  private paused = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly stream: Stream,
    private readonly maxFrameBytes: number,
    private readonly describe: string,
  ) {
    stream.addEventListener('message', this.onMessage);
    stream.addEventListener('remoteCloseWrite', this.onEnd);
    stream.addEventListener('close', this.onClose);
    if (stream.remoteWriteStatus === 'closed') this.ended = true;
  }

  /** The next frame, or undefined once the remote has closed cleanly after a whole frame. */
  async next(idleTimeoutMs: number): Promise<Uint8Array | undefined> {
    const deadline = Date.now() + idleTimeoutMs;
    for (;;) {
      const frame = this.takeFrame();
      if (frame) {
        if (this.paused && this.buffered < HIGH_WATER_BYTES) this.setPaused(false);
        return frame;
      }
      if (this.paused) {
        // Need more bytes. Resuming hands over what the stream held back synchronously, even when the
        // remote has already closed (libp2p signals remoteCloseWrite before paused data is read).
        this.setPaused(false);
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.ended) {
        if (this.buffered === 0) return undefined;
        throw new P2PRequestError('protocol', `${this.describe}: stream ended inside a frame (${this.buffered} bytes left over)`);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new P2PRequestError('timeout', `${this.describe}: no response frame within ${idleTimeoutMs} ms`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  dispose(): void {
    this.stream.removeEventListener('message', this.onMessage);
    this.stream.removeEventListener('remoteCloseWrite', this.onEnd);
    this.stream.removeEventListener('close', this.onClose);
    this.wake?.();
  }

  private readonly onMessage = (evt: { data: { subarray(): Uint8Array } }): void => {
    const chunk = evt.data.subarray();
    if (chunk.byteLength === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
    if (this.wake) this.wake();
    else if (!this.paused && this.buffered >= HIGH_WATER_BYTES) this.setPaused(true);
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake?.();
  };

  private readonly onClose = (evt: { error?: Error }): void => {
    if (evt.error && !this.failure) {
      this.failure = new P2PRequestError('reset', `${this.describe}: stream reset (${evt.error.message})`, { cause: evt.error });
    }
    this.ended = true;
    this.wake?.();
  };

  private setPaused(paused: boolean): void {
    try {
      if (paused) this.stream.pause();
      else this.stream.resume();
      this.paused = paused;
    } catch {
      // the readable end already closed: nothing more will arrive, so there is nothing to pause
      this.paused = false;
    }
  }

  private takeFrame(): Uint8Array | undefined {
    if (this.buffered === 0) return undefined;
    let length = 0;
    let headerBytes = 0;
    let complete = false;
    scan: for (const chunk of this.chunks) {
      for (const byte of chunk) {
        length += (byte & 0x7f) * 2 ** (7 * headerBytes);
        headerBytes++;
        if (byte < 0x80) {
          complete = true;
          break scan;
        }
        if (headerBytes >= MAX_VARINT_BYTES) {
          throw new P2PRequestError('protocol', `${this.describe}: malformed frame length prefix`);
        }
      }
    }
    if (!complete) return undefined;
    // Refuse as soon as the header is in, before buffering the oversized body.
    if (length > this.maxFrameBytes) {
      throw new P2PRequestError('too-large', `${this.describe}: response frame of ${length} bytes exceeds maxFrameBytes ${this.maxFrameBytes}`);
    }
    if (this.buffered < headerBytes + length) return undefined;
    return this.take(headerBytes + length).subarray(headerBytes);
  }

  private take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const want = n - filled;
      if (chunk.byteLength <= want) {
        out.set(chunk, filled);
        filled += chunk.byteLength;
        this.chunks.shift();
      } else {
        out.set(chunk.subarray(0, want), filled);
        filled += want;
        this.chunks[0] = chunk.subarray(want);
      }
    }
    this.buffered -= n;
    return out;
  }
}
