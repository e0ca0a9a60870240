/**
 * A second user for Linux tests run as root: `nobody` (uid and gid 65534), and what it leaves behind.
 *
 * @module
 */

/**
 * `command args…` as `nobody`. `setpriv` changes the ids and execs the command in place, so the
 * child's pid is the command's own and killing it ends the command (`runuser` forks, and killing
 * it would orphan a server still listening).
 */
export function asNobody(command: string, args: string[], options: Deno.CommandOptions = {}): Deno.Command {
  return new Deno.Command("setpriv", {
    ...options,
    args: ["--reuid=65534", "--regid=65534", "--clear-groups", "--", command, ...args],
  });
}

/** `__SO_ACCEPTCON` in /proc/net/unix's Flags column: the socket listens. */
const LISTENING = 0x10000;

/** Whether some process still listens on the Unix socket `path`, as the kernel lists it. */
export function listensAt(path: string): boolean {
  // Num RefCount Protocol Flags Type St Inode Path
  return Deno.readTextFileSync("/proc/net/unix").split("\n").some((line) => {
    const fields = line.trim().split(/\s+/);
    return fields[7] === path && (parseInt(fields[3], 16) & LISTENING) !== 0;
  });
}
