/**
 * The relay: bytes (or messages) copied both ways between two endpoints until both are done, over
 * web streams, whatever the endpoints are (pipes, sockets, stdio). Backpressure is end to end: each
 * direction holds one chunk at a time and reads the next only once the other side accepted the last
 * one, so a slow reader stalls a fast writer (through the pipes' and sockets' own buffers) instead of
 * growing memory.
 *
 * End of stream. When one side ends, the {@linkcode EndOfStream} rule says what happens:
 * - `"half-close"`: the end is passed on as a half-close (`closeWrite`: `shutdown(SHUT_WR)` on a
 *   socket, a zero-length message on a message pipe, closing stdout), and the other direction goes
 *   on until it ends too. A byte-mode pipe on Windows has no half-close: nothing reaches its peer,
 *   which ends only when it chooses to.
 * - `"close"`: the first end of stream closes both sides (npiperelay's `-ep -ei`).
 * - `"auto"` (default): half-close where the receiving side can carry it, close where it cannot.
 * `linger` bounds how long the other direction may go on after the first end (socat's `-t`).
 * A zero-length message read from a message endpoint is, by default, its end of stream (what the
 * peer's `closeWrite` sends); with `emptyMessage: "pass"` it is relayed as a message instead.
 * An error on either side (a peer killed, a reset) closes both sides at once.
 *
 * ```ts
 * import { connect, listen } from "../mod.ts";
 * import { pipeRelayEnd, relay } from "./relay.ts";
 *
 * const listener = listen({ name: "Front", mode: "byte" });
 * for await (const conn of listener) {
 *   const back = await connect({ name: "Back", mode: "byte" });
 *   relay(pipeRelayEnd(conn), pipeRelayEnd(back)).then((r) => console.log(r.bytes));
 * }
 * ```
 *
 * @module
 */
import { relayConnections } from "./mod.ts";
import type { PipeConn } from "./types.ts";

/** One side of a relay: what is read from it, where the other side's data goes, how to close it. */
export interface RelayEnd {
  /** Chunks read from this side (whole messages when {@linkcode RelayEnd.messages}); ends at end of stream. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Where the other side's chunks go; `close()` half-closes this side, `abort()` closes it. */
  readonly writable: WritableStream<Uint8Array>;
  /** Whether a half-close written here reaches the peer (false for byte-mode pipes on Windows). */
  readonly halfClose: boolean;
  /** Whether chunks are messages, so that a zero-length chunk is a zero-length message. */
  readonly messages: boolean;
  /** Close both directions and release the resource; idempotent, never rejects. */
  close(): Promise<void>;
  /**
   * The pipe connection behind this end, if any: when both ends have one, {@linkcode relay} lets
   * the backend copy between them by its own means (on Linux, a copy thread that the kernel wakes
   * directly), with the same rules.
   */
  readonly conn?: PipeConn;
}

/** What one side's end of stream does; see the module doc. */
export type EndOfStream = "auto" | "half-close" | "close";

/** What a zero-length message read from a message endpoint means: its end of stream, or a message. */
export type EmptyMessage = "eof" | "pass";

/** Options of {@linkcode relay}. */
export interface RelayOptions {
  /** Default `"auto"`. */
  eof?: EndOfStream;
  /** Default `"eof"`. */
  emptyMessage?: EmptyMessage;
  /** After the first end of stream, close both sides after this many ms. Default: no limit. */
  linger?: number;
  /** Closes both sides. */
  signal?: AbortSignal;
}

/** How a relay ended, for its log line. */
export interface RelayResult {
  /** Bytes copied from the first endpoint to the second, and back. */
  bytes: [number, number];
  /** Messages (chunks) copied each way. */
  chunks: [number, number];
  /** Milliseconds from start to end. */
  ms: number;
  /** Which sides' reads ended with end of stream (not with an error or by being closed). */
  ended: [boolean, boolean];
  /**
   * Bytes read from the first endpoint, and from the second, that could not be delivered because the
   * other side had ended its stream and then closed (a late answer to a client that left): the
   * normal end of a relay, not an error.
   */
  undelivered: [number, number];
  /** The first error that broke the relay (a peer killed, a reset), if any. */
  error?: Error;
}

/**
 * Copy both ways between `a` and `b` until both directions ended (or the rules close them), then
 * close both. Never rejects: a failure is reported in the result.
 * @param a the first endpoint (usually the accepted client)
 * @param b the second endpoint
 * @param options the end-of-stream rules
 * @returns the counts, the duration and the error that ended it, if any
 */
