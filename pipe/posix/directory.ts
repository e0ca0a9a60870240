/**
 * The pipes that exist, and waiting for one, on Linux, without ever connecting (a connection would
 * be accepted by the server, which would see a client come and go).
 *
 * A pipe here is a listening Unix socket. Which sockets listen comes from the kernel's `sock_diag`
 * netlink interface (what `ss -xl` reads): for every listening Unix socket it reports the inode and
 * device of its socket file, its type, and its backlog (clients waiting, and the most that may). A
 * socket file is matched to it by inode and device, not by the path it was bound at: ours are bound
 * in a private directory and then linked into place, so `/proc/net/unix` shows another path.
 *
 * - List: the `CoreFxPipe_*` sockets in the temp directory (the names `pipePath()` gives, so .NET
 *   servers show up too), plus the socket paths the caller names; a socket file nobody listens on
 *   (left by a crashed server) is not listed. Each with its mode (byte or message), owner and
 *   permission bits, and its backlog as `instances` (waiting) of `maxInstances`.
 * - Wait: the socket file exists, a socket listens on it, and its backlog is not full.
 *
 * Reading socket files takes `--allow-read`.
 *
 * @module
 */
import {
  AF_NETLINK,
  AF_UNIX,
  errno,
  libc,
  NETLINK_SOCK_DIAG,
  SOCK_CLOEXEC,
  SOCK_RAW,
} from "../../ffi/libc.ts";
import { errnoError } from "../errors.ts";
import { globMatcher } from "../glob.ts";
import { DEFAULT_CONNECT_TIMEOUT } from "../options.ts";
import type { ListOptions, PipeInfo, PipeMode, WaitOptions } from "../types.ts";
import { pollUntilAvailable, type Presence } from "../wait_loop.ts";
import { DOTNET_PREFIX, pipePath } from "./path.ts";

/** A listening socket as `sock_diag` reports it. */
interface Listening {
  mode: PipeMode | undefined;
  /** Clients in the backlog now, and its size. */
  waiting: number;
  backlog: number;
}

// <linux/netlink.h>, <linux/sock_diag.h>, <linux/unix_diag.h>
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const TCP_LISTEN = 10;
const UDIAG_SHOW_VFS = 0x2;
const UDIAG_SHOW_RQLEN = 0x10;
const UNIX_DIAG_VFS = 1;
const UNIX_DIAG_RQLEN = 4;
const NLMSG_HEADER = 16;
const UNIX_DIAG_MSG = 16;

/**
 * Every listening Unix socket that has a file, keyed by `device:inode` of that file.
 * @throws {Error} when the kernel refuses the query (a kernel without `CONFIG_UNIX_DIAG`)
 */
function listeningSockets(): Map<string, Listening> {
  const c = libc();
  const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) throw errnoError(errno(), "query", "sock_diag");
  const found = new Map<string, Listening>();
  try {
    const request = new DataView(new ArrayBuffer(NLMSG_HEADER + 24));
    request.setUint32(0, request.byteLength, true); // nlmsg_len
    request.setUint16(4, SOCK_DIAG_BY_FAMILY, true); // nlmsg_type
    request.setUint16(6, NLM_F_REQUEST | NLM_F_DUMP, true); // nlmsg_flags
    request.setUint8(16, AF_UNIX); // sdiag_family
    request.setUint32(20, 1 << TCP_LISTEN, true); // udiag_states
    request.setUint32(28, UDIAG_SHOW_VFS | UDIAG_SHOW_RQLEN, true); // udiag_show
    const bytes = new Uint8Array(request.buffer);
    if (Number(c.send(fd, bytes, BigInt(bytes.length), 0)) < 0) {
      throw errnoError(errno(), "query", "sock_diag");
    }
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      const n = Number(c.recv(fd, buffer, BigInt(buffer.length), 0));
      if (n < 0) throw errnoError(errno(), "query", "sock_diag");
      const view = new DataView(buffer.buffer, 0, n);
      for (let at = 0; at + NLMSG_HEADER <= n;) {
        const length = view.getUint32(at, true);
        const type = view.getUint16(at + 4, true);
        if (type === NLMSG_DONE) return found;
        if (type === NLMSG_ERROR) {
          throw errnoError(-view.getInt32(at + NLMSG_HEADER, true), "query", "sock_diag");
        }
        readEntry(view, at + NLMSG_HEADER, at + length, found);
        if (length < NLMSG_HEADER) return found; // malformed: stop rather than loop
        at += (length + 3) & ~3;
      }
    }
  } finally {
    c.close(fd);
  }
}

