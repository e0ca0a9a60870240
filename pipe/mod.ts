/**
 * `listen()` and `connect()`: picks the backend for this platform. Neither backend opens its
 * native library before it is first used, so importing this on any platform is free.
 *
 * @module
 */
import * as posix from "./posix/mod.ts";
import * as windows from "./windows/mod.ts";
import type { ConnectOptions, ListenOptions, PipeConn, PipeListener } from "./types.ts";

const backend = Deno.build.os === "windows" ? windows : posix;

/**
 * Create a named pipe server (Windows `CreateNamedPipeW`; POSIX a Unix socket) and start
 * listening. The first instance exists when this returns.
 * @throws {Deno.errors.AddrInUse} when the name is already served
 * @throws {Deno.errors.PermissionDenied} when the name is taken by someone we may not touch
 */
export function listen(options: ListenOptions): PipeListener {
  return backend.listen(options);
}

/**
 * Connect to a named pipe server, waiting up to `timeout` ms for a missing or busy pipe.
 * @throws {Deno.errors.NotFound} when no server appeared in time
 * @throws {Deno.errors.TimedOut} when every instance stayed busy
 */
export function connect(options: ConnectOptions): Promise<PipeConn> {
  return backend.connect(options);
}

/** Native handles (Windows) or descriptors (POSIX) the engine holds open now: for leak checks. */
export function openHandleCount(): number {
  return backend.openHandleCount();
}

/** The full path a pipe name resolves to on this platform: `\\.\pipe\NAME` or a socket path. */
export function pipePath(name: string, server = "."): string {
  return backend.pipePath(name, server);
}
