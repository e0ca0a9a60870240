/**
 * The named-pipe server behind `listen()` on Windows: pipe instances created with
 * `CreateNamedPipeW`, each waiting in an overlapped `ConnectNamedPipe` on the completion port.
 *
 * - `pendingInstances` (default 4, libuv's) instances listen, and the next one is created as soon as
 *   one connects (tokio's accept loop), so clients arriving together are neither refused nor told
 *   "file not found".
 * - Backpressure: at most `pendingInstances` connections wait for `accept()`. Instances listening
 *   plus connections waiting never exceed it, so beyond that clients see a busy pipe (and `connect()`
 *   waits or times out) instead of piling up handles, kernel quota and memory in a listener that
 *   does not accept.
 * - The name is never let go: an instance is closed only after its replacement exists (when one is
 *   wanted), so between the first instance and `close()` some instance of ours always holds the name
 *   and no other user can create it in a gap and receive our clients. The kernel's instance limit is
 *   therefore `maxInstances + 1`: for that moment the closing instance and its replacement both
 *   exist; the listener itself never lets more than `maxInstances` clients connect.
 * - A connection is delivered before the next instance is created: a failing `CreateNamedPipeW`
 *   never takes the connection from the `accept()` it satisfies; it rejects the next `accept()` with
 *   its own kind (server-side ERROR_PIPE_BUSY: `AddrInUse`, another process holds the instances).
 * - `ERROR_PIPE_CONNECTED` (the client came before `ConnectNamedPipe`) is a connection;
 *   `ERROR_NO_DATA` (the client came and went) is `DisconnectNamedPipe` and re-arm (go-winio #70).
 * - Secure defaults: `PIPE_REJECT_REMOTE_CLIENTS` on every mode combination (RUSTSEC-2023-0001),
 *   `FILE_FLAG_FIRST_PIPE_INSTANCE` on the first instance plus a `WaitNamedPipeW(name, 1)` probe first
 *   (Wine 8 does not enforce the flag), the current user's security descriptor, bInheritHandle FALSE.
 * - Identity: a connected client's token is read (`identity.ts`) on first use of `conn.peer`; with
 *   `authorize`, at once, and the connection is handed on only once admitted (a refused client is
 *   disconnected).
 * - `close()` cancels every pending connect, drains the aborted packets and closes every instance; a
 *   client that connects during the close is simply closed too (go-winio #281, #357).
 *
 * @module
 */
import {
  ERROR_ACCESS_DENIED,
  ERROR_NO_DATA,
  ERROR_PIPE_BUSY,
  ERROR_PIPE_CONNECTED,
  ERROR_SEM_TIMEOUT,
  FILE_FLAG_FIRST_PIPE_INSTANCE,
  FILE_FLAG_OVERLAPPED,
  kernel32,
  PIPE_ACCESS_DUPLEX,
  PIPE_READMODE_BYTE,
  PIPE_READMODE_MESSAGE,
  PIPE_REJECT_REMOTE_CLIENTS,
  PIPE_TYPE_BYTE,
  PIPE_TYPE_MESSAGE,
  PIPE_UNLIMITED_INSTANCES,
  PIPE_WAIT,
} from "../../ffi/kernel32.ts";
import { wide } from "../../ffi/win32_strings.ts";
import { logger } from "../log.ts";
import { closedError, pipeError, win32Error } from "../errors.ts";
import { DEFAULT_BUFFER_SIZE, listenLimits } from "../options.ts";
import type {
  Authorize,
  ListenOptions,
  OperationOptions,
  PipeConn,
  PipeDescription,
  PipeListener,
  PipeMode,
} from "../types.ts";
import { onAbort } from "../abort.ts";
import {
  associate,
  cancel,
  closeAssociated,
  type Completion,
  setHandleRef,
  submit,
} from "./completion_port.ts";
import { PipeConnection } from "./connection.ts";
import { assertCanonicalDacl } from "./dacl_order.ts";
import { adopt, type Handle, isValid } from "./handles.ts";
import { admit } from "../authorize.ts";
import { pipePath } from "./path.ts";
import { readSddl, type SecurityAttributes, securityAttributes } from "./security.ts";

const log = logger("windows");

/** An instance that keeps reporting ERROR_NO_DATA at once is replaced rather than looped on. */
const NO_DATA_RETRIES = 8;

