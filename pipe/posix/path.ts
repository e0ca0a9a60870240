/**
 * Pipe name → socket path.
 *
 * - An absolute path (`/run/app.sock`) is used as is.
 * - A bare name (`HelloWorld`, or `\\.\pipe\HelloWorld`) becomes `$TMPDIR/CoreFxPipe_HelloWorld`
 *   (`/tmp` when `TMPDIR` is unset or empty): the path .NET's `NamedPipeClientStream` uses on Unix,
 *   so a .NET client finds a byte-mode server of ours by its pipe name.
 * - Remote servers (`\\host\pipe\name`) are Windows-only.
 *
 * @module
 */
import { getenv } from "../../ffi/libc.ts";
import { pipeError } from "../errors.ts";

/**
 * `TMPDIR` as the process has it. On Linux it is read through libc, so that naming a pipe needs no
 * `--allow-env` beyond the `--allow-ffi` the backend needs anyway, and gives the same path whatever
 * the permissions.
 */
function tempDirectory(): string | undefined {
  return Deno.build.os === "linux" ? getenv("TMPDIR") : Deno.env.get("TMPDIR");
}

/** The prefix .NET puts before a pipe name in the temp directory. */
export const DOTNET_PREFIX = "CoreFxPipe_";

/**
 * The socket path a pipe name resolves to.
 * @param name a bare name, `\\.\pipe\NAME`, or an absolute path
 * @param server `"."` (or `"localhost"`): the only server a Unix socket can reach
 * @throws {TypeError} for an empty or invalid name, or a remote server
 */
export function pipePath(name: string, server = "."): string {
  if (name.startsWith("/")) return name;
  let bare = name;
  const unc = /^\\\\([^\\]+)\\pipe\\(.*)$/i.exec(name);
  if (unc) [, server, bare] = unc;
  if (server !== "." && server.toLowerCase() !== "localhost") {
    throw new TypeError(`Cannot use pipe "${name}" on server "${server}": remote pipes are Windows-only`);
  }
  if (bare === "" || /[/\0]/.test(bare)) {
    throw new TypeError(`Cannot use pipe "${name}": invalid pipe name (empty, or containing "/" or NUL)`);
  }
  const temp = (tempDirectory() || "/tmp").replace(/\/+$/, "");
  return `${temp}/${DOTNET_PREFIX}${bare}`;
}

/** The directory a socket path lives in (`/` for a file at the root). */
export function directoryOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash > 0 ? path.slice(0, slash) : "/";
}

/** The `NotFound` a listener reports when the directory of its socket path does not exist. */
export function missingDirectoryError(path: string, errno: number): Error {
  return pipeError(
    Deno.errors.NotFound,
    "listen on",
    path,
    `directory "${directoryOf(path)}" does not exist`,
    errno,
  );
}
