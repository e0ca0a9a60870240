/**
 * The `authorize` hook of `listen()`: a connection reaches `accept()` only once its peer is
 * admitted. A refused client is closed without a byte of reply (it reads end of stream) and logged.
 * Shared by both backends; each calls {@linkcode admit} on a fresh server-side connection.
 *
 * @module
 */
import { logger } from "./log.ts";
import type { Authorize, PipeConn } from "./types.ts";

const log = logger("access");

/**
 * Run `authorize` on `conn`'s peer: true to hand the connection on; false when it was refused (the
 * connection is then closed). A peer whose identity is unknown is refused without asking, and so
 * is one for which `authorize` throws or rejects.
 */
export async function admit(conn: PipeConn, authorize: Authorize): Promise<boolean> {
  const peer = conn.peer;
  let reason = "not authorized";
  if (!peer) {
    reason = "its identity could not be read";
  } else {
    try {
      if (await authorize(peer) === true) return true;
    } catch (error) {
      reason = `authorize failed: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
  log.warn("Refused a client of {path}: pid {pid}, user {user} ({reason})", {
    path: conn.path,
    pid: peer?.pid ?? conn.peerPid,
    user: peer?.user.name ?? "unknown",
    reason,
  });
  await conn.close().catch(() => {});
  return false;
}
