/**
 * One end of a connected Unix socket: a server's accepted client or a client's connection.
 *
 * Message mode is `SOCK_SEQPACKET`: one `send` is one message, one `recvmsg` one whole message.
 * Byte mode is `SOCK_STREAM`. Every operation tries the system call first and waits on the
 * {@linkcode poller} only after `EAGAIN`.
 *
 * Cancellation (`{ signal }`) only ever removes a waiter: an operation waits after `EAGAIN`, when
 * nothing was received or sent, so the connection stays usable. The one exception is a byte-mode
 * `writeMessage()` cancelled after part of its data went out: the peer would see a torn message, so
 * the connection is closed.
 *
 * @module
 */
import { EAGAIN, ECONNRESET, EINTR, EMSGSIZE, ENOTCONN, EPIPE } from "../../ffi/libc.ts";
import { closedError, errnoError, pipeError } from "../errors.ts";
import { checkSignal, whileQueued } from "../abort.ts";
import { readableFrom, writableTo } from "../streams.ts";
import type { OperationOptions, PeerIdentity, PipeConn, PipeMode } from "../types.ts";
import { peerIdentity } from "./identity.ts";
import { poller, type Registration } from "./poller.ts";
import {
  closeFd,
  DIRECT_MIN,
  directArray,
  receiveBytes,
  receiveMessage,
  receiveMessageInto,
  sendBufferSize,
  sendBytes,
  shutdownWrite,
} from "./socket.ts";

/** Bytes `readMessage()` takes at once in byte mode, where there are no messages. */
const BYTE_CHUNK = 64 * 1024;

/**
 * `p` when `read(p)` may receive into it directly: large enough to be worth it, and never one of
 * V8's small on-heap arrays, which a garbage collection may move between taking its address and
 * the `recvmsg` that fills it.
 */
function directTarget(p: Uint8Array): Uint8Array<ArrayBuffer> | undefined {
  return p.length >= DIRECT_MIN && p.buffer instanceof ArrayBuffer ? p as Uint8Array<ArrayBuffer> : undefined;
}

/** A connected Unix socket behind the {@linkcode PipeConn} API. */
export class PosixConn implements PipeConn {
  readonly path: string;
  readonly mode: PipeMode;
  #peer?: PeerIdentity | null;
  #fd: number;
  #registration: Registration;
  #maxMessageSize: number;
  #onClose: (() => void) | undefined;
  /** Sizes of the last two messages received: when equal, the next is expected at that size. */
  #lastSize = 0;
  #sizeRepeated = false;
  /** The array a receive that met EAGAIN had allocated, for the next one; never one handed out. */
  #spare: WeakRef<Uint8Array<ArrayBuffer>> | undefined;
  /** The unread tail of a message that `read()` got into a smaller buffer. */
  #leftover: Uint8Array | null = null;
  /** Writes waiting for room, so that later writes queue behind them instead of overtaking. */
  #writeTail: Promise<unknown> = Promise.resolve();
  #writing = 0;
  /** Set by `closeWrite()`: later writes reject. */
  #writeClosed = false;
  #readable?: ReadableStream<Uint8Array>;
  #writable?: WritableStream<Uint8Array>;

  /**
   * Take ownership of a connected non-blocking socket.
   * @param onClose called once when the connection closes (the listener counts its instances)
   * @param peer the peer's identity when the caller already read it (else read here)
   */
  constructor(
    fd: number,
    path: string,
    mode: PipeMode,
    maxMessageSize: number,
    onClose?: () => void,
    peer?: PeerIdentity | null,
  ) {
    this.#fd = fd;
    this.path = path;
    this.mode = mode;
    this.#maxMessageSize = maxMessageSize;
    this.#onClose = onClose;
    try {
      this.#registration = poller.register(fd, path);
    } catch (error) {
      closeFd(fd);
      onClose?.();
      throw error;
    }
    if (peer !== undefined) this.#peer = peer;
  }

  /** `SO_PEERCRED` with the user's name and groups, read once on first use (or given by connect). */
  get peer(): PeerIdentity | null {
    if (this.#peer === undefined) {
      if (this.closed) return null;
      this.#peer = peerIdentity(this.#fd);
    }
    return this.#peer;
  }

