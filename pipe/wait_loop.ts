/**
 * The polling loop behind `waitForPipe()`, shared by both backends: each backend only says, without
 * connecting, whether a pipe is there and free; this loop asks every 10 ms on timers, so the JS
 * thread never blocks while it waits (Windows' `WaitNamedPipeW` would block it for the whole wait).
 *
 * @module
 */
import { pipeError } from "./errors.ts";

/** What a backend's probe saw: a free instance, a pipe with every instance busy, or nothing. */
export type Presence = "available" | "busy" | "missing";

/** How often the pipe is looked for. */
const POLL_MS = 10;

/**
 * Probe until the pipe is available, the timeout passes or `signal` aborts.
 * @param path the full pipe path, for messages
 * @param timeout milliseconds; `Infinity` for no limit
 * @param probe the backend's look at the pipe; it must not connect
 * @param signal aborts the wait with its reason
 * @throws {Deno.errors.NotFound} when the pipe never appeared within the timeout
 * @throws {Deno.errors.TimedOut} when it existed but stayed busy
 */
export async function pollUntilAvailable(
  path: string,
  timeout: number,
  probe: () => Presence,
  signal?: AbortSignal,
): Promise<void> {
  if (!(timeout >= 0)) throw pipeError(RangeError, "wait for", path, `invalid timeout ${timeout}`);
  const deadline = performance.now() + timeout;
  while (true) {
    signal?.throwIfAborted();
    const presence = probe();
    if (presence === "available") return;
    const left = deadline - performance.now();
    if (left <= 0) {
      const ms = Number.isFinite(timeout) ? `${timeout} ms` : "the wait";
      throw presence === "busy"
        ? pipeError(Deno.errors.TimedOut, "wait for", path, `every instance stayed busy for ${ms}`, 231)
        : pipeError(Deno.errors.NotFound, "wait for", path, `no server appeared within ${ms}`, 2);
    }
    await sleep(Math.min(POLL_MS, left), signal);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", aborted);
    };
    const aborted = () => {
      done();
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      done();
      resolve();
    }, ms);
    signal?.addEventListener("abort", aborted, { once: true });
  });
}
