/**
 * The POSIX backend: named pipes as Unix domain sockets through libc (`ffi/libc.ts`).
 *
 * - Message mode is `AF_UNIX` + `SOCK_SEQPACKET` (message boundaries kept, like a message-mode
 *   pipe); byte mode is `AF_UNIX` + `SOCK_STREAM`. Both run on one engine: non-blocking sockets and
 *   one epoll instance (`poller.ts`).
 * - Names: an absolute path is used as is; a bare name `NAME` (or `\\.\pipe\NAME`) becomes
 *   `$TMPDIR/CoreFxPipe_NAME` (`/tmp` when `TMPDIR` is unset), where .NET's `NamedPipeClientStream`
 *   looks on Unix, so a .NET client reaches a byte-mode server by name.
 * - Security: `"user"` (default) gives the socket mode 0600, and it is never reachable by others
 *   before that; `"everyone"` gives 0666; `{ sddl }` is Windows-only. In the default `/tmp` the
 *   directory is world-writable but sticky, so others cannot remove or replace our socket.
 * - Messages: a zero-length message is a real message; a message over `maxMessageSize` drops that
 *   connection. A message must fit the sender's `SO_SNDBUF`, which is raised to fit
 *   `maxMessageSize` but capped by `net.core.wmem_max` for unprivileged processes.
 * - `rejectRemoteClients` needs nothing (Unix sockets are local); `firstInstance: false` cannot share
 *   a path between servers, so a live name is refused either way.
 * - macOS has neither `epoll` nor `SOCK_SEQPACKET` for Unix sockets: message mode throws
 *   `Deno.errors.NotSupported`, and byte mode runs over Deno's own Unix sockets (`deno_unix.ts`,
 *   which the Linux tests exercise directly; it needs `--allow-read` and `--allow-write`).
 *
 * @module
 */
import { getenv } from "../../ffi/libc.ts";
import { pipeError } from "../errors.ts";
import type { ConnectOptions, ListenOptions, PipeConn, PipeListener, PipeMode } from "../types.ts";
import { socketAccess } from "./access.ts";
import { connect as connectSocket } from "./connect.ts";
import { connectDenoUnix, listenDenoUnix, openHandleCount as denoUnixHandleCount } from "./deno_unix.ts";
import { PosixListener } from "./listener.ts";
import { pipePath } from "./path.ts";
import { poller } from "./poller.ts";

export { pipePath };
export { listPipes, waitForPipe } from "./directory.ts";
export { allowOnly } from "./identity.ts";
export { relayConnections } from "./relay_fds.ts";

/** Whether this call goes to Deno's own sockets (macOS byte mode) rather than the libc engine. */
function checkPlatform(mode: PipeMode | undefined, action: string, name: string): boolean {
  if (mode !== undefined && mode !== "message" && mode !== "byte") {
    throw pipeError(TypeError, action, name, `unknown mode "${mode}" (expected "message" or "byte")`);
  }
  if (Deno.build.os === "darwin" && (mode ?? "message") === "message") {
    throw pipeError(
      Deno.errors.NotSupported,
      action,
      name,
      "message mode needs SOCK_SEQPACKET Unix sockets, which macOS does not have",
    );
  }
  if (Deno.build.os === "darwin") return true;
  if (Deno.build.os !== "linux") {
    throw pipeError(Deno.errors.NotSupported, action, name, `no named pipe backend for ${Deno.build.os}`);
  }
  return mode === "byte" && getenv(DENO_SOCKETS_SWITCH) === "1";
}

/**
 * Test-only: with this environment variable set to `1`, byte mode on Linux runs over Deno's own
 * sockets (the macOS backend), so the tests exercise that code on Linux. Read through libc, so it
 * costs no `--allow-env`.
 */
export const DENO_SOCKETS_SWITCH = "NAMEDPIPE_TEST_DENO_SOCKETS";

/**
 * Create the listening socket; it is bound and listening when this returns.
 * @throws {Deno.errors.AddrInUse} when a live server has the name
 * @throws {Deno.errors.PermissionDenied} when the path belongs to someone we may not touch
 * @throws {TypeError} for an SDDL security descriptor (Windows-only) or an invalid name
 * @throws {Deno.errors.NotSupported} for a security preset a socket's mode cannot express
 * @throws {Deno.errors.NotFound} for a preset naming an unknown user or group
 */
export function listen(options: ListenOptions): PipeListener {
  const security = options.security ?? "user";
  if (typeof security === "object") {
    // Checked here for the message; the listener maps presets to a file mode and group.
    socketAccess(security, options.name);
  } else if (security !== "user" && security !== "everyone") {
    throw pipeError(TypeError, "listen on", options.name, `unknown security "${security}"`);
  }
  if (checkPlatform(options.mode, "listen on", options.name)) {
    if (typeof security === "object" || options.authorize) {
      throw pipeError(
        Deno.errors.NotSupported,
        "listen on",
        options.name,
        "Deno's Unix sockets give no peer credentials and no socket group: security presets and " +
          "authorize need Linux",
      );
    }
    return listenDenoUnix(options);
  }
  return new PosixListener(options, pipePath(options.name));
}

/**
 * Connect to a listening socket, retrying a missing or busy one until `timeout`.
 * @throws {Deno.errors.NotFound} when nobody served the name in time
 * @throws {Deno.errors.TimedOut} when the server's backlog stayed full
 */
export async function connect(options: ConnectOptions): Promise<PipeConn> {
  if (checkPlatform(options.mode, "connect to", options.name)) return await connectDenoUnix(options);
  return await connectSocket(options);
}

/** Descriptors the engine holds open: sockets plus the epoll instance and its eventfd. */
export function openHandleCount(): number {
  return poller.sockets + poller.ownHandles + denoUnixHandleCount();
}
