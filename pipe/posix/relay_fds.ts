/**
 * The relay between two POSIX connections, on a copy thread of its own (`relay_thread.ts`): both
 * sockets leave the JS thread's poller and are copied by one blocking `epoll_wait` loop, which the
 * kernel wakes directly (socat's shape), instead of through the poller's worker-thread wait and the
 * event loop, twice per forwarded chunk. One thread serves every relay of the process; it starts
 * with the first and stops when the last ends. The rules are {@linkcode relay}'s, applied there.
 *
 * @module
 */
import { EFD_CLOEXEC, EFD_NONBLOCK, errno, libc } from "../../ffi/libc.ts";
import { errnoError, pipeError } from "../errors.ts";
import type { RelayOptions, RelayResult } from "../relay.ts";
import type { PipeConn } from "../types.ts";
import { PosixConn } from "./connection.ts";
import { logger } from "../log.ts";

const log = logger("posix");

/** What the JS thread asks of the copy thread. */
export type RelayThreadCommand =
  | {
    type: "add";
    id: number;
    fds: [number, number];
    messages: [boolean, boolean];
    maxMessageSize: [number, number];
    eof: "auto" | "half-close" | "close";
    emptyMessage: "eof" | "pass";
    linger?: number;
  }
  | { type: "close"; id: number }
  | { type: "stop" };

/** How one pair ended, as the copy thread reports it. */
export interface RelayThreadReport {
  id: number;
  bytes: [number, number];
  chunks: [number, number];
  ended: [boolean, boolean];
  /** Bytes not delivered because their destination had ended its stream and closed. */
  undelivered: [number, number];
  /** Ended by a `close` command. */
  closed?: boolean;
  error?: {
    side: number;
    action: string;
    errno?: number;
    /** A message over the source's `maxMessageSize`. */
    size?: number;
    /** A message only partly sent: [sent, length]. */
    partial?: [number, number];
  };
}

/** What an eventfd write adds: 1 (native-endian u64). */
const ONE = new Uint8Array(new BigUint64Array([1n]).buffer);

interface CopyThread {
  worker: Worker;
  /** Commands posted, so the thread knows when it has them all. */
  posted: Int32Array;
  wakefd: number;
  ready: Promise<boolean>;
  /** Resolves once the thread has closed its epoll set and ended (or failed). */
  stopped: Promise<void>;
  active: number;
  waiting: Map<number, (report: RelayThreadReport | Error) => void>;
}

let thread: CopyThread | null = null;
let nextId = 0;
/** Set when the thread cannot start here (e.g. a compiled binary without the module): no retry. */
let unavailable = false;

function startThread(): CopyThread {
  const wakefd = libc().eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakefd < 0) throw errnoError(errno(), "create eventfd for", "the relay");
  const worker = new Worker(new URL("./relay_thread.ts", import.meta.url), { type: "module" });
  const posted = new Int32Array(new SharedArrayBuffer(4));
  const { promise: ready, resolve } = Promise.withResolvers<boolean>();
  const { promise: stopped, resolve: resolveStopped } = Promise.withResolvers<void>();
  const current: CopyThread = { worker, posted, wakefd, ready, stopped, active: 0, waiting: new Map() };
  const fail = (error: Error) => {
    if (!unavailable) unavailableWarning(error);
    unavailable = true;
    resolve(false);
    resolveStopped();
    if (thread === current) thread = null;
    for (const settle of current.waiting.values()) settle(error);
    current.waiting.clear();
    worker.terminate();
    libc().close(wakefd);
  };
  worker.onmessage = (event: MessageEvent) => {
    const data = event.data;
    if (data.type === "ready") resolve(true);
    else if (data.type === "stopped") {
      libc().close(wakefd);
      worker.terminate(); // it is closing itself: this only ends its message channel now
      resolveStopped();
    } else if (data.type === "failed" || data.type === "crashed") {
      fail(new Error(`The relay's copy thread failed: ${data.message ?? `errno ${data.errno}`}`));
    } else {
      const report = data as RelayThreadReport;
      current.waiting.get(report.id)?.(report);
      current.waiting.delete(report.id);
    }
  };
  worker.onerror = (event) => {
    event.preventDefault();
    fail(new Error(`The relay's copy thread failed: ${event.message}`));
  };
  worker.postMessage({ type: "start", counter: posted.buffer, wakefd });
  return current;
}