/** One `unix_diag_msg` and its attributes. */
function readEntry(view: DataView, from: number, to: number, into: Map<string, Listening>): void {
  const type = view.getUint8(from + 1); // udiag_type
  let key: string | undefined;
  let waiting = 0, backlog = 0;
  for (let at = from + UNIX_DIAG_MSG; at + 4 <= to;) {
    const length = view.getUint16(at, true);
    const attribute = view.getUint16(at + 2, true);
    if (attribute === UNIX_DIAG_VFS) {
      const ino = view.getUint32(at + 4, true);
      key = `${userDevice(view.getUint32(at + 8, true))}:${ino}`;
    } else if (attribute === UNIX_DIAG_RQLEN) {
      waiting = view.getUint32(at + 4, true);
      backlog = view.getUint32(at + 8, true);
    }
    if (length < 4) break;
    at += (length + 3) & ~3;
  }
  const mode = type === 1 ? "byte" : type === 5 ? "message" : undefined;
  if (key) into.set(key, { mode, waiting, backlog });
}

/** The kernel's internal `dev_t` (major << 20 | minor) as `stat()` encodes it for user space. */
function userDevice(dev: number): number {
  const major = dev >>> 20, minor = dev & 0xfffff;
  return (minor & 0xff) + major * 256 + (minor & ~0xff) * 4096;
}

/** The socket file at `path` and what listens on it, or undefined when nothing does. */
function lookUp(
  path: string,
  listening: Map<string, Listening>,
): (Listening & { stat: Deno.FileInfo }) | undefined {
  let stat: Deno.FileInfo;
  try {
    stat = Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) return undefined;
    throw error;
  }
  if (!stat.isSocket) return undefined;
  const socket = listening.get(`${stat.dev}:${stat.ino}`);
  return socket && { ...socket, stat };
}

/** uid → user name, from `/etc/passwd` when it is readable. */
function userNames(): Map<number, string> {
  const names = new Map<number, string>();
  try {
    for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
      const [name, , uid] = line.split(":");
      if (name && uid) names.set(Number(uid), name);
    }
  } catch {
    // No passwd file (a container, a sandbox): uids only.
  }
  return names;
}

/** The temp directory `pipePath()` puts bare names in. */
function pipeDirectory(): string {
  const sample = pipePath("x");
  return sample.slice(0, sample.lastIndexOf("/"));
}

/**
 * The listening `CoreFxPipe_*` sockets whose names match `options.pattern`, then the listening
 * sockets among `options.paths`, each sorted by name.
 */
export function listPipes(options: ListOptions = {}): Promise<PipeInfo[]> {
  const matches = globMatcher(options.pattern, false);
  const listening = listeningSockets();
  const names = userNames();
  const info = (name: string, path: string): PipeInfo | undefined => {
    const socket = lookUp(path, listening);
    if (!socket) return undefined;
    const uid = socket.stat.uid ?? undefined;
    return {
      name,
      path,
      instances: socket.waiting,
      maxInstances: socket.backlog,
      ...(socket.mode && { mode: socket.mode }),
      ...(uid !== undefined && { uid }),
      ...(uid !== undefined && names.has(uid) && { owner: names.get(uid) }),
      ...(socket.stat.mode !== null && { fileMode: socket.stat.mode & 0o7777 }),
    };
  };
  const directory = pipeDirectory();
  const found: PipeInfo[] = [];
  try {
    for (const entry of Deno.readDirSync(directory)) {
      if (!entry.name.startsWith(DOTNET_PREFIX)) continue;
      const name = entry.name.slice(DOTNET_PREFIX.length);
      if (!matches(name)) continue;
      const pipe = info(name, `${directory}/${entry.name}`);
      if (pipe) found.push(pipe);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  found.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const named = (options.paths ?? []).map((path) => info(path, path)).filter((p) => p !== undefined);
  return Promise.resolve([...found, ...named]);
}

/** Whether the socket at `path` listens with room in its backlog; see the module doc. */
function probe(path: string): Presence {
  const socket = lookUp(path, listeningSockets());
  if (!socket) return "missing";
  return socket.backlog > 0 && socket.waiting >= socket.backlog ? "busy" : "available";
}

/**
 * Resolve once a server listens on the pipe's socket with room in its backlog.
 * @throws {Deno.errors.NotFound} when none did within the timeout
 * @throws {Deno.errors.TimedOut} when one listened but its backlog stayed full
 */
export async function waitForPipe(options: WaitOptions): Promise<void> {
  const path = pipePath(options.name);
  await pollUntilAvailable(
    path,
    options.timeout ?? DEFAULT_CONNECT_TIMEOUT,
    () => probe(path),
    options.signal,
  );
}
