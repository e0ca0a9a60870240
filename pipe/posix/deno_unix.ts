/**
 * Byte mode over Deno's own Unix sockets (`Deno.listen`/`Deno.connect` with `transport: "unix"`),
 * for macOS, where the libc engine cannot run (no `epoll`) and message mode cannot exist (no
 * `SOCK_SEQPACKET` for Unix sockets). It follows the same rules as the libc listener: bound in a
 * private 0700 directory, mode 0600 (0666 for `"everyone"`), hard-linked into place, the file removed
 * on close. Two differences: a stale socket left by a crashed server is refused rather than replaced
 * (telling it from a live one needs a `connect`, which Deno only offers asynchronously, and
 * `listen()` is synchronous), and `peerPid` is 0 and `peer` null (Deno does not expose the peer's
 * credentials), so a client cannot check who serves the name.
 * It needs `--allow-read` and `--allow-write` for the socket path.
 *
 * Cancellation: Deno cannot cancel one read or write of a `Deno.UnixConn`, so a cancelled `read()` or
 * `write()` here closes the connection (it rejects with the signal's reason at once). A cancelled
 * `accept()` leaves the listener usable: a client that arrives afterwards goes to the next `accept()`.
 *
 * On Linux the tests run this module directly, so it is exercised even though it only serves macOS.
 *
 * @module
 */
import { closedError, pipeError } from "../errors.ts";
import { checkSignal, sleep, WakeList, whileQueued } from "../abort.ts";
import { readableFrom, writableTo } from "../streams.ts";
import type {
  ConnectOptions,
  ListenOptions,
  OperationOptions,
  PipeConn,
  PipeDescription,
  PipeListener,
} from "../types.ts";
import { directoryOf, pipePath } from "./path.ts";
import { connectLimits, listenLimits, UNLIMITED_INSTANCES } from "../options.ts";

const MAX_BACKOFF = 100;
/** Bytes `readMessage()` takes at once: a stream has no messages. */
const BYTE_CHUNK = 64 * 1024;

/** Sockets this module holds open, for {@linkcode openHandleCount}. */
let open = 0;

/** Descriptors held open by the Deno-socket backend. */
export function openHandleCount(): number {
  return open;
}

function isClosedError(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted;
}

/** One end of a byte-mode connection over a `Deno.UnixConn`. */
class DenoUnixConn implements PipeConn {
  readonly path: string;
  readonly mode = "byte" as const;
  readonly peerPid = 0;
  /** Deno's Unix sockets expose no peer credentials. */
  readonly peer = null;
  #conn: Deno.UnixConn;
  #maxMessageSize: number;
  #closed = false;
  #writeClosed = false;
  #onClose: (() => void) | undefined;
  #readable?: ReadableStream<Uint8Array>;
  #writable?: WritableStream<Uint8Array>;

