/**
 * Who may reach a Unix socket: the `security` option as a file mode and group.
 *
 * - `"user"` (default): 0600. `"everyone"`: 0666.
 * - A preset `{ allow, deny }`: `"user"` (or this user's name or uid) sets the owner's `rw`;
 *   `"everyone"` and `"authenticated-users"` give `0666`; one group (by name or gid) becomes the
 *   socket's group with `rw`; `"system"` and `"administrators"` are root, who needs no bits. A mode
 *   cannot say the rest — another single user, two groups, a SID, a deny entry — so it is refused
 *   with `Deno.errors.NotSupported` rather than approximated (deny `"network"` is accepted: Unix
 *   sockets are local anyway).
 *
 * @module
 */
import { pipeError } from "../errors.ts";
import type { PipeSecurity } from "../types.ts";
import { effectiveUid, lookupGroup, lookupUser } from "./identity.ts";

/** The socket file's mode, and its group when one is named. */
export interface SocketAccess {
  fileMode: number;
  gid?: number;
}

const ROOT_NAMES = new Set(["system", "administrators"]);
const ALL_NAMES = new Set(["everyone", "authenticated-users"]);

/**
 * Map `security` to a mode and group.
 * @throws {TypeError} for an SDDL descriptor (Windows-only) or a malformed value
 * @throws {Deno.errors.NotSupported} for a preset a mode cannot express
 * @throws {Deno.errors.NotFound} for a name that is neither a user nor a group
 */
export function socketAccess(security: PipeSecurity | undefined, path: string): SocketAccess {
  if (security === undefined || security === "user") return { fileMode: 0o600 };
  if (security === "everyone") return { fileMode: 0o666 };
  if (typeof security !== "object" || security === null) {
    throw pipeError(TypeError, "listen on", path, `unknown security "${String(security)}"`);
  }
  if ("sddl" in security) {
    throw pipeError(
      TypeError,
      "listen on",
      path,
      'SDDL is Windows-only; use "user", "everyone" or { allow: [...] }',
    );
  }
  if (!Array.isArray(security.allow)) {
    throw pipeError(TypeError, "listen on", path, "security.allow must be an array of names");
  }
  const unsupported = (why: string) => pipeError(Deno.errors.NotSupported, "listen on", path, why);
  for (const entry of security.deny ?? []) {
    if (entry !== "network") {
      throw unsupported(`a socket's mode cannot deny "${entry}" (only "network", which is always denied)`);
    }
  }
  let mode = 0;
  let gid: number | undefined;
  for (const entry of security.allow) {
    if (typeof entry !== "string" || entry === "") {
      throw pipeError(TypeError, "listen on", path, "security entries must be non-empty strings");
    }
    const name = entry.toLowerCase();
    if (name === "user") mode |= 0o600;
    else if (ROOT_NAMES.has(name)) continue;
    else if (ALL_NAMES.has(name)) mode |= 0o666;
    else if (/^S-1-/i.test(entry) || entry.includes("\\")) {
      throw unsupported(`"${entry}" is a Windows account; name a user or group of this system`);
    } else {
      const group = tryGroup(entry);
      const user = group ? undefined : lookupUser(entry, "resolve the account");
      if (user && user.uid === effectiveUid()) mode |= 0o600;
      else if (user) {
        throw unsupported(
          `a socket's mode can let in its owner, one group or everyone, not the user "${entry}" alone; ` +
            "use a group, or everyone with an authorize check",
        );
      } else if (gid !== undefined && gid !== group!.gid) {
        throw unsupported("a socket has one group: name at most one group");
      } else {
        gid = group!.gid;
        mode |= 0o060;
      }
    }
  }
  return { fileMode: mode, gid };
}

function tryGroup(name: string): { gid: number } | undefined {
  try {
    return lookupGroup(name, "resolve the group");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}
