/**
 * One connected pipe end (a server's accepted client or a client's connection): whole-message reads
 * over overlapped `ReadFile`, writes over overlapped `WriteFile`, and the seed's close.
 *
 * Zero-length messages: in message mode a zero-byte write is a real message and a read of it
 * completes with 0 bytes and success, so `readMessage()` resolves to an empty array; end of stream is
 * `ERROR_BROKEN_PIPE` / `ERROR_PIPE_NOT_CONNECTED` and resolves to `null`. The two never mix.
 *
 * Cancellation (`{ signal }`): `CancelIoEx` on the operation's own OVERLAPPED, and the call settles
 * once its packet is dequeued, so the read buffer is never handed to a second `ReadFile` while the
 * kernel may still write into it. A cancelled read consumed nothing (a read that got data completes
 * normally instead), so the connection stays usable. A message longer than the 64 KiB buffer is
 * cancellable only until its first part arrives: the rest of a message is already in the pipe (a
 * message-mode write is queued whole), so it is read without waiting and returned, rather than cut
 * off with its boundary lost. A cancelled write that was pending in the kernel closes the connection:
 * NPFS may have handed part of it to the reader already, and the completion does not say how much.
 *
 * @module
 */
import {
  ERROR_BROKEN_PIPE,
  ERROR_MORE_DATA,
  ERROR_NO_DATA,
  ERROR_OPERATION_ABORTED,
  ERROR_PIPE_NOT_CONNECTED,
  FILE_PIPE_LOCAL_INFORMATION,
  kernel32,
  ntdll,
} from "../../ffi/kernel32.ts";
import { logger } from "../log.ts";
import { closedError, pipeError, win32Error } from "../errors.ts";
import { checkSignal, whileQueued } from "../abort.ts";
import { readableFrom, writableTo } from "../streams.ts";
import type { OperationOptions, PeerIdentity, PipeConn, PipeMode } from "../types.ts";
import {
  cancel,
  closeAssociated,
  type Completion,
  drained,
  setHandleRef,
  submit,
} from "./completion_port.ts";
import type { Handle } from "./handles.ts";
import { clientIdentity } from "./identity.ts";

const log = logger("windows");

/**
 * The read buffer starts small and grows (to the next power of two, at most 64 KiB like tokio's and
 * libuv's) only when a message or a byte-mode read did not fit: every idle connection keeps one
 * pending read, and 1,000 of them with 64 KiB each held 64 MiB, with 4 KiB each 4 MiB (1 KiB: the
 * bench server's slope under Wine went from 11.9 to 9.0 MiB per 1,000 idle clients). A message
 * longer than the buffer costs one `PeekNamedPipe` and one more `ReadFile`, once per size class.
 */
const FIRST_READ = 1024;
const MAX_READ = 64 * 1024;
/** Writes at most this small are copied: V8 may keep tiny typed arrays on its moving heap. */
const COPY_BELOW = 256;
const EMPTY = new Uint8Array(new ArrayBuffer(1)).subarray(0, 0);

/** Which end of the pipe this is: the server end may `DisconnectNamedPipe`. */
export type Side = "server" | "client";

function endOfStream(error: number): boolean {
  return error === ERROR_BROKEN_PIPE || error === ERROR_PIPE_NOT_CONNECTED || error === ERROR_NO_DATA;
}

/** Resolve a completion that may be inline or pending. */
function settle(c: Completion | Promise<Completion>): Promise<Completion> {
  return c instanceof Promise ? c : Promise.resolve(c);
}

/** A connected pipe end over kernel32. */
export class PipeConnection implements PipeConn {
  readonly path: string;
  readonly mode: PipeMode;
  /** Undefined until first asked on the server side: see {@linkcode PipeConnection.peer}. */
  #peer?: PeerIdentity | null;
  #peerPid?: number;
  #handle: Handle;
  #side: Side;
  #maxMessageSize: number;
  /** Runs just before the handle is closed: the listener creates the instance's replacement first. */
  #beforeClose?: () => void;
  #buffer?: Uint8Array;
  #reading: Promise<unknown> = Promise.resolve();
  #wrote = false;
  /** A read saw end of stream: the peer is gone, so nothing it has not read can matter any more. */
  #peerGone = false;
  #closing?: Promise<void>;
  /** Set by `closeWrite()`: later writes reject. */
  #writeClosed = false;
  /** Writes in flight, which `closeWrite()` waits for. */
  #writes = new Set<Promise<unknown>>();
  #readable?: ReadableStream<Uint8Array>;
  #writable?: WritableStream<Uint8Array>;

