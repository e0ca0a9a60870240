/**
 * The client side of a named pipe on Windows: `CreateFileW` with `FILE_FLAG_OVERLAPPED` and
 * `SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION` (a server can identify us but not act as us).
 *
 * A missing pipe (`ERROR_FILE_NOT_FOUND`) or one whose instances are all busy (`ERROR_PIPE_BUSY`) is
 * retried with a backoff from 1 to 50 ms on timers until the deadline, so the JS thread never blocks
 * (`WaitNamedPipeW` would block it, and rejects `\\?\pipe\` names, libuv#3914). `signal` ends that
 * wait between attempts (`CreateFileW` itself does not wait).
 *
 * A remote path (`\\SERVER\pipe\NAME`) is refused unless `allowRemote: true`: `CreateFileW` and
 * the calls after it then wait for the network on the JS thread, and `timeout` only bounds the
 * retries between them.
 *
 * Before anything is sent, the pipe's owner (`GetSecurityInfo` on our handle: the account that
 * created the pipe) must be this user, SYSTEM or Administrators, or the caller's `serverUser`;
 * otherwise the handle is closed and `connect()` fails with `PermissionDenied` naming the owner.
 * `trustAnyServer: true` skips the check.
 *
 * @module
 */
import {
  ERROR_BROKEN_PIPE,
  ERROR_FILE_NOT_FOUND,
  ERROR_INVALID_PARAMETER,
  ERROR_NO_DATA,
  ERROR_PIPE_BUSY,
  ERROR_PIPE_NOT_CONNECTED,
  FILE_FLAG_OVERLAPPED,
  GENERIC_READ,
  GENERIC_WRITE,
  kernel32,
  OPEN_EXISTING,
  PIPE_READMODE_MESSAGE,
  PIPE_TYPE_MESSAGE,
  SECURITY_IDENTIFICATION,
  SECURITY_SQOS_PRESENT,
} from "../../ffi/kernel32.ts";
import { wide } from "../../ffi/win32_strings.ts";
import { pipeError, win32Error } from "../errors.ts";
import { checkSignal, sleep } from "../abort.ts";
import type { ConnectOptions, PipeConn } from "../types.ts";
import { associate } from "./completion_port.ts";
import { PipeConnection } from "./connection.ts";
import { adopt, closeHandle, type Handle, isValid } from "./handles.ts";
import { checkServer, serverIdentity } from "./identity.ts";
import { connectLimits } from "../options.ts";
import { pipePath, refuseRemote } from "./path.ts";
import { currentUserSid } from "./security.ts";

const ACCESS = (GENERIC_READ | GENERIC_WRITE) >>> 0;
const FLAGS = (FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION) >>> 0;

/**
 * Connect to `\\SERVER\pipe\NAME`.
 * @throws {Deno.errors.NotFound} when no server appeared before the timeout (ERROR_FILE_NOT_FOUND)
 * @throws {Deno.errors.TimedOut} when every instance stayed busy (ERROR_PIPE_BUSY)
 */
export async function connect(options: ConnectOptions): Promise<PipeConn> {
  const path = pipePath(options.name, options.server ?? ".");
  refuseRemote(path, "connect to", options.allowRemote);
  const mode = options.mode ?? "message";
  if (mode !== "message" && mode !== "byte") {
    throw pipeError(TypeError, "connect to", path, `unknown mode "${mode}" (expected "message" or "byte")`);
  }
  const { timeout, maxMessageSize } = connectLimits(options, path);
  const name = wide(path);
  checkSignal(options.signal);
  const deadline = Date.now() + timeout;
  const k = kernel32();
  let delay = 1;
  let handle: Handle;
  while (true) {
    const h = k.CreateFileW(name, ACCESS, 0, null, OPEN_EXISTING, FLAGS, 0n);
    if (isValid(h)) {
      handle = adopt(h);
      break;
    }
    const error = k.GetLastError();
    if (error !== ERROR_FILE_NOT_FOUND && error !== ERROR_PIPE_BUSY) {
      throw win32Error(error, "connect to", path);
    }
    const left = deadline - Date.now();
    if (left <= 0) throw win32Error(error, "connect to", path);
    await sleep(Math.min(delay, left), options.signal);
    delay = Math.min(delay * 2, 50);
  }
  let peer;
  try {
    // Who holds the name, checked before a byte is sent: anyone may create a pipe name first.
    peer = serverIdentity(handle, path);
    checkServer(peer, options, currentUserSid(), path);
    if (mode === "message") {
      // A byte-type pipe cannot be read in message mode: SetNamedPipeHandleState would only say
      // "invalid parameter" (87). Ask the pipe its type and say what is wrong, as a TypeError like
      // the POSIX backend's EPROTOTYPE.
      const flags = new Uint32Array(1);
      if (k.GetNamedPipeInfo(handle, flags, null, null, null) && !(flags[0] & PIPE_TYPE_MESSAGE)) {
        throw pipeError(
          TypeError,
          "connect to",
          path,
          'the pipe is of the other mode: the server is in byte mode (connect with mode "byte")',
          ERROR_INVALID_PARAMETER,
        );
      }
      // The server end is PIPE_READMODE_MESSAGE; the client end starts in byte read mode.
      if (!k.SetNamedPipeHandleState(handle, new Uint32Array([PIPE_READMODE_MESSAGE]), null, null)) {
        throw win32Error(k.GetLastError(), "set message mode on", path);
      }
    }
  } catch (error) {
    closeHandle(handle);
    const code = (error as { code?: number }).code ?? 0;
    if (code === ERROR_BROKEN_PIPE || code === ERROR_NO_DATA || code === ERROR_PIPE_NOT_CONNECTED) {
      // The server disconnected us before we could even set up: a server refusing this client.
      throw pipeError(
        Deno.errors.BrokenPipe,
        "connect to",
        path,
        `the server closed the pipe at once (${code}): it may not serve this user`,
        code,
      );
    }
    throw error;
  }
  associate(handle, path); // closes the handle itself if it fails
  return new PipeConnection(handle, path, mode, "client", maxMessageSize, undefined, peer);
}
