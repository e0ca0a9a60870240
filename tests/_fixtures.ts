/**
 * Child processes for tests that need a second process: `tests/fixtures/<script>` run by the same
 * Deno (under Wine: Windows Deno) with the project's config.
 *
 * @module
 */

/** Run `tests/fixtures/<script>` in a child Deno with the project's config; no stdio (Wine-safe). */
export function spawnFixture(script: string, args: string[]): Deno.ChildProcess {
  const config = new URL("../deno.json", import.meta.url);
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      decodeURIComponent(config.pathname).replace(/^\/([A-Za-z]:)/, "$1"),
      new URL(`./fixtures/${script}`, import.meta.url).href,
      ...args,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}