  constructor(
    handle: Handle,
    path: string,
    mode: PipeMode,
    side: Side,
    maxMessageSize: number,
    beforeClose?: () => void,
    peer?: PeerIdentity | null,
  ) {
    this.#handle = handle;
    if (peer !== undefined) this.#peer = peer;
    if (peer?.pid) this.#peerPid = peer.pid;
    this.path = path;
    this.mode = mode;
    this.#side = side;
    this.#maxMessageSize = maxMessageSize;
    this.#beforeClose = beforeClose;
  }

  /**
   * The client's token, read on first use (server end; the client end is given its server's identity
   * by `connect()`), as the POSIX backend reads `SO_PEERCRED`: the named-pipe file system captured the
   * client's context when it opened the pipe, so the answer does not depend on when it is asked. Reading
   * it at every accept cost about 11 wineserver requests of the 33 a connect, round trip and close made
   * under Wine, and its strings about 1.5 KiB of every idle connection. `null` once closed unasked.
   */
  get peer(): PeerIdentity | null {
    if (this.#peer === undefined) {
      // The handle may already be closed; a client end is always given its server's identity.
      if (this.#closing || this.#side !== "server") return null;
      this.#peer = clientIdentity(this.#handle, this.peerPid, this.path);
    }
    return this.#peer;
  }

  /** `GetNamedPipeClientProcessId` (server end) or `GetNamedPipeServerProcessId`, asked once. */
  get peerPid(): number {
    if (this.#peerPid === undefined) {
      if (this.#closing) return 0; // the handle may already be closed
      const pid = new Uint32Array(1);
      const k = kernel32();
      const ok = this.#side === "server"
        ? k.GetNamedPipeClientProcessId(this.#handle, pid)
        : k.GetNamedPipeServerProcessId(this.#handle, pid);
      this.#peerPid = ok ? pid[0] : 0;
    }
    return this.#peerPid;
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= readableFrom(this);
  }

  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= writableTo(this);
  }

  /**
   * Reads are serialized: one OVERLAPPED read per connection, and the read buffer is reused. A read
   * cancelled while it waits for its turn rejects at once and is skipped.
   */
  #serial<T>(task: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    let started = false;
    const run = () => {
      checkSignal(signal);
      started = true;
      return task();
    };
    const next = this.#reading.then(run, run);
    this.#reading = next.catch(() => {});
    return whileQueued(next, signal, () => !started);
  }

  #readBuffer(): Uint8Array {
    return this.#buffer ??= new Uint8Array(new ArrayBuffer(FIRST_READ));
  }

  /** After a read that did not fit: a buffer for `size` bytes next time (no read is pending now). */
  #grow(size: number): void {
    const length = this.#buffer?.length ?? 0;
    if (size <= length || length >= MAX_READ) return;
    this.#buffer = new Uint8Array(new ArrayBuffer(Math.min(MAX_READ, 2 ** Math.ceil(Math.log2(size)))));
  }

