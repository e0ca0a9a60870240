/**
 * Is a socket file served? Asked by a listener that found one at its name, with the name's lock
 * held (`name_lock.ts`), so no server of ours can be behind it: it is either stale (left by a
 * crashed server) or served by another program.
 *
 * First without touching the server: `/proc/net/unix` lists every Unix socket of this network
 * namespace with the path it was bound at. A listening one is live, and so is one bound but not yet
 * connected: a server between its `bind` and `listen`, whom a `connect` would find refused, as if
 * its file were stale. Only when the path is not listed (a server in
 * another namespace, or one bound elsewhere and linked into place) does a `connect` decide, and a
 * live server then sees one connection that closes at once.
 *
 * @module
 */
import {
  cString,
  EAGAIN,
  ECONNREFUSED,
  ENOENT,
  EPROTOTYPE,
  errno,
  libc,
  O_CLOEXEC,
  O_RDONLY,
} from "../../ffi/libc.ts";
import { errnoError, type NativeError } from "../errors.ts";
import { closeFd, openSocket, socketAddress } from "./socket.ts";

/** `__SO_ACCEPTCON` in the Flags column: the socket is listening. */
const ACCEPTING = 0x10000;
/** `SS_UNCONNECTED` in the St column: bound and not connected (sockets a listener accepted are not). */
const UNCONNECTED = 1;
const PROC_NET_UNIX = cString("/proc/net/unix");

/** Whether something listens on `path`: `"live"`, `"stale"`, or the error the probe met. */
export function socketState(path: string): "live" | "stale" | NativeError {
  if (listedAsServing(path)) return "live";
  const probe = probeConnect(path);
  if (probe instanceof Error) return probe;
  return probe === ECONNREFUSED || probe === ENOENT ? "stale" : "live";
}

/**
 * Whether `/proc/net/unix` lists a socket bound at `path` that listens or is about to (bound, not
 * connected); false when unreadable.
 */
export function listedAsServing(path: string): boolean {
  const table = readProcNetUnix();
  if (table === null) return false;
  // Num       RefCount Protocol Flags    Type St Inode Path
  // 0000000025746cf8: 00000002 00000000 00010000 0005 01 309659 /tmp/CoreFxPipe_HelloWorld
  for (const line of table.split("\n")) {
    const match = /^[0-9a-fA-F]+: [0-9A-F]+ [0-9A-F]+ ([0-9A-F]+) [0-9A-F]+ ([0-9A-F]+) +\d+ (.*)$/.exec(
      line,
    );
    if (!match || match[3] !== path) continue;
    if ((parseInt(match[1], 16) & ACCEPTING) !== 0 || parseInt(match[2], 16) === UNCONNECTED) return true;
  }
  return false;
}

/** The text of `/proc/net/unix`, read through libc (no `--allow-read` needed), or null. */
function readProcNetUnix(): string | null {
  const c = libc();
  const fd = c.open(PROC_NET_UNIX, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return null;
  try {
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      const n = Number(c.read(fd, buffer, BigInt(buffer.length)));
      if (n < 0) return null;
      if (n === 0) break;
      chunks.push(buffer.slice(0, n));
    }
    const decoder = new TextDecoder();
    return chunks.map((chunk) => decoder.decode(chunk, { stream: true })).join("") + decoder.decode();
  } finally {
    closeFd(fd);
  }
}

/**
 * Try to connect to an existing socket file: `ECONNREFUSED` means stale, 0 (or `EAGAIN`, a full
 * backlog, or `EPROTOTYPE`, a live server of the other mode) means live.
 */
function probeConnect(path: string): number | NativeError {
  const c = libc();
  for (const mode of ["message", "byte"] as const) {
    const fd = openSocket(mode, "listen on", path);
    try {
      const [address, length] = socketAddress(path, "listen on");
      if (c.connect(fd, address, length) === 0) return 0;
      const code = errno();
      if (code === EPROTOTYPE) continue;
      if (code === ECONNREFUSED || code === ENOENT || code === EAGAIN) return code;
      return errnoError(code, "listen on", path);
    } finally {
      closeFd(fd);
    }
  }
  return 0;
}
