/**
 * Windows Deno under Wine: finds or installs Wine, fetches `@deno/win32-x64` at the host Deno's
 * version from npm, builds the ProcessPrng shim and patches its own copy of deno.exe, as
 * `../shared/wine.md` describes. Everything lives in `.cache/wine/` (ignored by git) and is reused.
 *
 * @module
 */
import { ensureNodeWin } from "./node_win.ts";

const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
/** Where the Windows runtime, the Wine prefix and Windows Deno's own cache live. */
export const CACHE = `${ROOT}/.cache/wine`;
export const WINE = "/usr/lib/wine/wine64";
const WINESERVER = "/usr/lib/wine/wineserver";
const APT_PACKAGES = ["wine", "wine64", "gcc-mingw-w64-x86-64"];
const MINGW = "x86_64-w64-mingw32-gcc";

/** Why the Windows suite cannot run here, or null when it can. */
export class WineUnavailable extends Error {}

/** A prepared Windows Deno: run it with {@linkcode wineCommand}. */
export interface WindowsDeno {
  exe: string;
  prefix: string;
  env: Record<string, string>;
}

function log(message: string) {
  console.error(`[wine] ${message}`);
}

async function run(cmd: string, args: string[], env?: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(cmd, { args, env, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-15).join("\n");
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}):\n${err}`);
  }
  return text;
}

/** Whether `path` exists (any kind of file). */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function onPath(cmd: string): Promise<boolean> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `command -v ${cmd}`],
    stdout: "null",
    stderr: "null",
  })
    .output();
  return out.success;
}

/** Install Wine and mingw with apt when missing (root only); otherwise say what to install. */
async function ensureWine(): Promise<void> {
  if (exists(WINE) && await onPath(MINGW)) return;
  const isRoot = Deno.uid?.() === 0;
  if (!isRoot || !await onPath("apt-get")) {
    throw new WineUnavailable(
      `Wine 8 and mingw are needed for the Windows suite: install ${APT_PACKAGES.join(" ")} ` +
        `(for example: sudo apt-get install ${APT_PACKAGES.join(" ")})`,
    );
  }
  log(`installing ${APT_PACKAGES.join(" ")} with apt-get (about a minute)`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await run("apt-get", ["update", "-qq"], env);
  await run("apt-get", ["install", "-y", "-qq", ...APT_PACKAGES], env);
}

/** Overwrite the one `VirtualAlloc2\0` so V8 falls back to plain VirtualAlloc (Wine 8 rejects placeholders). */
export function patchVirtualAlloc2(bytes: Uint8Array): Uint8Array {
  const needle = new TextEncoder().encode("VirtualAlloc2\0");
  const hits: number[] = [];
  outer: for (let i = bytes.indexOf(needle[0]); i !== -1; i = bytes.indexOf(needle[0], i + 1)) {
    for (let j = 1; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    hits.push(i);
  }
  if (hits.length !== 1) {
    throw new Error(`Cannot patch deno.exe: "VirtualAlloc2" occurs ${hits.length} times, expected exactly 1`);
  }
  const patched = bytes.slice();
  patched[hits[0] + "VirtualAlloc".length] = "Z".charCodeAt(0);
  return patched;
}

/** Fetch, shim and patch deno.exe for this Deno version, once. */
async function ensureDenoExe(version: string): Promise<string> {
  const dir = `${CACHE}/deno-${version}`;
  const exe = `${dir}/deno.exe`;
  if (exists(exe) && exists(`${dir}/bcryptprimitives.dll`)) return exe;
  Deno.mkdirSync(dir, { recursive: true });
  log(`fetching @deno/win32-x64@${version} from npm`);
  const packed = await run("npm", [
    "pack",
    `@deno/win32-x64@${version}`,
    "--silent",
    "--pack-destination",
    dir,
  ]);
  const tgz = packed.trim().split("\n").pop()!;
  await run("tar", ["-xzf", `${dir}/${tgz}`, "-C", dir]);
  const original = Deno.readFileSync(`${dir}/package/deno.exe`);
  log("building the ProcessPrng shim with mingw");
  await run(MINGW, [
    "-shared",
    "-O2",
    "-o",
    `${dir}/bcryptprimitives.dll`,
    `${ROOT}/tests/wine/prng_shim.c`,
    "-ladvapi32",
  ]);
  Deno.writeFileSync(`${exe}.tmp`, patchVirtualAlloc2(original));
  Deno.renameSync(`${exe}.tmp`, exe);
  Deno.removeSync(`${dir}/package`, { recursive: true });
  Deno.removeSync(`${dir}/${tgz}`);
  return exe;
}

/** A Linux path as Windows programs under Wine see it. */
export function winePath(path: string): string {
  return `Z:${path.replaceAll("/", "\\")}`;
}

/**
 * Make sure Wine, the Wine prefix and a patched Windows Deno of the host's version are ready.
 * @throws {WineUnavailable} when Wine cannot be had on this machine
 */
export async function prepareWindowsDeno(): Promise<WindowsDeno> {
  if (Deno.build.os !== "linux") throw new WineUnavailable("the Wine suite runs on Linux hosts only");
  await ensureWine();
  const exe = await ensureDenoExe(Deno.version.deno);
  await ensureNodeWin(log); // the interop tests' real peer
  const prefix = `${CACHE}/prefix`;
  const env = {
    WINEPREFIX: prefix,
    WINEDEBUG: "-all",
    WINEDLLOVERRIDES: "mscoree,mshtml=",
    DENO_DIR: winePath(`${CACHE}/deno_dir`),
    NO_COLOR: "1",
  };
  const fresh = !exists(`${prefix}/system.reg`);
  if (fresh) log("creating the Wine prefix (about 10 s, once)");
  // A persistent wineserver keeps later starts fast; its output goes to a file, never to our pipes.
  await startWineserver(env);
  if (fresh) {
    // Node.js for Windows refuses to start unless the prefix reports Windows 10.
    await wineCommand({ exe, prefix, env }, ["winecfg", "-v", "win10"], `${CACHE}/winecfg.log`, WINE);
  }
  return { exe, prefix, env };
}

async function startWineserver(env: Record<string, string>) {
  Deno.mkdirSync(CACHE, { recursive: true });
  // Through sh so the server's stdio is a log file, never our own pipes (wine.md pitfall).
  await run("sh", ["-c", `${WINESERVER} -p >>"${CACHE}/wineserver.log" 2>&1 </dev/null || true`], env);
}

/** Stop the persistent wineserver of the prefix and wait until it is gone. */
export async function stopWineserver({ env }: Pick<WindowsDeno, "env">): Promise<void> {
  await new Deno.Command(WINESERVER, { args: ["-k"], env, stdout: "null", stderr: "null" }).output();
  // -k returns once the signal is sent: wait until the server is gone, so a new one starts clean.
  await new Deno.Command("sh", {
    args: ["-c", `timeout 10 ${WINESERVER} -w`],
    env,
    stdout: "null",
    stderr: "null",
  }).output();
}

/** A fresh wineserver for the prefix: nothing left over from earlier runs in it. */
export async function restartWineserver(deno: WindowsDeno): Promise<void> {
  await stopWineserver(deno);
  await startWineserver(deno.env);
}

/** Exit code {@linkcode wineCommand} returns when it had to kill a run that outlived its time. */
export const TIMED_OUT = 124;

/**
 * Run a program under Wine with its output in `logFile` (a pipe could be held open by wineserver).
 * Returns the exit code, or {@linkcode TIMED_OUT} after killing a run longer than `timeoutMs` (null:
 * no limit), so a hang fails the suite instead of stalling CI; the caller reads the log.
 */
export async function wineCommand(
  deno: WindowsDeno,
  args: string[],
  logFile: string,
  program = WINE,
  onOutput?: (text: string) => void,
  timeoutMs: number | null = 20 * 60_000,
): Promise<number> {
  // Shell redirection gives Wine a file descriptor that is a file; we follow it while it grows.
  const quoted = [program, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
  const proc = new Deno.Command("sh", {
    args: ["-c", `exec ${quoted} >"${logFile}" 2>&1 </dev/null`],
    env: deno.env,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let offset = 0;
  const follow = () => {
    if (!onOutput) return;
    const bytes = Deno.readFileSync(logFile);
    if (bytes.length > offset) {
      onOutput(new TextDecoder().decode(bytes.subarray(offset)));
      offset = bytes.length;
    }
  };
  const timer = setInterval(follow, 500);
  let timedOut = false;
  const deadline = timeoutMs === null ? undefined : setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  const status = await proc.status;
  clearTimeout(deadline);
  clearInterval(timer);
  follow();
  if (timedOut) {
    // The Windows processes it started live on in wineserver: end them all.
    await stopWineserver(deno);
    return TIMED_OUT;
  }
  return status.code;
}