/** A named-pipe server over kernel32. */
export class PipeServer implements PipeListener {
  readonly path: string;
  readonly mode: PipeMode;
  #wideName: Uint16Array;
  #openMode: number;
  #pipeMode: number;
  #maxInstances: number;
  /** nMaxInstances for CreateNamedPipeW: one above ours (see the module doc); 255 = unlimited. */
  #instanceLimit: number;
  #pendingInstances: number;
  #bufferSize: number;
  #maxMessageSize: number;
  #security: SecurityAttributes;
  #sddl?: string;
  #authorize?: Authorize;
  /** Connections whose `authorize` answer is awaited: closed by `close()`. */
  #authorizing = new Set<PipeConn>();
  /** Instances waiting in ConnectNamedPipe. */
  #listening = new Set<Handle>();
  /** Instances alive: listening, or connected and not yet closed (a closing one no longer counts). */
  #live = 0;
  /** Inline connect results not yet handled: a loop, not a recursion through #replenish. */
  #inline: { handle: Handle; completion: Completion; retries: number }[] = [];
  #handlingInline = false;
  /** Connect completions still to be handled. */
  #inflight = new Set<Promise<void>>();
  #ready: PipeConn[] = [];
  #waiters: { resolve(conn: PipeConn): void; reject(error: Error): void }[] = [];
  #closing?: Promise<void>;
  /** False after `unref()`: the listening instances' ConnectNamedPipe keep nothing alive. */
  #ref = true;

  constructor(options: ListenOptions) {
    const path = pipePath(options.name);
    this.path = path;
    const mode = options.mode ?? "message";
    if (mode !== "message" && mode !== "byte") {
      throw pipeError(TypeError, "listen on", path, `unknown mode "${mode}" (expected "message" or "byte")`);
    }
    this.mode = mode;
    const limits = listenLimits(options, path);
    this.#maxInstances = limits.maxInstances;
    this.#instanceLimit = this.#maxInstances === PIPE_UNLIMITED_INSTANCES
      ? PIPE_UNLIMITED_INSTANCES
      : Math.min(this.#maxInstances + 1, PIPE_UNLIMITED_INSTANCES);
    this.#pendingInstances = limits.pendingInstances;
    this.#bufferSize = limits.bufferSize ?? DEFAULT_BUFFER_SIZE;
    this.#maxMessageSize = limits.maxMessageSize;
    const first = options.firstInstance ?? true;
    // Reject remote clients unless explicitly allowed, whatever the mode: the flag is ORed in last,
    // never computed from the mode (RUSTSEC-2023-0001 cleared it when a mode was set).
    this.#pipeMode =
      (mode === "message" ? PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE : PIPE_TYPE_BYTE | PIPE_READMODE_BYTE) |
      PIPE_WAIT |
      (options.rejectRemoteClients ?? true ? PIPE_REJECT_REMOTE_CLIENTS : 0);
    this.#openMode =
      (PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0)) >>> 0;
    this.#wideName = wide(path);
    if (options.authorize !== undefined && typeof options.authorize !== "function") {
      throw pipeError(TypeError, "listen on", path, "authorize must be a function");
    }
    this.#authorize = options.authorize;

    if (first) this.#checkNameFree();
    this.#security = securityAttributes(options.security ?? "user", path);
    let handle: Handle;
    try {
      handle = this.#create(this.#openMode);
    } catch (error) {
      this.#security.free();
      throw error;
    }
    try {
      this.#sddl = readSddl(handle, path);
    } catch {
      // Read back again by describe(); a pipe whose descriptor cannot be read still serves.
    }
    // What the pipe really got must be in canonical order too (deny entries first).
    try {
      if (this.#sddl !== undefined) assertCanonicalDacl(this.#sddl, path);
    } catch (error) {
      closeAssociated(handle); // nothing listens yet: no replacement wanted
      this.#security.free();
      throw error;
    }
    if (options.security === "everyone") {
      log.warn("Pipe {path} is open to everyone (NULL DACL), like the seed", { path });
    }
    this.#arm(handle);
    this.#replenish();
  }

  /**
   * `FILE_FLAG_FIRST_PIPE_INSTANCE` is the real guard on Windows; Wine 8 ignores it, so probe first:
   * `WaitNamedPipeW` fails with ERROR_FILE_NOT_FOUND only when no instance of the name exists, and has
   * no effect on a live server.
   */
  #checkNameFree() {
    const k = kernel32();
    const available = k.WaitNamedPipeW(this.#wideName, 1);
    const error = available ? 0 : k.GetLastError();
    // TRUE: an instance is listening; ERROR_SEM_TIMEOUT: instances exist but are all busy. Any other
    // error (a malformed name, say) is left for CreateNamedPipeW to report.
    if (available || error === ERROR_SEM_TIMEOUT) {
      throw pipeError(Deno.errors.AddrInUse, "create named pipe", this.path, "name already in use", 183);
    }
  }

  /** `CreateNamedPipeW` + association with the completion port; counts the instance. */
  #create(openMode: number): Handle {
    const k = kernel32();
    const h = k.CreateNamedPipeW(
      this.#wideName,
      openMode,
      this.#pipeMode,
      this.#instanceLimit,
      this.#bufferSize,
      this.#bufferSize,
      0, // nDefaultTimeOut: 50 ms for WaitNamedPipe(NMPWAIT_USE_DEFAULT_WAIT); never wait forever
      this.#security.buffer,
    );
    if (!isValid(h)) {
      const error = k.GetLastError();
      const taken = (openMode & FILE_FLAG_FIRST_PIPE_INSTANCE) &&
        (error === ERROR_ACCESS_DENIED || error === ERROR_PIPE_BUSY);
      if (taken) {
        throw pipeError(Deno.errors.AddrInUse, "create named pipe", this.path, "name already in use", error);
      }
      throw win32Error(error, "create named pipe", this.path);
    }
    const handle = adopt(h);
    associate(handle, this.path); // closes the handle itself if it fails
    this.#live++;
    return handle;
  }

