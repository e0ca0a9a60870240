/**
 * `listen()` and `connect()`: picks the backend for this platform. Neither backend opens its
 * native library before it is first used, so importing this on any platform is free.
 *
 * @module
 */
import * as posix from "./posix/mod.ts";
import * as windows from "./windows/mod.ts";
import { pipeError } from "./errors.ts";
import type {
  Access,
  AllowList,
  ConnectOptions,
  ListenOptions,
  ListOptions,
  PipeConn,
  PipeInfo,
  PipeListener,
  WaitOptions,
} from "./types.ts";
import type { RelayOptions, RelayResult } from "./relay.ts";

const backend = Deno.build.os === "windows" ? windows : posix;

/**
 * Pipes are refused inside a Worker: terminating one while an operation is pending frees the buffers
 * the kernel still writes into (Windows: an OVERLAPPED and its data; Linux: the poller's
 * `epoll_wait` array), and nothing can wait for that I/O to drain before the Worker goes.
 */
function refuseWorker(action: string, name: string): void {
  const scope = (globalThis as { WorkerGlobalScope?: abstract new () => unknown }).WorkerGlobalScope;
  if (scope !== undefined && globalThis instanceof scope) {
    throw pipeError(
      Deno.errors.NotSupported,
      action,
      name,
      "pipes cannot be used inside a Worker (a terminated Worker would leave the kernel writing into " +
        "freed buffers): use them from the main thread",
    );
  }
}

/**
 * Create a named pipe server (Windows `CreateNamedPipeW`; POSIX a Unix socket) and start
 * listening. The first instance exists when this returns.
 * @throws {Deno.errors.AddrInUse} when the name is already served
 * @throws {Deno.errors.PermissionDenied} when the name is taken by someone we may not touch
 * @throws {Deno.errors.NotSupported} inside a Worker (see the README's engine section)
 */
export function listen(options: ListenOptions): PipeListener {
  refuseWorker("listen on", options.name);
  return backend.listen(options);
}

/**
 * Connect to a named pipe server, waiting up to `timeout` ms for a missing or busy pipe.
 * @throws {Deno.errors.NotFound} when no server appeared in time
 * @throws {Deno.errors.TimedOut} when every instance stayed busy
 * @throws {Deno.errors.NotSupported} inside a Worker, and on Windows for a remote pipe unless
 *   `allowRemote` is true
 */
export function connect(options: ConnectOptions): Promise<PipeConn> {
  try {
    refuseWorker("connect to", options.name);
  } catch (error) {
    return Promise.reject(error);
  }
  return backend.connect(options);
}

/**
 * Relay between two connections of this backend by the backend's own means, when it has one (POSIX:
 * a copy thread); null when the caller should copy over streams. Used by {@linkcode relay}.
 * @param a the first connection
 * @param b the second connection
 * @param options the end-of-stream rules
 * @returns how the relay ended, or null
 */
export function relayConnections(
  a: PipeConn,
  b: PipeConn,
  options: RelayOptions,
): Promise<RelayResult | null> {
  return backend.relayConnections(a, b, options);
}

/** Native handles (Windows) or descriptors (POSIX) the engine holds open now: for leak checks. */
export function openHandleCount(): number {
  return backend.openHandleCount();
}

/** The full path a pipe name resolves to on this platform: `\\.\pipe\NAME` or a socket path. */
export function pipePath(name: string, server = "."): string {
  return backend.pipePath(name, server);
}

/**
 * The pipes that exist now, found without connecting to any (a connection would take an instance
 * from its server). Windows: the `\\.\pipe\` directory, with each pipe's current and maximum
 * instances. POSIX: the listening `CoreFxPipe_*` sockets of the temp directory (where bare names
 * live) and the listening sockets among `paths`, with mode, owner and permission bits.
 * @param options a name pattern (`*`, `?`) and, on POSIX, socket paths to look at too
 * @returns the pipes, sorted by name
 * @throws {Deno.errors.NotSupported} on Wine, which cannot list the pipe directory, unless the
 *   pattern names one pipe exactly (that one is then checked)
 * @example
 * ```ts
 * for (const pipe of await listPipes({ pattern: "docker*" })) console.log(pipe.path);
 * ```
 */
export function listPipes(options: ListOptions = {}): Promise<PipeInfo[]> {
  return backend.listPipes(options);
}

/**
 * Wait until a pipe exists and has a free instance, without connecting to it: for scripts that
 * start a server and must wait for it. Windows: `WaitNamedPipeW`, polled with 1 ms waits so the
 * thread never blocks; POSIX: a socket listens at the pipe's path with room in its backlog.
 * @param options the name, the timeout (default 2000 ms) and an abort signal
 * @throws {Deno.errors.NotFound} when the pipe did not appear in time
 * @throws {Deno.errors.TimedOut} when it appeared but every instance stayed busy
 * @example
 * ```ts
 * await waitForPipe({ name: "HelloWorld", timeout: 5000 });
 * ```
 */
export function waitForPipe(options: WaitOptions): Promise<void> {
  return backend.waitForPipe(options);
}

/**
 * Let exactly these users and groups use a server: spread the result into `listen()`'s options.
 * Its `security` opens the pipe to them (Windows: their ACEs in the DACL; Linux: the socket's mode
 * and group), and its `authorize` refuses everyone else at connect, the server's own user included
 * unless listed.
 * @param list user and group names (or SIDs, uids, gids)
 * @returns `{ security, authorize }`
 * @throws {Deno.errors.NotFound} for a name no account has
 * @example
 * ```ts
 * const server = listen({ name: "Docker", ...allowOnly({ groups: ["docker-users"] }) });
 * ```
 */
export function allowOnly(list: AllowList): Access {
  return backend.allowOnly(list);
}
