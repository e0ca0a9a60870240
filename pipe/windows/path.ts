/**
 * Pipe name → Win32 pipe path: `HelloWorld` → `\\.\pipe\HelloWorld`, with a server
 * `\\SERVER\pipe\HelloWorld`; a full `\\.\pipe\X` (or `\\SERVER\pipe\X`) path is used as is.
 *
 * @module
 */
import { pipeError } from "../errors.ts";

/** True for a pipe on another machine: a server other than `.` (or the `\\?\` prefix). */
export function isRemote(path: string): boolean {
  const server = path.slice(2, path.indexOf("\\", 2));
  return server !== "." && server !== "?";
}

/**
 * Refuse a remote path unless the caller allowed it: `CreateFileW`, `SetNamedPipeHandleState`,
 * `PeekNamedPipe` and `WaitNamedPipeW` on `\\SERVER\pipe\X` are synchronous and wait for the
 * network (SMB), so they would block the JS thread for the network's timeout, beyond any `timeout`.
 * @throws {Deno.errors.NotSupported} for a remote path when `allow` is not true
 */
export function refuseRemote(path: string, action: string, allow = false): void {
  if (allow || !isRemote(path)) return;
  throw pipeError(
    Deno.errors.NotSupported,
    action,
    path,
    "remote pipes are refused: their Win32 calls block the JS thread for the network's timeout" +
      (action === "connect to" ? " (pass allowRemote: true to accept that)" : ""),
  );
}

/**
 * The full pipe path for `name`.
 * @param name a bare name or a full `\\SERVER\pipe\NAME` path
 * @param server the machine, `"."` for this one
 * @throws {TypeError} for an empty name or a path that is not a pipe path
 */
export function pipePath(name: string, server = "."): string {
  if (typeof name !== "string" || name === "") {
    throw new TypeError(`Cannot use pipe "${name}": invalid pipe name (empty)`);
  }
  if (name.startsWith("\\\\")) {
    if (!/^\\\\[^\\]+\\pipe\\.+$/i.test(name)) {
      throw new TypeError(`Cannot use pipe "${name}": invalid pipe name (expected \\\\SERVER\\pipe\\NAME)`);
    }
    return name;
  }
  if (name.includes("\0")) throw new TypeError(`Cannot use pipe "${name}": invalid pipe name (NUL)`);
  if (server === "" || server.includes("\\")) {
    throw new TypeError(`Cannot use pipe "${name}" on server "${server}": invalid server name`);
  }
  return `\\\\${server}\\pipe\\${name}`;
}