/** Said once: relays still work, over streams, but several times slower than the thread copies. */
function unavailableWarning(error: unknown): void {
  log.warn("The relay's copy thread is unavailable ({reason}); relays copy over streams, slower", {
    reason: error instanceof Error ? error.message : String(error),
  });
}

function send(copy: CopyThread, command: RelayThreadCommand): void {
  copy.worker.postMessage(command);
  Atomics.add(copy.posted, 0, 1);
  libc().write(copy.wakefd, ONE, 8n);
}

/**
 * Relay between two connections on the copy thread, when both are this backend's connections and
 * idle; otherwise null, and the caller copies over streams.
 * @param a the first connection
 * @param b the second connection
 * @param options the end-of-stream rules and the signal
 * @returns how it ended, or null when it cannot be done here
 */
export async function relayConnections(
  a: PipeConn,
  b: PipeConn,
  options: RelayOptions,
): Promise<RelayResult | null> {
  if (unavailable || !(a instanceof PosixConn) || !(b instanceof PosixConn)) return null;
  if (!a.detachable || !b.detachable || options.signal?.aborted) return null;
  const started = performance.now();
  let copy: CopyThread;
  try {
    copy = thread ??= startThread();
  } catch (error) {
    unavailableWarning(error);
    unavailable = true;
    return null;
  }
  copy.active++;
  try {
    if (!await copy.ready || !a.detachable || !b.detachable) return null;
    const conns = [a, b] as const;
    const sides = [a.detach()!, b.detach()!] as const;
    const id = nextId++;
    const { promise, resolve } = Promise.withResolvers<RelayThreadReport | Error>();
    copy.waiting.set(id, resolve);
    send(copy, {
      type: "add",
      id,
      fds: [sides[0].fd, sides[1].fd],
      messages: [a.mode === "message", b.mode === "message"],
      maxMessageSize: [sides[0].maxMessageSize, sides[1].maxMessageSize],
      eof: options.eof ?? "auto",
      emptyMessage: options.emptyMessage ?? "eof",
      linger: options.linger,
    });
    const stop = () => send(copy, { type: "close", id });
    options.signal?.addEventListener("abort", stop, { once: true });
    let report: RelayThreadReport | Error;
    try {
      report = await promise;
    } finally {
      options.signal?.removeEventListener("abort", stop);
      for (const side of sides) side.release();
    }
    const result: RelayResult = {
      bytes: [0, 0],
      chunks: [0, 0],
      ms: performance.now() - started,
      ended: [false, false],
      undelivered: [0, 0],
    };
    if (report instanceof Error) {
      result.error = report;
      return result;
    }
    result.bytes = report.bytes;
    result.chunks = report.chunks;
    result.ended = report.ended;
    result.undelivered = report.undelivered;
    const failure = report.error;
    if (failure) {
      const conn = conns[failure.side];
      result.error = failure.size !== undefined
        ? pipeError(
          RangeError,
          failure.action,
          conn.path,
          `message of ${failure.size} bytes exceeds maxMessageSize ${
            sides[failure.side].maxMessageSize
          }; connection closed`,
        )
        : failure.partial
        ? pipeError(
          Error,
          failure.action,
          conn.path,
          `only ${failure.partial[0]} of ${failure.partial[1]} bytes of the message were sent`,
        )
        : errnoError(failure.errno ?? 0, failure.action, conn.path);
    }
    return result;
  } finally {
    if (--copy.active === 0 && thread === copy) {
      thread = null;
      // The last relay: wait until the thread is gone, so that nothing it held outlives relay().
      if (await copy.ready) {
        send(copy, { type: "stop" });
        await copy.stopped;
      }
    }
  }
}
