/**
 * The namedpipe peer of `deno task bench`: `listen()` in message mode, each message answered
 * with the 58-byte default response (reply) or sent back as is (echo). The same script runs on
 * Linux (Unix seqpacket socket) and with Windows Deno (named pipe, here under Wine).
 *
 * `reply` and `echo` use the library's defaults: `readMessage()`, a fresh array per message.
 * `echo-read` is the echo server written the way the README recommends for servers that do not
 * keep what they read: `read(buffer)` into one buffer of the largest message's size, then
 * `writeMessage(buffer.subarray(0, n))`.
 *
 *   deno run -A bench/servers/namedpipe_server.ts NAME reply|echo|echo-read
 *
 * @module
 */
import { listen, type PipeConn } from "../../mod.ts";

// UTF-16LE "Default response from server" with its NUL: 58 bytes.
const RESPONSE = new Uint8Array([..."Default response from server\0"].flatMap((c) => [c.charCodeAt(0), 0]));

/** One client's exchange in each mode, until it ends its stream. */
const EXCHANGES: Record<string, (conn: PipeConn) => Promise<void>> = {
  async reply(conn) {
    while (await conn.readMessage() !== null) await conn.writeMessage(RESPONSE);
  },
  async echo(conn) {
    for (let message; (message = await conn.readMessage()) !== null;) await conn.writeMessage(message);
  },
  async "echo-read"(conn) {
    const buffer = new Uint8Array(65536);
    for (let n; (n = await conn.read(buffer)) !== null;) await conn.writeMessage(buffer.subarray(0, n));
  },
};

async function serve(conn: PipeConn, exchange: (conn: PipeConn) => Promise<void>) {
  try {
    await exchange(conn);
  } catch {
    // The client left mid-write: nothing to do.
  } finally {
    await conn.close().catch(() => {});
  }
}

async function main([name, mode]: string[]) {
  // 64 KiB pipe buffers like the native C and libuv (Node) servers, so all peers buffer alike.
  const listener = listen({ name, mode: "message", bufferSize: 65536 });
  const exchange = EXCHANGES[mode] ?? EXCHANGES.reply;
  console.log("ready");
  for await (const conn of listener) serve(conn, exchange);
}

if (import.meta.main) await main(Deno.args);