  /** The peer's pid (`SO_PEERCRED`); 0 once closed unasked, as on Windows. */
  get peerPid(): number {
    return this.peer?.pid ?? 0;
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= readableFrom(this);
  }

  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= writableTo(this);
  }

  /** Whether `close()` was called (or the connection was dropped for an oversized message). */
  get closed(): boolean {
    return this.#registration.closed;
  }

  async readMessage(options?: OperationOptions): Promise<Uint8Array | null> {
    const signal = options?.signal;
    checkSignal(signal);
    if (this.#leftover) {
      const rest = this.#leftover;
      this.#leftover = null;
      return rest;
    }
    return this.mode === "message" ? await this.#readMessage(signal) : await this.#readChunk(signal);
  }

  /**
   * One whole message, received into `into` when given (`read()`): then a message that fits is a
   * view of `into`, and a longer one arrives whole in a new array.
   */
  async #readMessage(
    signal: AbortSignal | undefined,
    into?: Uint8Array<ArrayBuffer>,
  ): Promise<Uint8Array | null> {
    while (true) {
      if (this.closed) throw closedError("read from", this.path);
      // A steady size (the common case: fixed-size requests, echoes) lets the receive skip a copy:
      // the message goes straight into a new array of that size (or the one an EAGAIN left over).
      let fresh: Uint8Array<ArrayBuffer> | undefined;
      if (!into && this.#sizeRepeated) {
        fresh = this.#spare?.deref();
        this.#spare = undefined;
        if (fresh?.length !== this.#lastSize) fresh = directArray(this.#maxMessageSize, this.#lastSize);
      }
      const received = into
        ? receiveMessageInto(this.#fd, this.#maxMessageSize, into)
        : receiveMessage(this.#fd, this.#maxMessageSize, fresh);
      switch (received.kind) {
        case "message": {
          const size = received.data.length;
          this.#sizeRepeated = size === this.#lastSize;
          this.#lastSize = size;
          return received.data;
        }
        case "end":
          return null;
        case "again":
          // The array allocated (and zeroed) for this message waits for it, held only weakly: an
          // idle connection keeps no array of its own, as if it had been dropped.
          if (fresh) this.#spare = new WeakRef(fresh);
          fresh = undefined; // not held by this suspended call either
          await poller.readable(this.#registration, signal);
          continue;
        case "too large":
          // The rest of the stream cannot be trusted to be in step: drop the client.
          await this.close();
          throw pipeError(
            RangeError,
            "read from",
            this.path,
            `message of ${received.size} bytes exceeds maxMessageSize ${this.#maxMessageSize}; connection closed`,
          );
        case "error":
          if (received.errno === EINTR) continue;
          // A peer that vanished with unread data resets the connection: that is its end of stream.
          if (received.errno === ECONNRESET) return null;
          throw errnoError(received.errno, "read from", this.path);
      }
    }
  }

  async #readChunk(signal: AbortSignal | undefined): Promise<Uint8Array | null> {
    const buffer = new Uint8Array(Math.min(BYTE_CHUNK, Math.max(this.#maxMessageSize, 1)));
    const n = await this.#readBytes(buffer, signal);
    return n === null ? null : buffer.slice(0, n);
  }

  async #readBytes(p: Uint8Array, signal: AbortSignal | undefined): Promise<number | null> {
    while (true) {
      if (this.closed) throw closedError("read from", this.path);
      const n = receiveBytes(this.#fd, p);
      if (n > 0) return n;
      if (n === 0) return p.length === 0 ? 0 : null;
      if (n === -EAGAIN) {
        await poller.readable(this.#registration, signal);
        continue;
      }
      if (n === -EINTR) continue;
      if (n === -ECONNRESET) return null;
      throw errnoError(-n, "read from", this.path);
    }
  }

  async read(p: Uint8Array, options?: OperationOptions): Promise<number | null> {
    checkSignal(options?.signal);
    if (this.mode === "byte") return await this.#readBytes(p, options?.signal);
    // Message mode: a message longer than `p` is kept and handed out by the next reads,
    // like ERROR_MORE_DATA on Windows. A large enough `p` takes the message straight from the
    // kernel: no fresh array to allocate (and zero) per message, and no copy.
    let message: Uint8Array | null;
    if (this.#leftover) {
      message = this.#leftover;
      this.#leftover = null;
    } else {
      message = await this.#readMessage(options?.signal, directTarget(p));
    }
    // A zero-length message is the peer's closeWrite(): end of stream for byte-oriented reads.
    if (message === null || message.length === 0) return null;
    const n = Math.min(p.length, message.length);
    if (message.buffer !== p.buffer || message.byteOffset !== p.byteOffset) p.set(message.subarray(0, n));
    if (n < message.length) this.#leftover = message.subarray(n);
    return n;
  }

  async writeMessage(data: Uint8Array, options?: OperationOptions): Promise<void> {
    const signal = options?.signal;
    checkSignal(signal);
    const message = this.mode === "message";
    if (this.#writeClosed && !this.closed) throw this.#writeClosedError();
    let sentSome = false;
    if (this.#writing === 0 && !this.closed) {
      // Fast path: nothing queued, and usually the whole message fits at once.
      const n = sendBytes(this.#fd, data);
      if (n === data.length) return;
      if (n >= 0) {
        if (message) throw this.#partial(n, data.length);
        data = data.subarray(n);
        sentSome = n > 0;
      } else if (n !== -EAGAIN && n !== -EINTR) {
        throw this.#sendError(-n, data.length);
      }
    }
    try {
      await this.#queue(async () => {
        if (message) await this.#send(data, true, signal);
        else {
          for (let rest = data; rest.length > 0;) {
            const n = await this.#send(rest, false, signal);
            rest = rest.subarray(n);
            sentSome ||= n > 0;
          }
        }
      }, signal);
    } catch (error) {
      // Cancelled with part of a byte-mode message sent: the peer cannot tell where it ended.
      if (sentSome && signal?.aborted && error === signal.reason) await this.close();
      throw error;
    }
  }

  async write(p: Uint8Array, options?: OperationOptions): Promise<number> {
    if (this.mode === "message") {
      await this.writeMessage(p, options);
      return p.length;
    }
    checkSignal(options?.signal);
    if (this.#writeClosed && !this.closed) throw this.#writeClosedError();
    return await this.#queue(() => this.#send(p, false, options?.signal), options?.signal);
  }

  /**
   * Half-close, after the writes already queued: message mode sends a zero-length message, byte
   * mode calls `shutdown(SHUT_WR)`. See {@linkcode PipeConn.closeWrite}.
   */
  async closeWrite(): Promise<void> {
    if (this.closed) throw closedError("close writing to", this.path);
    if (this.#writeClosed) return;
    this.#writeClosed = true;
    await this.#queue(async () => {
      if (this.closed) throw closedError("close writing to", this.path);
      if (this.mode === "message") {
        await this.#send(new Uint8Array(0), true);
      } else {
        const code = shutdownWrite(this.#fd);
        // ENOTCONN: the peer is already gone, so it has seen the end anyway.
        if (code !== 0 && code !== ENOTCONN) throw errnoError(code, "close writing to", this.path);
      }
    });
  }

  #writeClosedError(): Error {
    return pipeError(Deno.errors.BrokenPipe, "write to", this.path, "writing was closed (closeWrite)", EPIPE);
  }

  /**
   * Run `task` after the writes already waiting, so that writes leave in the order they were made.
   * Cancelled before its turn, it rejects at once and is skipped when its turn comes.
   */
  async #queue<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    this.#writing++;
    const previous = this.#writeTail;
    let started = false;
    const done = previous.catch(() => {}).then(() => {
      checkSignal(signal);
      started = true;
      return task();
    });
    this.#writeTail = done;
    try {
      return await whileQueued(done, signal, () => !started);
    } finally {
      this.#writing--;
    }
  }

  #partial(sent: number, length: number): Error {
    return pipeError(
      Error,
      "write to",
      this.path,
      `only ${sent} of ${length} bytes of the message were sent`,
    );
  }

  /** One `send`, waiting while the socket is full; returns the bytes sent. */
  async #send(data: Uint8Array, whole: boolean, signal?: AbortSignal): Promise<number> {
    while (true) {
      if (this.closed) throw closedError("write to", this.path);
      const n = sendBytes(this.#fd, data);
      if (n >= 0) {
        if (whole && n !== data.length) throw this.#partial(n, data.length);
        return n;
      }
      if (n === -EAGAIN) {
        await poller.writable(this.#registration, this.path, signal);
        continue;
      }
      if (n === -EINTR) continue;
      throw this.#sendError(-n, data.length);
    }
  }

  /** See {@linkcode PipeConn.unref}. */
  unref(): void {
    poller.setRef(this.#registration, false);
  }

  /** See {@linkcode PipeConn.ref}. */
  ref(): void {
    poller.setRef(this.#registration, true);
  }

  /** The error for a failed `send`; `EMSGSIZE` says which limit the message met, and what lifts it. */
  #sendError(code: number, length: number): Error {
    if (code !== EMSGSIZE) return errnoError(code, "write to", this.path);
    return pipeError(
      RangeError,
      "write to",
      this.path,
      `message of ${length} bytes does not fit the socket's send buffer (SO_SNDBUF ${
        sendBufferSize(this.#fd)
      } ` +
        `bytes, capped by net.core.wmem_max without CAP_NET_ADMIN); nothing was sent`,
      EMSGSIZE,
    );
  }

  /** Whether {@linkcode PosixConn.detach} may hand the socket over now: open and idle. */
  get detachable(): boolean {
    const registration = this.#registration;
    return !this.closed && this.#writing === 0 && this.#leftover === null && !this.#writeClosed &&
      registration.readers.length === 0 && registration.writers.length === 0;
  }

  /**
   * Hand the socket over to the relay's copy thread: it leaves the poller and this object reads as
   * closed, but the descriptor stays open. The new owner closes it, then calls `release` (the
   * listener counts its instances by it). Null unless {@linkcode PosixConn.detachable}: a write
   * queued, part of a message unread or writing closed is state only this object can go on from.
   */
  detach(): { fd: number; maxMessageSize: number; release: () => void } | null {
    if (!this.detachable) return null;
    const registration = this.#registration;
    poller.unregister(registration);
    const onClose = this.#onClose;
    this.#onClose = undefined;
    const fd = this.#fd;
    return {
      fd,
      maxMessageSize: this.#maxMessageSize,
      release: () => {
        closeFd(fd);
        onClose?.();
      },
    };
  }

  /** Close the socket. Data already sent stays readable by the peer. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    poller.unregister(this.#registration, true);
    closeFd(this.#fd);
    this.#onClose?.();
    await poller.idle();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
