/**
 * The listening Unix socket behind {@linkcode listen}.
 *
 * Security `"user"`: the socket must never be reachable by others, not even for an instant. It is
 * bound inside a fresh private directory (`mkdtemp`, 0700), given mode 0600, set listening, and only
 * then hard-linked to its public path. `link` fails with `EEXIST` if the name is taken, so nothing is
 * ever overwritten by accident. `"everyone"` does the same with mode 0666.
 *
 * First instance: if the path exists, a probe connection tells a live server (the name is in use)
 * from a stale socket file left by a crashed server (connection refused), which is replaced and
 * reported (a warning log and `describe().replacedStale`).
 *
 * A server that is between `bind` and `listen` also refuses connections; ours never is (the name
 * appears only once listening), but another program's may briefly look stale.
 *
 * `maxInstances` (1 to 255, where 255 means unlimited as on Windows): at the limit the listener stops
 * accepting until a connection closes, so further clients wait in the backlog (their requests are
 * answered late, not lost) and, once it is full, `connect()` waits and times out as a client of a
 * busy Windows pipe does.
 * `pendingInstances` is the `listen` backlog: more clients than that connecting at the same instant
 * get `EAGAIN`, which `connect()` retries like `ERROR_PIPE_BUSY`.
 *
 * @module
 */
import { logger } from "../log.ts";
import {
  cString,
  EAGAIN,
  ECONNABORTED,
  ECONNREFUSED,
  EEXIST,
  EINTR,
  ENOENT,
  EPROTOTYPE,
  errno,
  libc,
  S_IFMT,
  S_IFSOCK,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
} from "../../ffi/libc.ts";
import { closedError, errnoError, type NativeError, pipeError } from "../errors.ts";
import type {
  ListenOptions,
  OperationOptions,
  PipeConn,
  PipeDescription,
  PipeListener,
  PipeMode,
} from "../types.ts";
import { checkSignal, onAbort } from "../abort.ts";
import { PosixConn } from "./connection.ts";
import { poller, type Registration } from "./poller.ts";
import { closeFd, configureSocket, openSocket, socketAddress, statPath } from "./socket.ts";
import {
  DEFAULT_MAX_MESSAGE_SIZE,
  DEFAULT_PENDING_INSTANCES,
  INT_MAX,
  integer,
  UNLIMITED_INSTANCES,
} from "../options.ts";

const log = logger("posix");

/** `PIPE_UNLIMITED_INSTANCES`: 255 means no limit, as on Windows. */
/** Attempts to take a name whose stale socket another process may be replacing at the same time. */
const LINK_ATTEMPTS = 3;

/** What the POSIX listener reports about itself. */
export interface PosixPipeDescription extends PipeDescription {
  /** True when a stale socket file left by a crashed server was found and replaced. */
  replacedStale: boolean;
}

/** A listening Unix socket behind the {@linkcode PipeListener} API. */
export class PosixListener implements PipeListener {
  readonly path: string;
  readonly mode: PipeMode;
  #fd: number;
  #registration: Registration;
  #ino: bigint;
  #options: ListenOptions;
  #maxMessageSize: number;
  #maxInstances: number;
  #slotWaiters: (() => void)[] = [];
  #instances = 0;
  #replacedStale: boolean;