  /**
   * Keep instances listening: `pendingInstances` minus the connections already waiting for
   * `accept()` (backpressure), within `maxInstances`.
   * @returns the error that stopped it when creating an instance failed
   */
  #replenish(): Error | undefined {
    while (
      !this.#closing && this.#listening.size + this.#ready.length < this.#pendingInstances &&
      // 255 is PIPE_UNLIMITED_INSTANCES: no cap at all, not a cap of 255.
      (this.#maxInstances === PIPE_UNLIMITED_INSTANCES || this.#live < this.#maxInstances)
    ) {
      let handle: Handle;
      try {
        handle = this.#create(this.#openMode & ~FILE_FLAG_FIRST_PIPE_INSTANCE);
      } catch (error) {
        // Nothing listens, so waiting accepts would wait for nothing: tell them. With instances still
        // listening, the next connection or close tries again.
        if (this.#listening.size === 0) this.#fail(error as Error);
        return error as Error;
      }
      this.#arm(handle);
    }
    return undefined;
  }

  /** `ConnectNamedPipe` on an instance; the result is handled at once or when its packet comes. */
  #arm(handle: Handle, retries = 0) {
    this.#listening.add(handle);
    if (!this.#ref) setHandleRef(handle, false);
    const c = submit(handle, (ov) => kernel32().ConnectNamedPipe(handle, ov));
    if (c instanceof Promise) {
      const done: Promise<void> = c.then((r) => this.#connected(handle, r, 0)).finally(() =>
        this.#inflight.delete(done)
      );
      this.#inflight.add(done);
      return;
    }
    // Inline results are queued and handled by the outermost call: #connected → #replenish → #arm
    // would otherwise recurse once per client that was already waiting.
    this.#inline.push({ handle, completion: c, retries });
    if (this.#handlingInline) return;
    this.#handlingInline = true;
    try {
      for (let next = this.#inline.shift(); next; next = this.#inline.shift()) {
        this.#connected(next.handle, next.completion, next.retries);
      }
    } finally {
      this.#handlingInline = false;
    }
  }

  #connected(handle: Handle, c: Completion, retries: number) {
    this.#listening.delete(handle);
    if (this.#closing) {
      // Cancelled, or a client won the race with close(): either way the instance goes.
      this.#dispose(handle);
      return;
    }
    if (c.error === 0 || c.error === ERROR_PIPE_CONNECTED) {
      setHandleRef(handle, true); // a connection starts ref'd, whatever its listener
      // Deliver first: a failing CreateNamedPipeW must not take this connection from the accept()
      // it satisfies. The next instance is still created before anyone can use this one (delivery
      // only resolves a promise).
      // Who the client is is read on first use (`conn.peer`; `authorize` asks at once).
      const conn = new PipeConnection(handle, this.path, this.mode, "server", this.#maxMessageSize, () => {
        // Runs just before the instance's CloseHandle: its replacement first, the name kept.
        this.#live--;
        this.#replenish();
      });
      if (this.#authorize) this.#admit(conn, this.#authorize);
      else this.#deliver(conn);
      this.#replenish();
      return;
    }
    if (c.error === ERROR_NO_DATA && retries < NO_DATA_RETRIES) {
      // The client came and went before we accepted it: free the instance and listen again.
      kernel32().DisconnectNamedPipe(handle);
      this.#arm(handle, retries + 1);
      return;
    }
    this.#dispose(handle);
    if (this.#listening.size === 0) this.#fail(win32Error(c.error, "accept on", this.path));
  }

  /** Hand `conn` on once `authorize` admits it; a refused one is closed by `admit`. */
  async #admit(conn: PipeConn, authorize: Authorize) {
    this.#authorizing.add(conn);
    const admitted = await admit(conn, authorize);
    this.#authorizing.delete(conn);
    if (!admitted) return;
    if (this.#closing) await conn.close();
    else this.#deliver(conn);
  }

  /** Close an instance; its replacement (when one is wanted) is created first, so the name is kept. */
  #dispose(handle: Handle) {
    this.#live--;
    this.#replenish();
    closeAssociated(handle);
  }

  #deliver(conn: PipeConn) {
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(conn);
    else this.#ready.push(conn);
  }

