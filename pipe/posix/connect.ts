/**
 * The client side: {@linkcode connect} to a listening Unix socket.
 *
 * A missing socket (`ENOENT`), a socket nobody listens on (`ECONNREFUSED`) and a full backlog
 * (`EAGAIN`, the `ERROR_PIPE_BUSY` of Unix sockets) are retried with backoff (1 ms doubling to
 * 100 ms) until the caller's timeout, like `WaitNamedPipe` on Windows. `signal` ends the wait between
 * attempts (each attempt is a synchronous `connect` on a non-blocking socket).
 *
 * Before anything is sent, the server's uid (`SO_PEERCRED`) must be ours or root's, or the caller's
 * `serverUser`; otherwise the socket is closed and `connect()` fails with `PermissionDenied` naming
 * the server's user. `trustAnyServer: true` skips the check.
 *
 * @module
 */
import { EAGAIN, ECONNREFUSED, EINTR, ENOENT, EPROTOTYPE, errno, libc } from "../../ffi/libc.ts";
import { errnoError, pipeError } from "../errors.ts";
import { checkSignal, sleep } from "../abort.ts";
import type { ConnectOptions, PipeConn } from "../types.ts";
import { PosixConn } from "./connection.ts";
import { checkServer, peerIdentity } from "./identity.ts";
import { pipePath } from "./path.ts";
import { poller } from "./poller.ts";
import { closeFd, configureSocket, openSocket, socketAddress } from "./socket.ts";
import { connectLimits } from "../options.ts";

const MAX_BACKOFF = 100;

/** Connect to the pipe server named in `options`; see the module doc for retries. */
export async function connect(options: ConnectOptions): Promise<PipeConn> {
  const mode = options.mode ?? "message";
  const path = pipePath(options.name, options.server ?? ".");
  const { timeout, maxMessageSize } = connectLimits(options, path);
  const signal = options.signal;
  checkSignal(signal);
  const deadline = performance.now() + timeout;
  const [address, length] = socketAddress(path, "connect to");
  let backoff = 1;
  while (true) {
    const fd = openSocket(mode, "connect to", path);
    let code: number;
    try {
      configureSocket(fd, mode, maxMessageSize, undefined, path, "connect to");
      code = libc().connect(fd, address, length) === 0 ? 0 : errno();
    } catch (error) {
      closeFd(fd);
      throw error;
    }
    if (code === 0) {
      // Who serves the name, checked before a byte is sent: anyone may bind a name in /tmp first.
      const peer = peerIdentity(fd);
      try {
        checkServer(peer, options, path);
      } catch (error) {
        closeFd(fd);
        throw error;
      }
      const conn = new PosixConn(fd, path, mode, maxMessageSize, undefined, peer);
      // A server in this process takes the connection in before the caller goes on.
      await poller.settle();
      return conn;
    }
    closeFd(fd);
    if (code === EINTR) continue;
    const remaining = deadline - performance.now();
    const retriable = code === ENOENT || code === ECONNREFUSED || code === EAGAIN;
    if (!retriable || remaining <= 0) {
      if (code === EAGAIN) {
        throw pipeError(
          Deno.errors.TimedOut,
          "connect to",
          path,
          `all pipe instances are busy (${code})`,
          code,
        );
      }
      if (code === EPROTOTYPE) {
        // A seqpacket client of a stream server or the reverse: say which, as Windows does.
        const other = mode === "message" ? "byte" : "message";
        throw pipeError(
          TypeError,
          "connect to",
          path,
          `the pipe is of the other mode: the server is in ${other} mode (connect with mode "${other}")`,
          code,
        );
      }
      throw errnoError(code, "connect to", path);
    }
    await sleep(Math.min(backoff, remaining), signal);
    backoff = Math.min(backoff * 2, MAX_BACKOFF);
  }
}
