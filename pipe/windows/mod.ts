/**
 * The Windows backend: named pipes over kernel32 through `Deno.dlopen`, with overlapped I/O on one
 * I/O completion port (`completion_port.ts`). Nothing is opened until `listen()` or `connect()` is
 * first called, so importing this on Linux is free.
 *
 * @module
 */
import type { ListenOptions, PipeListener } from "../types.ts";
import { PipeServer } from "./listener.ts";

export { connect } from "./client.ts";
export { listPipes, waitForPipe } from "./directory.ts";
export { allowOnly } from "./identity.ts";
export { openHandleCount } from "./handles.ts";
export { pipePath } from "./path.ts";

/**
 * Windows relays copy over the connections' streams: overlapped I/O already completes on the one
 * port, with no thread of its own to save. See the POSIX twin.
 * @returns null: the caller copies over streams
 */
export function relayConnections(): Promise<null> {
  return Promise.resolve(null);
}

/**
 * Create the first pipe instance (and the other listening ones) and return the server.
 * @throws {Deno.errors.AddrInUse} when the name is already served
 */
export function listen(options: ListenOptions): PipeListener {
  return new PipeServer(options);
}