  /** One `ReadFile` of up to `size` bytes into `buffer` at `offset`. */
  #readInto(
    buffer: Uint8Array,
    offset: number,
    size: number,
    signal: AbortSignal | undefined,
  ): Promise<Completion> {
    // Never issue I/O once close() began: the handle value may soon belong to another object.
    if (this.#closing) return Promise.reject(closedError("read from", this.path));
    const h = this.#handle;
    const target = buffer.subarray(offset, offset + size);
    return settle(submit(h, (ov) => kernel32().ReadFile(h, target, size, null, ov), buffer, signal));
  }

  readMessage(options?: OperationOptions): Promise<Uint8Array | null> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return this.#serial(() => this.#readMessage(signal), signal);
  }

  async #readMessage(signal: AbortSignal | undefined): Promise<Uint8Array | null> {
    if (this.#closing) throw closedError("read from", this.path);
    const buffer = this.#readBuffer();
    let c = await this.#readInto(buffer, 0, buffer.length, signal);
    if (c.error === 0) {
      // Byte mode: a full buffer says more was waiting.
      if (c.bytes === buffer.length) this.#grow(2 * buffer.length);
      return c.bytes > this.#maxMessageSize ? this.#tooLarge(c.bytes) : buffer.slice(0, c.bytes);
    }
    if (c.error !== ERROR_MORE_DATA) return this.#failedRead(c.error, signal);
    // The message is longer than the buffer: size the rest with PeekNamedPipe and read it straight
    // into one array of the exact size.
    let whole = new Uint8Array(0);
    let have = 0;
    const append = (chunk: Uint8Array) => {
      if (have + chunk.length > whole.length) {
        const grown = new Uint8Array(new ArrayBuffer(Math.max(have + chunk.length, whole.length * 2)));
        grown.set(whole.subarray(0, have));
        whole = grown;
      }
      whole.set(chunk, have);
      have += chunk.length;
    };
    append(buffer.subarray(0, c.bytes));
    while (c.error === ERROR_MORE_DATA) {
      // close() may have run while this part was awaited: its handle is gone (the value may already
      // name another object), so ask it nothing more.
      if (this.#closing) throw closedError("read from", this.path);
      const left = this.#bytesLeftInMessage();
      if (have + left > this.#maxMessageSize || have > this.#maxMessageSize) {
        return this.#tooLarge(have + left);
      }
      if (left > 0 && whole.length < have + left) {
        const grown = new Uint8Array(new ArrayBuffer(have + left));
        grown.set(whole.subarray(0, have));
        whole = grown;
      }
      // No signal from here on: the rest of the message is already in the pipe (see the module doc).
      if (left > 0) {
        c = await this.#readInto(whole, have, whole.length - have, undefined);
        if (c.error === 0 || c.error === ERROR_MORE_DATA) have += c.bytes;
      } else {
        c = await this.#readInto(buffer, 0, buffer.length, undefined);
        if (c.error === 0 || c.error === ERROR_MORE_DATA) append(buffer.subarray(0, c.bytes));
      }
      if (have > this.#maxMessageSize) return this.#tooLarge(have);
    }
    if (c.error !== 0) return this.#failedRead(c.error, undefined);
    this.#grow(have);
    return whole.length === have ? whole : whole.slice(0, have);
  }

  /** `PeekNamedPipe`'s lpBytesLeftThisMessage; 0 when unknown. */
  #bytesLeftInMessage(): number {
    const counts = new Uint32Array(3);
    const ok = kernel32().PeekNamedPipe(
      this.#handle,
      null,
      0,
      counts.subarray(0, 1),
      counts.subarray(1, 2),
      counts.subarray(2, 3),
    );
    return ok ? counts[2] : 0;
  }

  async #tooLarge(size: number): Promise<never> {
    log.warn("Dropped the connection to {path}: a message of at least {size} bytes exceeds {max}", {
      path: this.path,
      size,
      max: this.#maxMessageSize,
    });
    await this.close();
    throw pipeError(
      RangeError,
      "read from",
      this.path,
      `message of at least ${size} bytes exceeds maxMessageSize ${this.#maxMessageSize}; connection closed`,
    );
  }

  #failedRead(error: number, signal: AbortSignal | undefined): null {
    if (endOfStream(error)) {
      this.#peerGone = true;
      return null;
    }
    // Our own cancellation: nothing was read (a read that got data completes with success instead).
    if (error === ERROR_OPERATION_ABORTED && signal?.aborted) throw signal.reason;
    if (error === ERROR_OPERATION_ABORTED && this.#closing) throw closedError("read from", this.path);
    throw win32Error(error, "read from", this.path);
  }

  read(p: Uint8Array, options?: OperationOptions): Promise<number | null> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return this.#serial(async () => {
      if (this.#closing) throw closedError("read from", this.path);
      if (p.length === 0) return 0;
      const buffer = this.#readBuffer();
      let c = await this.#readInto(buffer, 0, Math.min(p.length, buffer.length), signal);
      // In message mode ERROR_MORE_DATA just means the rest of this message comes next read.
      if (c.error !== 0 && c.error !== ERROR_MORE_DATA) return this.#failedRead(c.error, signal);
      if (c.bytes === buffer.length && p.length > buffer.length) {
        this.#grow(Math.min(p.length, 2 * buffer.length));
      }
      // A zero-length message is the peer's closeWrite(): end of stream for byte-oriented reads.
      if (c.bytes === 0 && c.error === 0 && this.mode === "message") return null;
      p.set(buffer.subarray(0, c.bytes));
      let have = c.bytes;
      // A message longer than the read buffer but not than `p` still comes whole, as on Linux: only
      // a message longer than `p` is handed out over several reads. No signal from here on: the rest
      // of the message is already in the pipe (see readMessage).
      while (c.error === ERROR_MORE_DATA && have < p.length) {
        if (this.#closing) throw closedError("read from", this.path);
        const rest = this.#readBuffer();
        c = await this.#readInto(rest, 0, Math.min(p.length - have, rest.length), undefined);
        // The pipe broke mid-message: hand out what came; the next read meets the failure again.
        if (c.error !== 0 && c.error !== ERROR_MORE_DATA) break;
        p.set(rest.subarray(0, c.bytes), have);
        have += c.bytes;
        if (c.bytes === rest.length && p.length - have > 0) this.#grow(Math.min(p.length, 2 * rest.length));
      }
      return have;
    }, signal);
  }

  write(p: Uint8Array, options?: OperationOptions): Promise<number> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#closing) return Promise.reject(closedError("write to", this.path));
    if (this.#writeClosed) {
      return Promise.reject(
        pipeError(Deno.errors.BrokenPipe, "write to", this.path, "writing was closed (closeWrite)", 232),
      );
    }
    return this.#write(p, signal);
  }

  /**
   * Half-close, after the writes in flight: message mode writes a zero-length message; byte mode has
   * no way to tell the peer, which sees end of stream at close(). See {@linkcode PipeConn.closeWrite}.
   */
  async closeWrite(): Promise<void> {
    if (this.#closing) throw closedError("close writing to", this.path);
    if (this.#writeClosed) return;
    const empty = this.mode === "message" ? this.#write(EMPTY) : undefined;
    this.#writeClosed = true;
    // Earlier writes report their own failures to their callers.
    await Promise.allSettled([...this.#writes]);
    await empty;
  }

  async #write(p: Uint8Array, signal?: AbortSignal): Promise<number> {
    const pending = this.#writeFile(p, signal);
    this.#writes.add(pending);
    try {
      return await pending;
    } finally {
      this.#writes.delete(pending);
    }
  }

  async #writeFile(p: Uint8Array, signal: AbortSignal | undefined): Promise<number> {
    const h = this.#handle;
    const data = p.length === 0 ? EMPTY : p.length <= COPY_BELOW ? p.slice() : p;
    this.#wrote = true;
    const c = await settle(
      submit(h, (ov) => kernel32().WriteFile(h, data, data.length, null, ov), data, signal),
    );
    if (c.error === ERROR_OPERATION_ABORTED && signal?.aborted) {
      // The peer may hold part of it: see the module doc.
      log.warn("Closed the connection to {path}: a pending write was cancelled", { path: this.path });
      await this.close();
      throw signal.reason;
    }
    if (c.error !== 0) {
      if (c.error === ERROR_OPERATION_ABORTED && this.#closing) throw closedError("write to", this.path);
      throw win32Error(c.error, "write to", this.path);
    }
    return c.bytes;
  }

  async writeMessage(data: Uint8Array, options?: OperationOptions): Promise<void> {
    let sent = await this.write(data, options);
    // A byte-mode pipe may take part of a large write; a message-mode write is all or nothing.
    while (sent < data.length) sent += await this.write(data.subarray(sent), options);
  }

  /** See {@linkcode PipeConn.unref}. */
  unref(): void {
    if (!this.#closing) setHandleRef(this.#handle, false);
  }

  /** See {@linkcode PipeConn.ref}. */
  ref(): void {
    if (!this.#closing) setHandleRef(this.#handle, true);
  }

  close(): Promise<void> {
    return this.#closing ??= this.#close();
  }

  async #close() {
    const h = this.#handle;
    // Shutdown order: CancelIoEx, drain the aborted packets, then CloseHandle.
    cancel(h);
    await drained(h);
    // A client that is gone (a read saw its end of stream) reads nothing more: no disconnect to decide.
    if (this.#side === "server" && !this.#peerGone && !this.#peerMayHaveUnreadData()) {
      kernel32().DisconnectNamedPipe(h);
    }
    // No FlushFileBuffers: it blocks until the peer has read everything, forever for a peer that never
    // reads, and Deno's blocking pool is only 8 threads. DisconnectNamedPipe would discard unread data,
    // so when data may be unread we skip it and only close the handle: the peer still reads what is
    // buffered and then sees end of stream, which is what the seed's flush achieved, without blocking.
    this.#beforeClose?.();
    closeAssociated(h);
  }

  /**
   * True unless `FilePipeLocalInformation` shows the outbound buffer empty (WriteQuotaAvailable ==
   * OutboundQuota, libuv's check before flushing).
   */
  #peerMayHaveUnreadData(): boolean {
    if (!this.#wrote) return false;
    const iosb = new Uint8Array(16);
    const info = new Uint32Array(10);
    const status = ntdll().NtQueryInformationFile(this.#handle, iosb, info, 40, FILE_PIPE_LOCAL_INFORMATION);
    // FILE_PIPE_LOCAL_INFORMATION: ... [6] OutboundQuota, [7] WriteQuotaAvailable ...
    return status !== 0 || info[6] !== info[7];
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
