/**
 * AbortSignal plumbing shared by both backends: every waiting call takes `{ signal }` and rejects
 * with `signal.reason` (what `signal.throwIfAborted()` throws), cancelling only its own operation.
 *
 * @module
 */

/** Throw `signal.reason` when the signal has already aborted: no I/O is issued then. */
export function checkSignal(signal: AbortSignal | undefined): void {
  signal?.throwIfAborted();
}

/** Call `cancel` once if `signal` aborts; the returned function stops listening. */
export function onAbort(signal: AbortSignal | undefined, cancel: () => void): () => void {
  if (!signal) return () => {};
  signal.addEventListener("abort", cancel, { once: true });
  return () => signal.removeEventListener("abort", cancel);
}

/**
 * `promise`, unless `signal` aborts while `cancellable()` is still true: then reject with the
 * signal's reason at once. Used for operations queued behind others, which have issued no I/O yet
 * (the queue skips them when their turn comes).
 */
export function whileQueued<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  cancellable: () => boolean,
): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const stop = onAbort(signal, () => {
      if (cancellable()) reject(signal.reason);
    });
    promise.then(resolve, reject).finally(stop);
  });
}

/** A timer that ends early, rejecting with the signal's reason, when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const stop = onAbort(signal, () => {
      clearTimeout(timer);
      reject(signal!.reason);
    });
    const timer = setTimeout(() => {
      stop();
      resolve();
    }, ms);
  });
}

/**
 * Callers parked until something frees up (an instance slot, say). `wait()` resolves at the next
 * `wakeAll()`, or rejects with the signal's reason and leaves the list if its signal aborts first.
 */
export class WakeList {
  #waiters: (() => void)[] = [];

  /** Resolves at the next `wakeAll()`. */
  wait(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const stop = onAbort(signal, () => {
        const at = this.#waiters.indexOf(wake);
        if (at >= 0) this.#waiters.splice(at, 1);
        reject(signal!.reason);
      });
      const wake = () => {
        stop();
        resolve();
      };
      this.#waiters.push(wake);
    });
  }

  /** Wake every waiting caller. */
  wakeAll(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
