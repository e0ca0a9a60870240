/**
 * Whether the engine's one blocking wait (`GetQueuedCompletionStatusEx` on Windows, `epoll_wait` on
 * Linux) keeps the process alive, for `listener.unref()` and `conn.unref()`.
 *
 * A `nonblocking` FFI call is an async op of Deno's event loop, and a pending op keeps the process
 * running. Deno's `Deno.Listener.unref()` and `Deno.Conn.unref()` work by telling the event loop that
 * a pending op does not count (`core.unrefOpPromise`); we do the same to the wait's promise whenever
 * every operation it waits for belongs to an unref'd listener or connection. The wait then still runs
 * (an unref'd listener accepts clients while something else keeps the program running) but the
 * program may exit under it, as it does under an unref'd `Deno.Listener`'s accept. Verified with
 * Deno 2.9.6 on Linux and with Windows Deno under Wine: a blocked, unref'd wait lets the process exit,
 * and a packet posted while a timer keeps the process running still resolves it.
 *
 * That switch is Deno's internal API (`Deno[Deno.internal].core`); if a runtime lacks it, `unref()`
 * has no effect and says so once in the log, rather than polling.
 *
 * @module
 */
import { logger } from "./log.ts";

interface Core {
  refOpPromise(promise: Promise<unknown>): void;
  unrefOpPromise(promise: Promise<unknown>): void;
}

function findCore(): Core | undefined {
  const internal = (Deno as unknown as { internal?: symbol }).internal;
  const core = internal === undefined
    ? undefined
    : (Deno as unknown as Record<symbol, { core?: Partial<Core> } | undefined>)[internal]?.core;
  if (typeof core?.refOpPromise === "function" && typeof core.unrefOpPromise === "function") {
    return core as Core;
  }
  return undefined;
}

const core = findCore();
let warned = false;

/** Whether this runtime lets a pending wait stop keeping the process alive. */
export const canUnref: boolean = core !== undefined;

/** Make the pending op behind `promise` keep the process alive (`ref`) or not. */
export function setOpRef(promise: Promise<unknown>, ref: boolean): void {
  if (core) {
    if (ref) core.refOpPromise(promise);
    else core.unrefOpPromise(promise);
  } else if (!ref && !warned) {
    warned = true;
    logger(Deno.build.os === "windows" ? "windows" : "posix").warn(
      "unref() has no effect: this Deno has no way to unref a pending FFI call",
    );
  }
}
