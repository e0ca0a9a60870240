/**
 * The lock beside a socket name: `.NAME.lock`, held with `flock` for a listener's whole life.
 *
 * A listener takes it before it looks at the name, so two servers starting together on a stale
 * socket cannot both replace it (one of them would end up listening on an unnamed inode), and a
 * second server of ours learns that the name is live without connecting to it (a probe connection
 * would be accepted as a real client). The lock dies with its process, so a crashed server's lock is
 * free at once; its file is left behind and reused.
 *
 * The file is opened without following links, without blocking (a FIFO planted there cannot hang
 * us) and without `O_CREAT` when it exists (so a sticky `/tmp` with `protected_regular` lets us
 * open another user's file, whose lock then says "in use"). After locking, the descriptor must
 * still be the file at the name: a closing server unlinks it while holding the lock.
 *
 * @module
 */
import {
  cString,
  EEXIST,
  ENOENT,
  errno,
  EWOULDBLOCK,
  libc,
  LOCK_EX,
  LOCK_NB,
  O_CLOEXEC,
  O_CREAT,
  O_EXCL,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_RDONLY,
  S_IFMT,
  S_IFREG,
} from "../../ffi/libc.ts";
import { errnoError, pipeError } from "../errors.ts";
import { closeFd, statPath } from "./socket.ts";
import { missingDirectoryError } from "./path.ts";

/** Attempts before giving up on a lock file that keeps being replaced under us. */
const ATTEMPTS = 8;
/** `EADDRINUSE`, the code a name held by a live server is reported with. */
export const EADDRINUSE = 98;

/**
 * The lock file's name for the socket at `path`: `.NAME.lock` beside it. Hidden, and never a name
 * `pipePath()` gives (those start with `CoreFxPipe_`), so no pipe's socket can be another's lock.
 */
export function lockPath(path: string): string {
  const slash = path.lastIndexOf("/");
  return `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.lock`;
}

/**
 * Take the lock of the name `path`, or fail because a live server of ours holds it.
 * @returns the locked descriptor, to keep until the listener closes ({@linkcode unlockName})
 * @throws {Deno.errors.AddrInUse} when another listener holds the lock
 */
export function lockName(path: string): number {
  const c = libc();
  const name = cString(lockPath(path));
  const flags = O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    let fd = c.open(name, flags, 0);
    if (fd < 0 && errno() === ENOENT) {
      fd = c.open(name, flags | O_CREAT | O_EXCL, 0o644);
      if (fd < 0 && errno() === EEXIST) continue; // created meanwhile: open that one
    }
    if (fd < 0) {
      const code = errno();
      if (code === ENOENT) throw missingDirectoryError(path, code);
      throw errnoError(code, "listen on", path);
    }
    try {
      const opened = statPath(fd);
      if (typeof opened === "number") throw errnoError(opened, "lock the name of", path);
      if ((opened.mode & S_IFMT) !== S_IFREG) {
        throw pipeError(
          Deno.errors.AddrInUse,
          "listen on",
          path,
          `"${lockPath(path)}" is not a lock file`,
          EADDRINUSE,
        );
      }
      if (c.flock(fd, LOCK_EX | LOCK_NB) < 0) {
        const code = errno();
        if (code === EWOULDBLOCK) {
          throw pipeError(
            Deno.errors.AddrInUse,
            "listen on",
            path,
            "name already in use by a live server",
            EADDRINUSE,
          );
        }
        throw errnoError(code, "lock the name of", path);
      }
      // Still the file at the name? A server closing just now may have unlinked it.
      const current = statPath(name);
      if (typeof current !== "number" && current.ino === opened.ino) return fd;
    } catch (error) {
      closeFd(fd);
      throw error;
    }
    closeFd(fd);
  }
  throw pipeError(Deno.errors.AddrInUse, "listen on", path, "its lock file kept being replaced", EADDRINUSE);
}

/** Remove the lock file (while still holding it, so nobody locks a file about to vanish) and release it. */
export function unlockName(path: string, fd: number): void {
  const name = cString(lockPath(path));
  const current = statPath(name);
  const held = statPath(fd);
  if (typeof current !== "number" && typeof held !== "number" && current.ino === held.ino) {
    libc().unlink(name);
  }
  closeFd(fd);
}
