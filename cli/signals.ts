/**
 * The signals that stop the server gracefully: Ctrl+C (`SIGINT`) everywhere, `SIGTERM` on Linux,
 * and on Windows `SIGBREAK` (Ctrl+Break). Deno exposes no other console event on Windows: closing
 * the console window ends the process without a summary.
 *
 * ```ts
 * import { stopSignals } from "./signals.ts";
 *
 * using stop = stopSignals();
 * stop.signal.addEventListener("abort", () => console.error(`Stopping on ${stop.signal.reason}`));
 * ```
 *
 * @module
 */

/** The signals listened to on this platform. */
export function stopSignalNames(): Deno.Signal[] {
  // Deno on Windows supports only SIGINT and SIGBREAK listeners; SIGTERM there is TerminateProcess.
  return Deno.build.os === "windows" ? ["SIGINT", "SIGBREAK"] : ["SIGINT", "SIGTERM"];
}

/** An abort signal fired by the first stop signal; dispose to remove the OS listeners. */
export interface StopSignals extends Disposable {
  /** Aborted with the signal's name (`"SIGINT"`) as its reason. */
  readonly signal: AbortSignal;
}

/**
 * Listen for the stop signals. The listeners keep the process alive: dispose when done.
 * @returns the abort signal and its disposer
 */
export function stopSignals(): StopSignals {
  const controller = new AbortController();
  const listeners = stopSignalNames().map((name) => {
    const listener = () => controller.abort(name);
    Deno.addSignalListener(name, listener);
    return [name, listener] as const;
  });
  return {
    signal: controller.signal,
    [Symbol.dispose]() {
      for (const [name, listener] of listeners) Deno.removeSignalListener(name, listener);
    },
  };
}
