/**
 * The exit codes of the `namedpipe` command, and the one place that maps an error to its code.
 *
 * | code | meaning                                                   |
 * |------|-----------------------------------------------------------|
 * | 0    | success (also `serve` stopped by Ctrl+C or SIGTERM)       |
 * | 1    | internal error (a bug: the stack trace is printed)        |
 * | 2    | usage error: unknown option, bad value, invalid pipe name |
 * | 3    | pipe not found, or timed out waiting for it               |
 * | 4    | access denied (also: a Deno permission flag is missing)   |
 * | 5    | pipe name already in use by another server                |
 * | 6    | connection lost: the other end closed the pipe            |
 * | 7    | message too large: over --max-message-size, or the buffer |
 *
 * @module
 */

/** Exit codes, stable: scripts depend on them. */
export const ExitCode = {
  Ok: 0,
  Internal: 1,
  Usage: 2,
  NotFound: 3,
  AccessDenied: 4,
  NameInUse: 5,
  ConnectionLost: 6,
  MessageTooLarge: 7,
} as const;

/** One of {@linkcode ExitCode}'s values. */
export type ExitCode = typeof ExitCode[keyof typeof ExitCode];

/** The table printed at the end of `--help`. */
export const EXIT_CODES_HELP = `Exit codes:
  0  success (serve: stopped by Ctrl+C, SIGTERM or SIGBREAK)
  1  internal error (a bug; the stack trace is printed)
  2  usage error: unknown option, bad value, invalid pipe name
  3  pipe not found, or timed out waiting for it
  4  access denied (also: a Deno permission such as --allow-ffi is missing)
  5  pipe name already in use by another server
  6  connection lost: the other end closed the pipe
  7  message too large: a reply over --max-message-size, or a message the pipe cannot take whole`;

/** A mistake in how the command was called: reported without a stack trace, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * The exit code for an error.
 * @param error anything thrown
 * @returns the code; {@linkcode ExitCode.Internal} for anything not expected
 * @example
 * ```ts
 * exitCodeFor(new Deno.errors.NotFound("no such pipe")); // 3
 * ```
 */
export function exitCodeFor(error: unknown): ExitCode {
  // A missing Deno permission may arrive wrapped (e.g. "Cannot open libc.so.6") as the cause.
  if (deniedByDeno(error)) return ExitCode.AccessDenied;
  if (error instanceof UsageError) return ExitCode.Usage;
  if (
    error instanceof Deno.errors.NotFound || error instanceof Deno.errors.TimedOut ||
    error instanceof Deno.errors.ConnectionRefused // relay: nothing listens on tcp:HOST:PORT
  ) {
    return ExitCode.NotFound;
  }
  if (error instanceof Deno.errors.PermissionDenied) return ExitCode.AccessDenied;
  if (error instanceof Deno.errors.AddrInUse) return ExitCode.NameInUse;
  if (
    error instanceof Deno.errors.BrokenPipe || error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted || error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.UnexpectedEof
  ) return ExitCode.ConnectionLost;
  // A reply over maxMessageSize (the connection is closed), or a message larger than the socket's
  // send buffer (Linux EMSGSIZE): what was asked for, not a bug.
  if (error instanceof RangeError && isMessageTooLarge(error)) return ExitCode.MessageTooLarge;
  // The library reports what the user asked wrongly (bad name, SDDL on Linux) as a TypeError; a
  // TypeError from a bug reads differently. NotSupported: not possible on this platform.
  if (error instanceof TypeError && isLibrarySentence(error)) return ExitCode.Usage;
  if (error instanceof Deno.errors.NotSupported) return ExitCode.Usage;
  return ExitCode.Internal;
}

/**
 * The library's two size errors: `exceeds maxMessageSize`, and `EMSGSIZE` (code 90: the message does
 * not fit the socket's send buffer).
 */
function isMessageTooLarge(error: RangeError): boolean {
  return isLibrarySentence(error) &&
    /: (message of .* (exceeds maxMessageSize|does not fit the socket's send buffer)|message too long)/
      .test(error.message);
}

/**
 * Whether an error is one the library built: it has a `code`, or reads like its sentences,
 * `Cannot use pipe "a<b": invalid pipe name`, where V8's own errors quote with `'` or not at all.
 */
function isLibrarySentence(error: Error): boolean {
  return typeof (error as { code?: unknown }).code === "number" ||
    /^Cannot [^'\n]*"[^"\n]*"[^'\n]*: /.test(error.message);
}

/**
 * Whether Deno's permission system refused the operation (`--allow-ffi` missing), directly or as
 * the cause of the library's error.
 * @param error anything thrown
 * @returns true when a `Deno.errors.NotCapable` is in the cause chain
 */
export function deniedByDeno(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof Deno.errors.NotCapable) return true;
  }
  return false;
}

/**
 * Whether an error is an expected failure, reported as one line without a stack trace.
 * @param error anything thrown
 * @returns false only for internal errors
 */
export function isExpected(error: unknown): boolean {
  return exitCodeFor(error) !== ExitCode.Internal;
}
