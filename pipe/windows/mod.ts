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
 * Create the first pipe instance (and the other listening ones) and return the server.
 * @throws {Deno.errors.AddrInUse} when the name is already served
 */
export function listen(options: ListenOptions): PipeListener {
  return new PipeServer(options);
}