  constructor(options: ListenOptions, path: string) {
    this.path = path;
    this.mode = options.mode ?? "message";
    this.#options = options;
    this.#maxMessageSize = integer(
      options.maxMessageSize,
      DEFAULT_MAX_MESSAGE_SIZE,
      0,
      INT_MAX,
      "maxMessageSize",
      path,
    );
    const maxInstances = integer(options.maxInstances, UNLIMITED_INSTANCES, 1, 255, "maxInstances", path);
    this.#maxInstances = maxInstances === UNLIMITED_INSTANCES ? Infinity : maxInstances;
    integer(options.bufferSize, 0, 0, INT_MAX, "bufferSize", path);
    const pendingInstances = integer(
      options.pendingInstances,
      DEFAULT_PENDING_INSTANCES,
      1,
      255,
      "pendingInstances",
      path,
    );
    const fileMode = options.security === "everyone" ? 0o666 : 0o600;
    const fd = openSocket(this.mode, "listen on", path);
    try {
      // Accepted sockets inherit SO_PASSCRED; their send buffer is set after accept.
      configureSocket(fd, this.mode, this.#maxMessageSize, options.bufferSize, path, "listen on");
      const placed = bindPrivately(fd, path, fileMode, Math.min(pendingInstances, maxInstances));
      this.#ino = placed.ino;
      this.#replacedStale = placed.replacedStale;
      try {
        this.#registration = poller.register(fd, path);
      } catch (error) {
        unlinkIfOurs(path, this.#ino);
        throw error;
      }
    } catch (error) {
      closeFd(fd);
      throw error;
    }
    this.#fd = fd;
    if (this.#replacedStale) {
      log.warn("Replaced the stale socket {path} left by a server that did not close it", { path });
    }
    if (options.security === "everyone") {
      log.warn("Pipe {path} is open to every local user (mode 0666)", { path });
    }
  }

  get #closed(): boolean {
    return this.#registration.closed;
  }

