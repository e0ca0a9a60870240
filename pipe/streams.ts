/**
 * Web streams over a pipe connection, shaped like `Deno.Conn`'s `readable` and `writable`; both
 * backends' connections create them lazily from their own `read`/`write`/`closeWrite`/`close`.
 *
 * Backpressure is the pipe's own: the readable pulls one `read()` only when its consumer asks for
 * more (a byte stream's default high-water mark is 0, so nothing is read ahead), and the writable
 * resolves a chunk only once the pipe accepted all of it, so a slow reader slows the writer instead
 * of growing memory.
 *
 * @module
 */

/** What the streams need from a connection. */
export interface StreamSource {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): Promise<void>;
}

/** Bytes asked for per `read()` when the consumer brings no buffer of its own: tokio's and libuv's 64 KiB. */
const CHUNK = 64 * 1024;

/** A byte `ReadableStream` that ends at end of stream and closes the connection when cancelled. */
export function readableFrom(conn: StreamSource): ReadableStream<Uint8Array> {
  return new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: CHUNK,
    async pull(controller) {
      const request = controller.byobRequest!;
      const view = request.view!;
      const target = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
      let n: number | null;
      // A read of 0 bytes is not the end (a byte pipe may report an empty write), and a byte stream
      // may not respond with 0 unless it closes: read again.
      do n = await conn.read(target); while (n === 0);
      if (n === null) {
        controller.close();
        request.respond(0);
      } else {
        request.respond(n);
      }
    },
    async cancel() {
      await conn.close();
    },
  });
}

/** A `WritableStream` whose `close()` half-closes the connection (`closeWrite`). */
export function writableTo(conn: StreamSource): WritableStream<Uint8Array> {
  return new WritableStream({
    async write(chunk) {
      // An empty chunk has nothing to send; in message mode it would even read as end of stream.
      for (let offset = 0; offset < chunk.length;) {
        offset += await conn.write(chunk.subarray(offset));
      }
    },
    async close() {
      await conn.closeWrite();
    },
    async abort() {
      await conn.close();
    },
  });
}