  #fail(error: Error) {
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
  }

  /**
   * The next client. Cancelling only removes this caller from the queue: the instances go on
   * listening, and a client that connects afterwards goes to the next `accept()`.
   */
  accept(options?: OperationOptions): Promise<PipeConn> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const conn = this.#ready.shift();
    if (conn) {
      this.#replenish(); // a waiting slot is free: listen again
      return Promise.resolve(conn);
    }
    if (this.#closing) return Promise.reject(closedError("accept on", this.path));
    if (this.#listening.size === 0) {
      // Nothing listens: an instance failed to be created earlier, or maxInstances are all connected.
      // Try now; only a real failure rejects (with its own error), a full listener just waits.
      const error = this.#replenish();
      if (error && this.#listening.size === 0) return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      const stop = onAbort(signal, () => {
        const at = this.#waiters.indexOf(waiter);
        if (at >= 0) this.#waiters.splice(at, 1);
        reject(signal!.reason);
      });
      const waiter = {
        resolve(conn: PipeConn) {
          stop();
          resolve(conn);
        },
        reject(error: Error) {
          stop();
          reject(error);
        },
      };
      this.#waiters.push(waiter);
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<PipeConn> {
    return this.connections();
  }

  async *connections(options?: OperationOptions): AsyncIterableIterator<PipeConn> {
    while (true) {
      let conn: PipeConn;
      try {
        conn = await this.accept(options);
      } catch (error) {
        if (options?.signal?.aborted && error === options.signal.reason) throw error;
        if (this.#closing) return;
        throw error;
      }
      yield conn;
    }
  }

  /** See {@linkcode PipeListener.unref}. */
  unref(): void {
    this.#setRef(false);
  }

  /** See {@linkcode PipeListener.ref}. */
  ref(): void {
    this.#setRef(true);
  }

  #setRef(ref: boolean) {
    this.#ref = ref;
    for (const handle of this.#listening) setHandleRef(handle, ref);
  }

  describe(): PipeDescription {
    const [handle] = this.#listening;
    if (handle !== undefined) {
      try {
        this.#sddl = readSddl(handle, this.path);
      } catch {
        // keep the value read at creation
      }
    }
    return {
      path: this.path,
      mode: this.mode,
      sddl: this.#sddl,
      openMode: this.#openMode,
      pipeMode: this.#pipeMode,
    };
  }

  close(): Promise<void> {
    return this.#closing ??= this.#close();
  }

  async #close() {
    for (const waiter of this.#waiters.splice(0)) waiter.reject(closedError("accept on", this.path));
    // CancelIoEx every pending ConnectNamedPipe; #connected closes each instance once its packet
    // (aborted, or a client that won the race) is dequeued.
    for (const handle of this.#listening) cancel(handle);
    while (this.#inflight.size > 0) await Promise.all(this.#inflight);
    // Instances still listening here had no pending operation (cannot happen; be safe).
    for (const handle of this.#listening) this.#dispose(handle);
    this.#listening.clear();
    await Promise.all(this.#ready.splice(0).map((conn) => conn.close()));
    // Clients still being authorized were never accepted: they go too.
    await Promise.all([...this.#authorizing].map((conn) => conn.close()));
    this.#security.free();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