  /** Resolves when a connection closes (an instance is free again) or the listener closes. */
  #slotFreed(signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      const stop = onAbort(signal, () => {
        const at = this.#slotWaiters.indexOf(wake);
        if (at >= 0) this.#slotWaiters.splice(at, 1);
        reject(signal!.reason);
      });
      const wake = () => {
        stop();
        resolve();
      };
      this.#slotWaiters.push(wake);
    });
  }

  #release = () => {
    this.#instances--;
    for (const wake of this.#slotWaiters.splice(0)) wake();
  };

  async accept(options?: OperationOptions): Promise<PipeConn> {
    const signal = options?.signal;
    checkSignal(signal);
    const c = libc();
    while (true) {
      if (this.#closed) throw closedError("accept on", this.path);
      if (this.#instances >= this.#maxInstances) {
        await this.#slotFreed(signal);
        continue;
      }
      const fd = c.accept4(this.#fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const code = errno();
        if (code === EAGAIN) {
          await poller.readable(this.#registration, signal);
          continue;
        }
        // The client gave up between connect and accept, or a signal: take the next one.
        if (code === ECONNABORTED || code === EINTR) continue;
        throw errnoError(code, "accept on", this.path);
      }
      try {
        configureSocket(
          fd,
          this.mode,
          this.#maxMessageSize,
          this.#options.bufferSize,
          this.path,
          "accept on",
        );
      } catch (error) {
        closeFd(fd);
        throw error;
      }
      this.#instances++;
      return new PosixConn(fd, this.path, this.mode, this.#maxMessageSize, this.#release);
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

  /** See {@linkcode PipeListener.unref}. */
  unref(): void {
    poller.setRef(this.#registration, false);
  }

  /** See {@linkcode PipeListener.ref}. */
  ref(): void {
    poller.setRef(this.#registration, true);
  }

  describe(): PosixPipeDescription {
    const stat = statPath(cString(this.path));
    return {
      path: this.path,
      mode: this.mode,
      fileMode: typeof stat === "number" ? undefined : stat.mode & 0o7777,
      replacedStale: this.#replacedStale,
    };
  }

  /** Stop listening, wake pending accepts (they reject), and remove the socket file if still ours. */
  async close(): Promise<void> {
    if (this.#closed) return;
    poller.unregister(this.#registration);
    for (const wake of this.#slotWaiters.splice(0)) wake(); // their accept() now rejects
    unlinkIfOurs(this.path, this.#ino);
    closeFd(this.#fd);
    await poller.idle();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function unlinkIfOurs(path: string, ino: bigint): void {
  const name = cString(path);
  const stat = statPath(name);
  // Another server may have replaced our file since: leave theirs alone.
  if (typeof stat !== "number" && stat.ino === ino) libc().unlink(name);
}

/**
 * Bind `fd` in a private directory next to `path`, set its mode, listen, then link it to `path`.
 * @returns the socket file's inode (to recognize it at close) and whether a stale file was replaced
 */
function bindPrivately(
  fd: number,
  path: string,
  fileMode: number,
  backlog: number,
): { ino: bigint; replacedStale: boolean } {
  const c = libc();
  const slash = path.lastIndexOf("/");
  const directory = slash > 0 ? path.slice(0, slash) : "/";
  // Fail early on a path the clients could not connect to. The private path is no longer than a
  // `CoreFxPipe_` name in the same directory.
  socketAddress(path, "listen on");
  const template = cString(`${directory}/.np-XXXXXX`);
  if (c.mkdtemp(template) === null) {
    const code = errno();
    if (code === ENOENT) {
      throw pipeError(
        Deno.errors.NotFound,
        "listen on",
        path,
        `directory "${directory}" does not exist`,
        code,
      );
    }
    throw errnoError(code, "create a private directory for", path);
  }
  const privateDirectory = new TextDecoder().decode(template.subarray(0, template.length - 1));
  const privatePath = `${privateDirectory}/s`;
  const privateName = cString(privatePath);
  try {
    const [address, length] = socketAddress(privatePath, "listen on");
    if (c.bind(fd, address, length) < 0) throw errnoError(errno(), "bind", path);
    if (c.chmod(privateName, fileMode) < 0) throw errnoError(errno(), "set the mode of", path);
    if (c.listen(fd, backlog) < 0) throw errnoError(errno(), "listen on", path);
    const stat = statPath(privateName);
    if (typeof stat === "number") throw errnoError(stat, "listen on", path);
    const replacedStale = linkIntoPlace(privateName, path);
    return { ino: stat.ino, replacedStale };
  } finally {
    c.unlink(privateName);
    c.rmdir(cString(privateDirectory));
  }
}

/** `link` the bound socket to `path`, replacing a stale socket; true if one was replaced. */
function linkIntoPlace(privateName: Uint8Array<ArrayBuffer>, path: string): boolean {
  const c = libc();
  const name = cString(path);
  let replacedStale = false;
  for (let attempt = 0; attempt < LINK_ATTEMPTS; attempt++) {
    if (c.link(privateName, name) === 0) return replacedStale;
    const code = errno();
    if (code !== EEXIST) throw errnoError(code, "listen on", path);
    const existing = statPath(name);
    if (typeof existing === "number") {
      if (existing === ENOENT) continue; // removed meanwhile: try again
      throw errnoError(existing, "listen on", path);
    }
    if ((existing.mode & S_IFMT) !== S_IFSOCK) {
      throw pipeError(
        Deno.errors.AddrInUse,
        "listen on",
        path,
        "a file that is not a socket has that name",
        EEXIST,
      );
    }
    const probe = probeConnect(path);
    if (probe === ENOENT) continue;
    if (probe !== ECONNREFUSED) {
      if (probe instanceof Error) throw probe;
      throw pipeError(Deno.errors.AddrInUse, "listen on", path, "name already in use by a live server", 98);
    }
    // Nobody listens: a server crashed and left its socket file. Replace it.
    if (c.unlink(name) < 0 && errno() !== ENOENT) throw errnoError(errno(), "replace the stale socket", path);
    replacedStale = true;
  }
  throw pipeError(
    Deno.errors.AddrInUse,
    "listen on",
    path,
    "the name kept being taken by another server",
    98,
  );
}

/**
 * Try to connect to an existing socket file: `ECONNREFUSED` means stale, 0 (or `EAGAIN`, a full
 * backlog, or `EPROTOTYPE`, a live server of the other mode) means live.
 */
function probeConnect(path: string): number | NativeError {
  const c = libc();
  for (const mode of ["message", "byte"] as const) {
    const fd = openSocket(mode, "listen on", path);
    try {
      const [address, length] = socketAddress(path, "listen on");
      if (c.connect(fd, address, length) === 0) return 0;
      const code = errno();
      if (code === EPROTOTYPE) continue;
      if (code === ECONNREFUSED || code === ENOENT || code === EAGAIN) return code;
      return errnoError(code, "listen on", path);
    } finally {
      closeFd(fd);
    }
  }
  return 0;
}
