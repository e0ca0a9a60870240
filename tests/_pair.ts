/**
 * A connected pair through the public API, for tests that drive both ends: the listener, its
 * accepted connection and the client, all closed by `await using`.
 *
 * @module
 */
import { connect, listen, type ListenOptions, type PipeConn, type PipeListener } from "../mod.ts";
import { within } from "./_pipes.ts";

/** Both ends of one connection and the listener they came from. */
export interface Pair extends AsyncDisposable {
  listener: PipeListener;
  /** The server's accepted connection. */
  server: PipeConn;
  client: PipeConn;
}

/** Listen on `options.name`, connect one client in the same mode and accept it. */
export async function pair(options: ListenOptions): Promise<Pair> {
  const listener = listen(options);
  try {
    const [server, client] = await within(
      Promise.all([listener.accept(), connect({ name: listener.path, mode: options.mode })]),
      10_000,
      "a client to connect",
    );
    return {
      listener,
      server,
      client,
      async [Symbol.asyncDispose]() {
        await client.close();
        await server.close();
        await listener.close();
      },
    };
  } catch (error) {
    await listener.close();
    throw error;
  }
}

/** Read `stream` to its end (bounded by `ms`) and return the bytes. */
export async function collect(stream: ReadableStream<Uint8Array>, ms = 10_000): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  await within(
    (async () => {
      for await (const chunk of stream) {
        chunks.push(chunk);
        length += chunk.length;
      }
    })(),
    ms,
    "the end of the stream",
  );
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/** Read exactly `length` bytes with `read()` (bounded by `ms`); fails at an early end of stream. */
export async function readExactly(conn: PipeConn, length: number, ms = 10_000): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  let have = 0;
  while (have < length) {
    const n = await within(conn.read(bytes.subarray(have)), ms, `${length - have} more bytes`);
    if (n === null) throw new Error(`End of stream after ${have} of ${length} bytes`);
    have += n;
  }
  return bytes;
}
