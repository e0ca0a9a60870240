/**
 * The listening Unix socket behind {@linkcode listen}.
 *
 * Security `"user"`: the socket must never be reachable by others, not even for an instant. It is
 * bound inside a fresh private directory (`mkdtemp`, 0700), given mode 0600, set listening, and only
 * then hard-linked to its public path. `link` fails with `EEXIST` if the name is taken, so nothing is
 * ever overwritten by accident. `"everyone"` does the same with mode 0666, and a preset with the
 * mode and group `access.ts` maps it to (the group is set before the mode).
 *
 * `authorize`: each accepted connection's peer is admitted or refused (closed, logged) inside
 * `accept()`, before it is returned.
 *
 * First instance: the listener holds a lock beside the name (`.NAME.lock`, `name_lock.ts`) for its
 * whole life, so a second server of ours learns the name is in use without connecting, and two
 * servers starting together cannot both replace a stale socket. If the path exists, `/proc/net/unix`
 * (or, failing that, a probe connection) tells another program's live server from a stale socket
 * file left by a crashed server, which is replaced and reported (a warning log and
 * `describe().replacedStale`).
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
  EEXIST,
  EINTR,
  EMFILE,
  ENFILE,
  ENOBUFS,
  ENOENT,
  ENOMEM,
  errno,
  libc,
  S_IFMT,
  S_IFSOCK,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
} from "../../ffi/libc.ts";
import { closedError, errnoError, pipeError } from "../errors.ts";
import type {
  Authorize,
  ListenOptions,
  OperationOptions,
  PipeConn,
  PipeDescription,
  PipeListener,
  PipeMode,
} from "../types.ts";
import { checkSignal, WakeList } from "../abort.ts";
import { admit } from "../authorize.ts";
import { type SocketAccess, socketAccess } from "./access.ts";
import { PosixConn } from "./connection.ts";
import { poller, type Registration } from "./poller.ts";
import { socketState } from "./liveness.ts";
import { lockName, unlockName } from "./name_lock.ts";
import {
  makePrivateDirectory,
  removePrivateDirectory,
  removeStalePrivateDirectories,
} from "./private_dir.ts";
import {
  type AcceptedSetup,
  closeFd,
  configureSocket,
  openSocket,
  socketAddress,
  statPath,
} from "./socket.ts";
import { listenLimits, UNLIMITED_INSTANCES } from "../options.ts";

const log = logger("posix");

/** Attempts to take a name whose stale socket another process may be replacing at the same time. */
const LINK_ATTEMPTS = 3;

/** The iterator's first pause after running out of descriptors, and its longest. */
const MIN_PAUSE = 10;
const MAX_PAUSE = 1000;
const SHORTAGES = new Set([EMFILE, ENFILE, ENOBUFS, ENOMEM]);

