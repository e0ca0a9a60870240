/**
 * The private directory a listening socket is bound in before it is linked to its name: made with
 * `mkdtemp` (mode 0700) beside the name, so the socket is never reachable by others before its mode
 * is set, and removed right after the link.
 *
 * - A name may be up to 107 bytes (`sun_path`), but the private path is 13 bytes longer
 *   (`/.np-XXXXXX/s`). When it does not fit, the socket is bound through `/proc/self/fd/N/s`, N being
 *   a descriptor on the private directory.
 * - A process killed between `mkdtemp` and the removal leaves its `.np-XXXXXX` directory behind.
 *   Each listener removes such directories of its own user that are older than a minute (the window
 *   lasts microseconds; the margin is for a process stopped inside it).
 *
 * @module
 */
import {
  cString,
  DIRENT_NAME_OFFSET,
  ENOENT,
  errno,
  libc,
  O_CLOEXEC,
  O_PATH,
  S_IFDIR,
  S_IFMT,
} from "../../ffi/libc.ts";
import { errnoError } from "../errors.ts";
import { directoryOf, missingDirectoryError } from "./path.ts";
import { closeFd, MAX_PATH_BYTES, statPath } from "./socket.ts";

/** Leftover private directories older than this are removed. */
const STALE_AFTER_SECONDS = 60;
/** `mkdtemp`'s six random characters after our prefix. */
const PRIVATE_NAME = /^\.np-[A-Za-z0-9]{6}$/;

/** A private directory with the path to bind the socket at. */
export interface PrivateDirectory {
  /** The directory's real path. */
  directory: string;
  /** The socket's real path inside it (for `chmod`, `link`, `unlink`). */
  socketPath: string;
  /** What `bind` gets: `socketPath`, or `/proc/self/fd/N/s` when that is too long. */
  bindPath: string;
  /** The descriptor behind `bindPath`, or -1. */
  fd: number;
}

/**
 * Create the private directory beside `path`.
 * @throws {Deno.errors.NotFound} when the directory of `path` does not exist
 */
export function makePrivateDirectory(path: string): PrivateDirectory {
  const c = libc();
  const directory = directoryOf(path);
  const template = cString(`${directory}/.np-XXXXXX`);
  if (c.mkdtemp(template) === null) {
    const code = errno();
    if (code === ENOENT) throw missingDirectoryError(path, code);
    throw errnoError(code, "create a private directory for", path);
  }
  const privateDirectory = new TextDecoder().decode(template.subarray(0, template.length - 1));
  const socketPath = `${privateDirectory}/s`;
  if (new TextEncoder().encode(socketPath).length <= MAX_PATH_BYTES) {
    return { directory: privateDirectory, socketPath, bindPath: socketPath, fd: -1 };
  }
  const fd = c.open(cString(privateDirectory), O_PATH | O_CLOEXEC, 0);
  if (fd < 0) {
    const code = errno();
    c.rmdir(cString(privateDirectory));
    throw errnoError(code, "create a private directory for", path);
  }
  return { directory: privateDirectory, socketPath, bindPath: `/proc/self/fd/${fd}/s`, fd };
}

/** Remove the socket's private name and its directory (the socket keeps its public link). */
export function removePrivateDirectory(place: PrivateDirectory): void {
  const c = libc();
  c.unlink(cString(place.socketPath));
  c.rmdir(cString(place.directory));
  if (place.fd >= 0) closeFd(place.fd);
}

/** Remove `.np-XXXXXX` directories beside `path` that a killed process of this user left; never throws. */
export function removeStalePrivateDirectories(path: string): void {
  const c = libc();
  const directory = directoryOf(path);
  const dir = c.opendir(cString(directory));
  if (dir === null) return;
  const stale: string[] = [];
  try {
    const uid = c.geteuid();
    const now = Date.now() / 1000;
    for (let entry = c.readdir(dir); entry !== null; entry = c.readdir(dir)) {
      const name = Deno.UnsafePointerView.getCString(entry, DIRENT_NAME_OFFSET);
      if (!PRIVATE_NAME.test(name)) continue;
      const status = statPath(cString(`${directory}/${name}`));
      if (typeof status === "number" || (status.mode & S_IFMT) !== S_IFDIR) continue;
      if (status.uid === uid && now - status.mtime > STALE_AFTER_SECONDS) stale.push(`${directory}/${name}`);
    }
  } finally {
    c.closedir(dir);
  }
  for (const leftover of stale) {
    // Only our own socket can be inside; anything else makes rmdir fail and the directory stays.
    c.unlink(cString(`${leftover}/s`));
    c.rmdir(cString(leftover));
  }
}
