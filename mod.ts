/**
 * namedpipe: Windows named pipes for Deno over kernel32, with the same API on Linux over
 * Unix domain sockets.
 *
 * ```ts
 * import { connect, listen } from "./mod.ts";
 *
 * const server = listen({ name: "Example" });
 * (async () => {
 *   for await (const conn of server) {
 *     const request = await conn.readMessage();
 *     if (request) await conn.writeMessage(request);
 *     await conn.close();
 *   }
 * })();
 * await using client = await connect({ name: "Example" });
 * await client.writeMessage(new TextEncoder().encode("ping"));
 * console.log(new TextDecoder().decode((await client.readMessage())!));
 * await server.close();
 * ```
 *
 * @module
 */
export { allowOnly, connect, listen, listPipes, openHandleCount, pipePath, waitForPipe } from "./pipe/mod.ts";
export { pipeRelayEnd, relay } from "./pipe/relay.ts";
export type { EmptyMessage, EndOfStream, RelayEnd, RelayOptions, RelayResult } from "./pipe/relay.ts";
export type {
  Access,
  AllowList,
  Authorize,
  ConnectOptions,
  IntegrityLevel,
  ListenOptions,
  ListOptions,
  OperationOptions,
  PeerGroup,
  PeerIdentity,
  PeerUser,
  PipeConn,
  PipeDescription,
  PipeInfo,
  PipeListener,
  PipeMode,
  PipeSecurity,
  SecurityPreset,
  WaitOptions,
} from "./pipe/types.ts";
