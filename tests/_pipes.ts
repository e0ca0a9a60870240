/**
 * Helpers shared by the pipe API tests: unique names, bounded waits and an echo server. They use
 * only the public API, so the same tests run against the Windows and the POSIX backend.
 *
 * @module
 */
import { listen, type ListenOptions, type PipeConn, type PipeListener } from "../mod.ts";

let counter = 0;

/** A pipe name no other test (or concurrent run) uses. */
export function uniqueName(label: string): string {
  return `np_test_${Deno.pid}_${++counter}_${label}`;
}

/** Reject with a clear message if `promise` has not settled within `ms`; the timer never leaks. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Bytes `0, 1, …, 255, 0, …` of the given length, easy to check after a round trip. */
export function pattern(length: number, seed = 0): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i + seed) & 0xff;
  return bytes;
}

/** A listener answering every message with `answer(message)` (an echo by default). */
export interface TestServer extends AsyncDisposable {
  listener: PipeListener;
  /** Errors thrown by `readMessage()` on server-side connections, in order. */
  readErrors: Error[];
  /** Connections accepted so far. */
  accepted: number;
  /** Close the listener, then wait for every accepted connection's handler to finish. */
  stop(): Promise<void>;
}

/** Start a server; each connection is served until end of stream, then closed. */
export function serve(
  options: ListenOptions,
  answer: (message: Uint8Array, conn: PipeConn) => Uint8Array | null = (m) => m,
): TestServer {
  const listener = listen(options);
  const handlers = new Set<Promise<void>>();
  const server: TestServer = {
    listener,
    readErrors: [],
    accepted: 0,
    async stop() {
      await within(listener.close(), 10_000, "the listener to close");
      await within(loop, 10_000, "the accept loop to end");
      while (handlers.size > 0) await within(Promise.all(handlers), 10_000, "the connection handlers");
    },
    [Symbol.asyncDispose]() {
      return server.stop();
    },
  };
  const handle = async (conn: PipeConn) => {
    try {
      while (true) {
        const message = await conn.readMessage();
        if (message === null) break;
        const reply = answer(message, conn);
        if (reply) await conn.writeMessage(reply);
      }
    } catch (error) {
      server.readErrors.push(error as Error);
    } finally {
      await conn.close();
    }
  };
  const loop = (async () => {
    for await (const conn of listener) {
      server.accepted++;
      const task: Promise<void> = handle(conn).finally(() => handlers.delete(task));
      handlers.add(task);
    }
  })();
  return server;
}
