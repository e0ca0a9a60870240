/**
 * Pipe name → Win32 pipe path: `HelloWorld` → `\\.\pipe\HelloWorld`, with a server
 * `\\SERVER\pipe\HelloWorld`; a full `\\.\pipe\X` (or `\\SERVER\pipe\X`) path is used as is.
 *
 * @module
 */

/**
 * The full pipe path for `name`.
 * @param name a bare name or a full `\\SERVER\pipe\NAME` path
 * @param server the machine, `"."` for this one
 * @throws {TypeError} for an empty name or a path that is not a pipe path
 */
export function pipePath(name: string, server = "."): string {
  if (typeof name !== "string" || name === "") {
    throw new TypeError(`Cannot use pipe "${name}": invalid pipe name (empty)`);
  }
  if (name.startsWith("\\\\")) {
    if (!/^\\\\[^\\]+\\pipe\\.+$/i.test(name)) {
      throw new TypeError(`Cannot use pipe "${name}": invalid pipe name (expected \\\\SERVER\\pipe\\NAME)`);
    }
    return name;
  }
  if (name.includes("\0")) throw new TypeError(`Cannot use pipe "${name}": invalid pipe name (NUL)`);
  if (server === "" || server.includes("\\")) {
    throw new TypeError(`Cannot use pipe "${name}" on server "${server}": invalid server name`);
  }
  return `\\\\${server}\\pipe\\${name}`;
}
