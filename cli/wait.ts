/**
 * `namedpipe wait`: return once a pipe exists and has a free instance, without connecting to it,
 * for scripts that start a server and must wait until it serves.
 *
 * ```ts
 * import { wait } from "./wait.ts";
 *
 * await wait({ name: "HelloWorld", timeout: 5000 }); // throws Deno.errors.NotFound on timeout
 * ```
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { pipePath, waitForPipe } from "../pipe/mod.ts";
import { ROOT_CATEGORY } from "./logging.ts";

const log = getLogger([ROOT_CATEGORY, "wait"]);

/** Options of {@linkcode wait}. */
export interface WaitCommandOptions {
  name: string;
  /** Milliseconds. Default 5000. */
  timeout?: number;
  /** Stops the wait (Ctrl+C). */
  signal?: AbortSignal;
}

/**
 * Wait for the pipe.
 * @param options the name and how long to wait
 * @throws {Deno.errors.NotFound} when it did not appear in time (exit code 3)
 * @throws {Deno.errors.TimedOut} when every instance stayed busy (exit code 3)
 */
export async function wait(options: WaitCommandOptions): Promise<void> {
  const started = performance.now();
  try {
    await waitForPipe({ name: options.name, timeout: options.timeout ?? 5000, signal: options.signal });
  } catch (error) {
    // Stopped by Ctrl+C: the pipe is not ready, which is what exit code 3 says.
    if (!options.signal?.aborted || error !== options.signal.reason) throw error;
    throw new Deno.errors.NotFound(
      `Cannot wait for "${pipePath(options.name)}": stopped by ${String(options.signal.reason)}`,
    );
  }
  log.debug("{path} is ready after {ms} ms.", {
    path: pipePath(options.name),
    ms: Math.round(performance.now() - started),
  });
}
