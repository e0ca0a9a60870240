/**
 * Option defaults and checks shared by both backends, so `listen()` and `connect()` accept and
 * refuse the same values on every platform.
 *
 * @module
 */
import { pipeError } from "./errors.ts";
import type { ConnectOptions, ListenOptions } from "./types.ts";

/** Pipe buffer size, like the seed. */
export const DEFAULT_BUFFER_SIZE = 4096;
/** Largest message a connection accepts: 1 MiB. */
export const DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024;
/** Instances kept listening: libuv's default. */
export const DEFAULT_PENDING_INSTANCES = 4;
/** How long `connect()` waits for a missing or busy pipe, in milliseconds (go-winio's 2 s). */
export const DEFAULT_CONNECT_TIMEOUT = 2000;
/** `PIPE_UNLIMITED_INSTANCES`: as many instances as clients. */
export const UNLIMITED_INSTANCES = 255;
/** The largest size a Win32 DWORD-sized option or a socket buffer takes here. */
export const INT_MAX = 0x7fff_ffff;

/**
 * `value` (or `fallback` when absent), checked to be an integer in `[min, max]`.
 * @throws {RangeError} `Cannot listen on "x": bufferSize must be an integer from 0 to …, not -1`
 */
export function integer(
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
  what: string,
  path: string,
): number {
  const n = value ?? fallback;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw pipeError(
      RangeError,
      "listen on",
      path,
      `${what} must be an integer from ${min} to ${max}, not ${n}`,
    );
  }
  return n;
}

/** The size and instance options of `listen()`, checked. */
export interface ListenLimits {
  /** 1 to 254, or {@linkcode UNLIMITED_INSTANCES}. */
  maxInstances: number;
  /** At most `maxInstances`. */
  pendingInstances: number;
  /** The caller's value, or undefined for the backend's default. */
  bufferSize: number | undefined;
  maxMessageSize: number;
}

/**
 * `listen()`'s size and instance options, checked the same way by every listener, so each backend
 * accepts and refuses the same values.
 * @throws {RangeError} naming the option and its range
 */
export function listenLimits(options: ListenOptions, path: string): ListenLimits {
  const maxInstances = integer(options.maxInstances, UNLIMITED_INSTANCES, 1, 255, "maxInstances", path);
  const pendingInstances = integer(
    options.pendingInstances,
    DEFAULT_PENDING_INSTANCES,
    1,
    255,
    "pendingInstances",
    path,
  );
  integer(options.bufferSize, 0, 0, INT_MAX, "bufferSize", path);
  return {
    maxInstances,
    pendingInstances: Math.min(pendingInstances, maxInstances),
    bufferSize: options.bufferSize,
    maxMessageSize: integer(
      options.maxMessageSize,
      DEFAULT_MAX_MESSAGE_SIZE,
      0,
      INT_MAX,
      "maxMessageSize",
      path,
    ),
  };
}

/**
 * `connect()`'s `timeout` and `maxMessageSize`, checked the same way by every backend (a `NaN` limit
 * would disable the limit: every comparison with it is false).
 * @throws {RangeError} for a negative or NaN timeout, or a limit that is not an integer in range
 */
export function connectLimits(
  options: ConnectOptions,
  path: string,
): { timeout: number; maxMessageSize: number } {
  const timeout = options.timeout ?? DEFAULT_CONNECT_TIMEOUT;
  if (!(timeout >= 0)) throw pipeError(RangeError, "connect to", path, `invalid timeout ${timeout}`);
  const maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  if (!Number.isInteger(maxMessageSize) || maxMessageSize < 0 || maxMessageSize > INT_MAX) {
    throw pipeError(RangeError, "connect to", path, `invalid maxMessageSize ${maxMessageSize}`);
  }
  return { timeout, maxMessageSize };
}