  constructor(conn: Deno.UnixConn, path: string, maxMessageSize: number, onClose?: () => void) {
    this.#conn = conn;
    this.path = path;
    this.#maxMessageSize = maxMessageSize;
    this.#onClose = onClose;
    open++;
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= readableFrom(this);
  }

  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= writableTo(this);
  }

  async readMessage(options?: OperationOptions): Promise<Uint8Array | null> {
    const buffer = new Uint8Array(Math.min(BYTE_CHUNK, Math.max(this.#maxMessageSize, 1)));
    const n = await this.read(buffer, options);
    return n === null ? null : buffer.slice(0, n);
  }

  /** `operation`, or, when `signal` aborts first, the connection closed and the signal's reason. */
  async #cancellable<T>(operation: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    try {
      return await whileQueued(operation, signal, () => true);
    } catch (error) {
      if (signal?.aborted && error === signal.reason) {
        operation.catch(() => {}); // it fails with BadResource once closed
        await this.close();
      }
      throw error;
    }
  }

  async read(p: Uint8Array, options?: OperationOptions): Promise<number | null> {
    checkSignal(options?.signal);
    if (this.#closed) throw closedError("read from", this.path);
    try {
      return await this.#cancellable(this.#conn.read(p), options?.signal);
    } catch (error) {
      if (options?.signal?.aborted && error === options.signal.reason) throw error;
      if (this.#closed && isClosedError(error)) throw closedError("read from", this.path);
      if (error instanceof Deno.errors.ConnectionReset) return null;
      throw error;
    }
  }

  async writeMessage(data: Uint8Array, options?: OperationOptions): Promise<void> {
    checkSignal(options?.signal);
    let rest = data;
    while (rest.length > 0) rest = rest.subarray(await this.write(rest, options));
  }

  async write(p: Uint8Array, options?: OperationOptions): Promise<number> {
    checkSignal(options?.signal);
    if (this.#closed) throw closedError("write to", this.path);
    if (this.#writeClosed) {
      throw pipeError(Deno.errors.BrokenPipe, "write to", this.path, "writing was closed (closeWrite)", 32);
    }
    try {
      return await this.#cancellable(this.#conn.write(p), options?.signal);
    } catch (error) {
      if (options?.signal?.aborted && error === options.signal.reason) throw error;
      if (this.#closed && isClosedError(error)) throw closedError("write to", this.path);
      throw error;
    }
  }

  /** `shutdown(SHUT_WR)` through Deno, like the libc backend's byte mode. */
  async closeWrite(): Promise<void> {
    if (this.#closed) throw closedError("close writing to", this.path);
    if (this.#writeClosed) return;
    this.#writeClosed = true;
    await this.#conn.closeWrite();
  }

  /** See {@linkcode PipeConn.unref}: `Deno.Conn.unref()`. */
  unref(): void {
    this.#conn.unref();
  }

  /** See {@linkcode PipeConn.ref}: `Deno.Conn.ref()`. */
  ref(): void {
    this.#conn.ref();
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    open--;
    this.#conn.close();
    this.#onClose?.();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A byte-mode listener over a `Deno.UnixListener`. */
class DenoUnixListener implements PipeListener {
  readonly path: string;
  readonly mode = "byte" as const;
  #listener: Deno.UnixListener;
  #ino: number | null;
  #maxMessageSize: number;
  #maxInstances: number;
  #instances = 0;
  /** Accepts waiting for a connection to close (an instance to be free again) or the listener to close. */
  #slotFreed = new WakeList();
  #closed = false;
  /** Clients accepted for an `accept()` that was cancelled meanwhile: the next ones take them. */
  #ready: Deno.UnixConn[] = [];

  constructor(options: ListenOptions, path: string) {
    this.path = path;
    const limits = listenLimits(options, path);
    this.#maxMessageSize = limits.maxMessageSize;
    this.#maxInstances = limits.maxInstances === UNLIMITED_INSTANCES ? Infinity : limits.maxInstances;
    const fileMode = options.security === "everyone" ? 0o666 : 0o600;
    const directory = directoryOf(path);
    const privateDirectory = Deno.makeTempDirSync({ dir: directory, prefix: ".np-" }); // mode 0700
    const privatePath = `${privateDirectory}/s`;
    try {
      this.#listener = Deno.listen({ transport: "unix", path: privatePath });
      try {
        Deno.chmodSync(privatePath, fileMode);
        linkIntoPlace(privatePath, path);
        this.#ino = Deno.lstatSync(path).ino;
      } catch (error) {
        this.#listener.close();
        throw error;
      }
    } finally {
      Deno.removeSync(privateDirectory, { recursive: true });
    }
    open++;
  }

  #release = () => {
    this.#instances--;
    this.#slotFreed.wakeAll();
  };

  /** `Deno.UnixListener.accept()`, or a client kept from a cancelled `accept()`. */
  async #acceptOne(signal: AbortSignal | undefined): Promise<Deno.UnixConn> {
    const ready = this.#ready.shift();
    if (ready) return ready;
    const operation = this.#listener.accept();
    let abandoned = false;
    operation.then((conn) => {
      if (!abandoned) return;
      if (this.#closed) conn.close();
      else this.#ready.push(conn);
    }, () => {});
    try {
      return await whileQueued(operation, signal, () => true);
    } catch (error) {
      abandoned = signal?.aborted === true && error === signal.reason;
      throw error;
    }
  }

  /**
   * The next client. At `maxInstances` it stops accepting until a connection closes, so further
   * clients wait in the backlog, as with the libc listener.
   */
  async accept(options?: OperationOptions): Promise<PipeConn> {
    const signal = options?.signal;
    checkSignal(signal);
    while (true) {
      if (this.#closed) throw closedError("accept on", this.path);
      if (this.#instances >= this.#maxInstances) {
        await this.#slotFreed.wait(signal);
        continue;
      }
      let conn: Deno.UnixConn;
      try {
        conn = await this.#acceptOne(signal);
      } catch (error) {
        if (signal?.aborted && error === signal.reason) throw error;
        if (this.#closed || isClosedError(error)) throw closedError("accept on", this.path);
        throw error;
      }
      this.#instances++;
      return new DenoUnixConn(conn, this.path, this.#maxMessageSize, this.#release);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<PipeConn> {
    return this.connections();
  }

  async *connections(options?: OperationOptions): AsyncIterableIterator<PipeConn> {
    while (true) {
      try {
        yield await this.accept(options);
      } catch (error) {
        if (this.#closed && error instanceof Deno.errors.BadResource) return;
        throw error;
      }
    }
  }

  /** See {@linkcode PipeListener.unref}: `Deno.Listener.unref()`. */
  unref(): void {
    this.#listener.unref();
  }

  /** See {@linkcode PipeListener.ref}: `Deno.Listener.ref()`. */
  ref(): void {
    this.#listener.ref();
  }

  describe(): PipeDescription {
    let fileMode: number | undefined;
    try {
      fileMode = (Deno.lstatSync(this.path).mode ?? 0) & 0o7777;
    } catch {
      fileMode = undefined;
    }
    return { path: this.path, mode: this.mode, fileMode };
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    open--;
    this.#slotFreed.wakeAll(); // their accept() now rejects
    try {
      // Another server may have replaced our file since: leave theirs alone.
      if (Deno.lstatSync(this.path).ino === this.#ino) Deno.removeSync(this.path);
    } catch {
      // Already gone.
    }
    this.#listener.close();
    for (const conn of this.#ready.splice(0)) conn.close();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * `link` the bound socket to `path`. A socket file already there is refused, live or not: telling
 * a stale one apart needs a connection attempt, and Deno offers no synchronous `connect` for
 * `listen()` to make.
 */
function linkIntoPlace(privatePath: string, path: string): void {
  try {
    Deno.linkSync(privatePath, path);
    return;
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  const isSocket = Deno.lstatSync(path).isSocket;
  throw pipeError(
    Deno.errors.AddrInUse,
    "listen on",
    path,
    isSocket
      ? "name already in use (if no server runs, a crashed one left the file: remove it)"
      : "a file that is not a socket has that name",
    98,
  );
}

/** Listen in byte mode with Deno's own Unix sockets. */
export function listenDenoUnix(options: ListenOptions): PipeListener {
  return new DenoUnixListener(options, pipePath(options.name));
}

/** Connect in byte mode with Deno's own Unix sockets, retrying a missing socket until `timeout`. */
export async function connectDenoUnix(options: ConnectOptions): Promise<PipeConn> {
  const path = pipePath(options.name, options.server ?? ".");
  checkSignal(options.signal);
  const { timeout, maxMessageSize } = connectLimits(options, path);
  const deadline = performance.now() + timeout;
  let backoff = 1;
  while (true) {
    try {
      const conn = await Deno.connect({ transport: "unix", path });
      return new DenoUnixConn(conn, path, maxMessageSize);
    } catch (error) {
      const retriable = error instanceof Deno.errors.NotFound ||
        error instanceof Deno.errors.ConnectionRefused;
      const remaining = deadline - performance.now();
      if (!retriable || remaining <= 0) {
        if (retriable) {
          throw pipeError(Deno.errors.NotFound, "connect to", path, "no server is listening", 2);
        }
        throw error;
      }
      await sleep(Math.min(backoff, remaining), options.signal);
      backoff = Math.min(backoff * 2, MAX_BACKOFF);
    }
  }
}
