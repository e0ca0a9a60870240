/**
 * The pipes that exist, and waiting for one, on Windows, without ever connecting (a connection
 * would take an instance from its server, which would see a client come and go).
 *
 * - List: `NtQueryDirectoryFile(FileDirectoryInformation)` on the `\\.\pipe\` directory, as
 *   Sysinternals PipeList does. Each entry's `EndOfFile` is the pipe's current number of instances
 *   and `AllocationSize` its maximum (-1, unlimited, is reported as 255). `FindFirstFileW` walks the
 *   same directory but drops the maximum.
 *   Wine 8 cannot list the pipe directory (`STATUS_BAD_DEVICE_TYPE`): there a pattern without
 *   wildcards is still answered, by the probe below, with no instance counts; a wildcard throws
 *   `Deno.errors.NotSupported`.
 * - Probe (for wait, and the exact-name fallback): `WaitNamedPipeW(path, 1)`: TRUE when an instance
 *   is free, `ERROR_SEM_TIMEOUT` when all are busy, `ERROR_FILE_NOT_FOUND` (or, as the last instance
 *   closes, `ERROR_HANDLES_CLOSED`) when none exists. It blocks the calling thread for at most 1 ms,
 *   and only when every instance is busy.
 *
 * @module
 */
import {
  ERROR_FILE_NOT_FOUND,
  ERROR_HANDLES_CLOSED,
  ERROR_SEM_TIMEOUT,
  FILE_DIRECTORY_INFORMATION,
  FILE_LIST_DIRECTORY,
  FILE_SHARE_READ,
  FILE_SHARE_WRITE,
  kernel32,
  ntdll,
  OPEN_EXISTING,
  STATUS_BAD_DEVICE_TYPE,
  STATUS_NO_MORE_FILES,
  STATUS_SUCCESS,
  SYNCHRONIZE,
} from "../../ffi/kernel32.ts";
import { wide } from "../../ffi/win32_strings.ts";
import { pipeError, win32Error } from "../errors.ts";
import { globMatcher, isExactName } from "../glob.ts";
import { UNLIMITED_INSTANCES } from "../options.ts";
import type { ListOptions, PipeInfo, WaitOptions } from "../types.ts";
import { DEFAULT_CONNECT_TIMEOUT } from "../options.ts";
import { pollUntilAvailable, type Presence } from "../wait_loop.ts";
import { adopt, closeHandle, isValid } from "./handles.ts";
import { pipePath, refuseRemote } from "./path.ts";

const PIPE_DIRECTORY = "\\\\.\\pipe\\";
/** `FILE_DIRECTORY_INFORMATION` field offsets (x64). */
const ENTRY = { next: 0, endOfFile: 40, allocationSize: 48, nameLength: 60, name: 64 } as const;

/**
 * The pipes on this machine whose names match `options.pattern`, sorted by name.
 * @throws {Deno.errors.NotSupported} when the directory cannot be listed (Wine) and the pattern has
 *   wildcards
 */
export function listPipes(options: ListOptions = {}): Promise<PipeInfo[]> {
  const matches = globMatcher(options.pattern, true);
  let entries: PipeInfo[];
  try {
    entries = readPipeDirectory();
  } catch (error) {
    const pattern = options.pattern;
    if (!(error instanceof Deno.errors.NotSupported) || pattern === undefined || !isExactName(pattern)) {
      return Promise.reject(error);
    }
    const path = pipePath(pattern);
    entries = probe(path) === "missing" ? [] : [{ name: path.slice(PIPE_DIRECTORY.length), path }];
  }
  const found = entries.filter((entry) => matches(entry.name));
  found.sort((a, b) => a.name.localeCompare(b.name));
  return Promise.resolve(found);
}

/** Every entry of `\\.\pipe\`. */
function readPipeDirectory(): PipeInfo[] {
  const k = kernel32();
  const h = k.CreateFileW(
    wide(PIPE_DIRECTORY),
    (FILE_LIST_DIRECTORY | SYNCHRONIZE) >>> 0,
    FILE_SHARE_READ | FILE_SHARE_WRITE,
    null,
    OPEN_EXISTING,
    0, // synchronous: the query returns at once, from the pipe file system's own table
    0n,
  );
  if (!isValid(h)) throw win32Error(k.GetLastError(), "list", PIPE_DIRECTORY);
  const handle = adopt(h);
  const entries: PipeInfo[] = [];
  try {
    const status = new Uint8Array(16); // IO_STATUS_BLOCK
    const buffer = new Uint8Array(64 * 1024);
    const view = new DataView(buffer.buffer);
    for (let restart = 1;; restart = 0) {
      const code = ntdll().NtQueryDirectoryFile(
        handle,
        0n,
        0n,
        0n,
        status,
        buffer,
        buffer.length,
        FILE_DIRECTORY_INFORMATION,
        0,
        null,
        restart,
      );
      if (code === STATUS_NO_MORE_FILES) break;
      if (code === STATUS_BAD_DEVICE_TYPE) {
        throw pipeError(
          Deno.errors.NotSupported,
          "list",
          PIPE_DIRECTORY,
          "this system cannot list the pipe directory (Wine does not); name one pipe exactly to check it",
          code,
        );
      }
      if (code !== STATUS_SUCCESS) {
        throw win32Error(ntdll().RtlNtStatusToDosError(code), "list", PIPE_DIRECTORY);
      }
      for (let at = 0;;) {
        const length = view.getUint32(at + ENTRY.nameLength, true);
        const units = new Uint16Array(buffer.buffer.slice(at + ENTRY.name, at + ENTRY.name + length));
        const name = String.fromCharCode(...units);
        const max = Number(view.getBigInt64(at + ENTRY.allocationSize, true));
        entries.push({
          name,
          path: PIPE_DIRECTORY + name,
          instances: Number(view.getBigInt64(at + ENTRY.endOfFile, true)),
          maxInstances: max < 0 || max > UNLIMITED_INSTANCES ? UNLIMITED_INSTANCES : max,
        });
        const next = view.getUint32(at + ENTRY.next, true);
        if (next === 0) break;
        at += next;
      }
    }
  } finally {
    closeHandle(handle);
  }
  return entries;
}

/** Whether `path` has a free instance, only busy ones, or none; see the module doc. */
function probe(path: string): Presence {
  const k = kernel32();
  if (k.WaitNamedPipeW(wide(path), 1)) return "available";
  const error = k.GetLastError();
  if (error === ERROR_SEM_TIMEOUT) return "busy";
  if (error === ERROR_FILE_NOT_FOUND || error === ERROR_HANDLES_CLOSED) return "missing";
  throw win32Error(error, "wait for", path);
}

/**
 * Resolve once the pipe exists and has a free instance.
 * @throws {Deno.errors.NotFound} when it did not appear within the timeout
 * @throws {Deno.errors.TimedOut} when it existed but every instance stayed busy
 */
export async function waitForPipe(options: WaitOptions): Promise<void> {
  const path = pipePath(options.name);
  refuseRemote(path, "wait for"); // WaitNamedPipeW would wait for the network on the JS thread
  await pollUntilAvailable(
    path,
    options.timeout ?? DEFAULT_CONNECT_TIMEOUT,
    () => probe(path),
    options.signal,
  );
}
