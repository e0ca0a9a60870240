/**
 * Option defaults and checks shared by both backends, so `listen()` and `connect()` accept and
 * refuse the same values on every platform.
 *
 * @module
 */
import { pipeError } from "./errors.ts";

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
