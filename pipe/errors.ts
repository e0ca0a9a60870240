/**
 * The one gate through which every native failure becomes a typed error.
 *
 * Both backends throw the same `Deno.errors` kinds, so a caller writes one `catch` for every
 * platform. Each error carries the raw `code` (Win32 error or errno) and a sentence a user
 * understands: `Cannot connect to "\\.\pipe\HelloWorld": no such pipe (2)`.
 *
 * @module
 */

/** An error from a native call, with its raw code. */
export type NativeError = Error & { code: number };

type ErrorClass = new (message: string, options?: ErrorOptions) => Error;

interface Meaning {
  kind: ErrorClass;
  text: string;
}

/** Win32 error codes the engine meets, named for the reader. */
const WIN32: Record<number, Meaning> = {
  2: { kind: Deno.errors.NotFound, text: "no such pipe" },
  3: { kind: Deno.errors.NotFound, text: "path not found" },
  5: { kind: Deno.errors.PermissionDenied, text: "access denied" },
  6: { kind: Deno.errors.BadResource, text: "invalid handle" },
  8: { kind: Error, text: "not enough memory" },
  53: { kind: Deno.errors.NotFound, text: "the network path was not found (no such server)" },
  67: { kind: Deno.errors.NotFound, text: "the network name was not found" },
  87: { kind: TypeError, text: "invalid parameter" },
  109: { kind: Deno.errors.BrokenPipe, text: "the pipe has been ended" },
  121: { kind: Deno.errors.TimedOut, text: "timed out" },
  123: { kind: TypeError, text: "invalid pipe name" },
  161: { kind: TypeError, text: "invalid pipe name" },
  183: { kind: Deno.errors.AddrInUse, text: "name already in use" },
  231: { kind: Deno.errors.TimedOut, text: "all pipe instances are busy" },
  232: { kind: Deno.errors.BrokenPipe, text: "the pipe is being closed" },
  233: { kind: Deno.errors.BrokenPipe, text: "no process is on the other end of the pipe" },
  234: { kind: Error, text: "more data is available" },
  258: { kind: Deno.errors.TimedOut, text: "timed out" },
  535: { kind: Deno.errors.AddrInUse, text: "a client is already connected" },
  995: { kind: Deno.errors.Interrupted, text: "the operation was cancelled" },
  1117: { kind: Error, text: "I/O device error" },
  1314: { kind: Deno.errors.PermissionDenied, text: "a required privilege is not held" },
  1326: { kind: Deno.errors.PermissionDenied, text: "the server refused our logon (user name or password)" },
  1336: { kind: TypeError, text: "invalid security descriptor" },
  1338: { kind: TypeError, text: "invalid security descriptor" },
  1816: { kind: Deno.errors.Busy, text: "not enough quota: too many operations at once, try again later" },
};

/**
 * Codes that mean something else for a server creating an instance (`CreateNamedPipeW`): there
 * ERROR_PIPE_BUSY says the name already has every instance its limit allows, some created by another
 * process of ours, not that a server is busy.
 */
const WIN32_CREATE_PIPE: Record<number, Meaning> = {
  231: {
    kind: Deno.errors.AddrInUse,
    text: "the name already has all the instances it allows (another process holds some)",
  },
};

/** errno values (Linux numbering) the POSIX backend meets. */
const ERRNO: Record<number, Meaning> = {
  1: { kind: Deno.errors.PermissionDenied, text: "operation not permitted" },
  2: { kind: Deno.errors.NotFound, text: "no such pipe" },
  4: { kind: Deno.errors.Interrupted, text: "interrupted" },
  9: { kind: Deno.errors.BadResource, text: "bad file descriptor" },
  11: { kind: Deno.errors.WouldBlock, text: "operation would block" },
  13: { kind: Deno.errors.PermissionDenied, text: "access denied" },
  17: { kind: Deno.errors.AlreadyExists, text: "file exists" },
  20: { kind: Deno.errors.NotFound, text: "path not found" },
  22: { kind: TypeError, text: "invalid argument" },
  24: { kind: Error, text: "too many open files" },
  32: { kind: Deno.errors.BrokenPipe, text: "the pipe has been ended" },
  36: { kind: TypeError, text: "socket path too long" },
  90: { kind: RangeError, text: "message too long" },
  91: { kind: TypeError, text: "the pipe is of the other mode (message or byte)" },
  94: { kind: TypeError, text: "socket type not supported" },
  98: { kind: Deno.errors.AddrInUse, text: "name already in use" },
  103: { kind: Deno.errors.ConnectionAborted, text: "connection aborted" },
  104: { kind: Deno.errors.BrokenPipe, text: "connection reset by peer" },
  107: { kind: Deno.errors.NotConnected, text: "not connected" },
  110: { kind: Deno.errors.TimedOut, text: "timed out" },
  111: { kind: Deno.errors.NotFound, text: "no server is listening" },
};

function build(
  table: Record<number, Meaning>,
  prefix: string,
  code: number,
  action: string,
  name: string,
): NativeError {
  const meaning = table[code] ?? { kind: Error, text: `${prefix} error` };
  const error = new meaning.kind(`Cannot ${action} "${name}": ${meaning.text} (${code})`) as NativeError;
  error.code = code;
  return error;
}

/**
 * Turn a Win32 error code into a typed error.
 * @param code the Win32 error (from `GetLastError` or `RtlNtStatusToDosError`)
 * @param action what was attempted, as a verb phrase: `"create named pipe"`
 * @param name the pipe path, quoted in the message
 */
export function win32Error(code: number, action: string, name: string): NativeError {
  const table = action === "create named pipe" && code in WIN32_CREATE_PIPE ? WIN32_CREATE_PIPE : WIN32;
  return build(table, "Windows", code, action, name);
}

/** Turn an errno into a typed error; see {@linkcode win32Error}. */
export function errnoError(errno: number, action: string, name: string): NativeError {
  return build(ERRNO, "system", errno, action, name);
}

/** A typed error that no native call produced: `Cannot read from "x": message too large`. */
export function pipeError(
  kind: ErrorClass,
  action: string,
  name: string,
  text: string,
  code = 0,
): NativeError {
  const error = new kind(`Cannot ${action} "${name}": ${text}`) as NativeError;
  error.code = code;
  return error;
}

/** The error `accept()` and I/O reject with after `close()`. */
export function closedError(what: string, name: string): NativeError {
  return pipeError(Deno.errors.BadResource, what, name, "it is closed");
}