/** Whether `accept` failed for lack of descriptors or memory: worth retrying later. */
function isResourceShortage(error: unknown): boolean {
  return error instanceof Error && SHORTAGES.has((error as { code?: number }).code ?? 0);
}

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
  /** Accepts waiting for a connection to close (an instance to be free again) or the listener to close. */
  #slotFreed = new WakeList();
  #instances = 0;
  #replacedStale: boolean;
  /** The name's lock (`name_lock.ts`), held until close. */
  #lock: number;
  /** Learnt from the first accepted socket, so later ones skip the send-buffer check. */
  #accepted: AcceptedSetup = {};
  #authorize?: Authorize;
  #gid?: number;

  constructor(options: ListenOptions, path: string) {
    this.path = path;
    this.mode = options.mode ?? "message";
    this.#options = options;
    const limits = listenLimits(options, path);
    this.#maxMessageSize = limits.maxMessageSize;
    this.#maxInstances = limits.maxInstances === UNLIMITED_INSTANCES ? Infinity : limits.maxInstances;
    if (options.authorize !== undefined && typeof options.authorize !== "function") {
      throw pipeError(TypeError, "listen on", path, "authorize must be a function");
    }
    this.#authorize = options.authorize;
    const access = socketAccess(options.security, path);
    this.#gid = access.gid;
    // Fail early, naming the user's path, on a path the clients could not connect to.
    socketAddress(path, "listen on");
    const lock = lockName(path);
    let fd = -1;
    try {
      removeStalePrivateDirectories(path);
      fd = openSocket(this.mode, "listen on", path);
      // Accepted sockets inherit SO_PASSCRED; their send buffer is set after accept.
      configureSocket(fd, this.mode, this.#maxMessageSize, options.bufferSize, path, "listen on");
      const placed = bindPrivately(fd, path, access, limits.pendingInstances);
      this.#ino = placed.ino;
      this.#replacedStale = placed.replacedStale;
      try {
        this.#registration = poller.register(fd, path);
      } catch (error) {
        unlinkIfOurs(path, this.#ino);
        throw error;
      }
    } catch (error) {
      if (fd >= 0) closeFd(fd);
      unlockName(path, lock);
      throw error;
    }
    this.#fd = fd;
    this.#lock = lock;
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

  #release = () => {
    this.#instances--;
    this.#slotFreed.wakeAll();
  };

  async accept(options?: OperationOptions): Promise<PipeConn> {
    const signal = options?.signal;
    checkSignal(signal);
    const c = libc();
    while (true) {
      if (this.#closed) throw closedError("accept on", this.path);
      if (this.#instances >= this.#maxInstances) {
        await this.#slotFreed.wait(signal);
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
          this.#accepted,
        );
      } catch (error) {
        closeFd(fd);
        throw error;
      }
      this.#instances++;
      const conn = new PosixConn(fd, this.path, this.mode, this.#maxMessageSize, this.#release);
      if (this.#authorize && !await admit(conn, this.#authorize)) continue;
      if (this.#closed) {
        await conn.close(); // closed while authorize ran: this client was never accepted
        throw closedError("accept on", this.path);
      }
      return conn;
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<PipeConn> {
    return this.connections();
  }

  /**
   * Accepted connections until the listener closes. Running out of descriptors or memory
   * (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) does not end it: the condition is logged as an error
   * and accepting resumes after a pause (10 ms doubling to 1 s) or as soon as a connection closes;
   * clients wait in the backlog meanwhile.
   */
  async *connections(options?: OperationOptions): AsyncIterableIterator<PipeConn> {
    let pause = MIN_PAUSE;
    while (true) {
      let conn: PipeConn;
      try {
        conn = await this.accept(options);
      } catch (error) {
        if (this.#closed && error instanceof Deno.errors.BadResource) return;
        if (!isResourceShortage(error)) throw error;
        log.error("Cannot accept a client on {path}, retrying in {pause} ms: {error}", {
          path: this.path,
          pause,
          error: (error as Error).message,
        });
        await this.#pause(pause, options?.signal);
        pause = Math.min(pause * 2, MAX_PAUSE);
        continue;
      }
      pause = MIN_PAUSE;
      yield conn;
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

  /**
   * Wait `ms`, or less if a connection closes (freeing a descriptor) or the listener closes;
   * rejects with the reason if `signal` aborts.
   */
  async #pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        new Promise((resolve) => timer = setTimeout(resolve, ms)),
        this.#slotFreed.wait(signal),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  describe(): PosixPipeDescription {
    const stat = statPath(cString(this.path));
    return {
      path: this.path,
      mode: this.mode,
      fileMode: typeof stat === "number" ? undefined : stat.mode & 0o7777,
      fileGroup: this.#gid,
      replacedStale: this.#replacedStale,
    };
  }

  /** Stop listening, wake pending accepts (they reject), and remove the socket file if still ours. */
  async close(): Promise<void> {
    if (this.#closed) return;
    poller.unregister(this.#registration);
    this.#slotFreed.wakeAll(); // their accept() now rejects
    unlinkIfOurs(this.path, this.#ino);
    closeFd(this.#fd);
    unlockName(this.path, this.#lock);
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
 * The caller holds the name's lock.
 * @returns the socket file's inode (to recognize it at close) and whether a stale file was replaced
 */
function bindPrivately(
  fd: number,
  path: string,
  access: SocketAccess,
  backlog: number,
): { ino: bigint; replacedStale: boolean } {
  const c = libc();
  // Fail early, naming the user's path, on a path the clients could not connect to.
  socketAddress(path, "listen on");
  const place = makePrivateDirectory(path);
  const privateName = cString(place.socketPath);
  try {
    const [address, length] = socketAddress(place.bindPath, "listen on");
    if (c.bind(fd, address, length) < 0) throw errnoError(errno(), "bind", path);
    // The group first, then the mode: the socket is never open to a group it was not meant for.
    if (access.gid !== undefined && c.chown(privateName, 0xffff_ffff, access.gid) < 0) {
      throw errnoError(errno(), "set the group of", path);
    }
    if (c.chmod(privateName, access.fileMode) < 0) throw errnoError(errno(), "set the mode of", path);
    if (c.listen(fd, backlog) < 0) throw errnoError(errno(), "listen on", path);
    const stat = statPath(privateName);
    if (typeof stat === "number") throw errnoError(stat, "listen on", path);
    const replacedStale = linkIntoPlace(privateName, path);
    return { ino: stat.ino, replacedStale };
  } finally {
    removePrivateDirectory(place);
  }
}

/**
 * `link` the bound socket to `path`, replacing a stale socket; true if one was replaced. With the
 * name's lock held, no other server of ours can be replacing it at the same time.
 */
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
    const state = socketState(path);
    if (state instanceof Error) throw state;
    if (state === "live") {
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