export async function relay(a: RelayEnd, b: RelayEnd, options: RelayOptions = {}): Promise<RelayResult> {
  const { eof = "auto", emptyMessage = "eof", linger, signal } = options;
  if (a.conn && b.conn) {
    const result = await relayConnections(a.conn, b.conn, options);
    if (result) return result;
  }
  const started = performance.now();
  const result: RelayResult = {
    bytes: [0, 0],
    chunks: [0, 0],
    ms: 0,
    ended: [false, false],
    undelivered: [0, 0],
  };
  const ends = [a, b] as const;
  const readers = ends.map((end) => end.readable.getReader());
  const writers = ends.map((end) => end.writable.getWriter());
  let closing: Promise<void> | undefined;
  let lingerTimer: ReturnType<typeof setTimeout> | undefined;
  const closeBoth = () =>
    closing ??= (async () => {
      // Pending reads resolve as done at once, whatever the source is blocked on.
      for (const reader of readers) reader.cancel().catch(() => {});
      await Promise.allSettled([a.close(), b.close()]);
      for (const writer of writers) writer.abort().catch(() => {});
    })();
  const stop = () => closeBoth();
  signal?.addEventListener("abort", stop, { once: true });
  if (signal?.aborted) closeBoth();

  const direction = async (i: 0 | 1) => {
    const from = ends[i], to = ends[1 - i], reader = readers[i], writer = writers[1 - i];
    let writing = 0;
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done || closing) break;
        if (value.length === 0) {
          if (from.messages && emptyMessage === "eof") break;
          if (!to.messages) continue; // nothing to send on a byte stream
        }
        writing = value.length;
        await writer.write(value);
        writing = 0;
        result.bytes[i] += value.length;
        result.chunks[i]++;
      }
      if (closing) return;
      result.ended[i] = true;
      const rule = eof === "auto" ? (to.halfClose ? "half-close" : "close") : eof;
      if (rule === "close") return void await closeBoth();
      await writer.close();
      if (linger !== undefined && lingerTimer === undefined && !result.ended[1 - i]) {
        lingerTimer = setTimeout(closeBoth, linger);
      }
    } catch (error) {
      if (closing) return; // we closed it: its pending operation fails, as expected
      if (writing > 0 && result.ended[1 - i] && isGone(error)) {
        result.undelivered[i] += writing; // the other side ended its stream, then left
        return void await closeBoth();
      }
      result.error ??= error instanceof Error ? error : new Error(String(error));
      await closeBoth();
    }
  };
  try {
    await Promise.all([direction(0), direction(1)]);
  } finally {
    clearTimeout(lingerTimer);
    signal?.removeEventListener("abort", stop);
    await closeBoth();
  }
  result.ms = performance.now() - started;
  return result;
}

/** A write refused because the peer has closed: the end of its connection, not a failure. */
function isGone(error: unknown): boolean {
  return error instanceof Deno.errors.BrokenPipe || error instanceof Deno.errors.ConnectionReset;
}

/**
 * A pipe connection as a relay endpoint. In message mode each message is one chunk (so boundaries
 * survive a relay between two message endpoints) and an empty chunk written is a zero-length
 * message; in byte mode it uses the connection's own `readable` and `writable`.
 * @param conn a connected pipe (accepted or connected)
 * @returns the endpoint
 */
export function pipeRelayEnd(conn: PipeConn): RelayEnd {
  const messages = conn.mode === "message";
  const close = () => conn.close().catch(() => {});
  if (!messages) {
    return {
      readable: conn.readable,
      writable: conn.writable,
      // Byte-mode named pipes have no half-close on Windows (see PipeConn.closeWrite).
      halfClose: Deno.build.os !== "windows",
      messages,
      close,
      conn,
    };
  }
  return {
    readable: new ReadableStream<Uint8Array>({
      async pull(controller) {
        const message = await conn.readMessage();
        if (message === null) controller.close();
        else controller.enqueue(message);
      },
      cancel: close,
    }, { highWaterMark: 0 }),
    writable: new WritableStream<Uint8Array>({
      write: (chunk) => conn.writeMessage(chunk),
      close: () => conn.closeWrite(),
      abort: close,
    }),
    halfClose: true,
    messages,
    close,
    conn,
  };
}
