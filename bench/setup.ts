/**
 * Everything `deno task bench` needs, installed on demand into `.cache/bench/` (ignored by git):
 * the C load generator and servers built with gcc and mingw, and a Wine prefix of the bench's own.
 * Windows Deno, Wine, mingw and Node.js for Windows come from the test harness (`tests/wine/`).
 *
 * The bench has its own prefix, hence its own wineserver: it pins that server to one CPU and stops
 * it at the end without touching a test suite running in the shared prefix at the same time.
 *
 * @module
 */
import { ensureNodeWin, NODE_WIN_VERSION } from "../tests/wine/node_win.ts";
import {
  exists,
  prepareWindowsDeno,
  stopWineserver,
  type WindowsDeno,
  WINE,
  wineCommand,
} from "../tests/wine/windows_deno.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
/** Built binaries, the Wine prefix, logs. */
export const BENCH_CACHE = `${ROOT}/.cache/bench`;
const WINESERVER = "/usr/lib/wine/wineserver";

/** The Linux side: always there once gcc is. */
export interface LinuxTools {
  load: string;
  seqpacketServer: string;
  /** `node` on the PATH, or null when missing (that peer is then reported as skipped). */
  node: string | null;
}

/** The Windows side under Wine. */
export interface WineTools {
  deno: WindowsDeno;
  /** Environment for every Wine program of the bench (its own prefix). */
  env: Record<string, string>;
  prefix: string;
  loadExe: string;
  pipeServerExe: string;
  pipeIocpServerExe: string;
  nodeExe: string;
}

function log(message: string) {
  console.error(`[bench] ${message}`);
}

async function run(cmd: string, args: string[], env?: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(cmd, { args, env, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-15).join("\n");
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}):\n${err}`);
  }
  return new TextDecoder().decode(out.stdout);
}

async function which(cmd: string): Promise<string | null> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `command -v ${cmd}`],
    stdout: "piped",
    stderr: "null",
  })
    .output();
  return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
}

/** Compile `bench/SOURCE` when the binary is missing or older than its source. */
async function build(compiler: string, source: string, output: string, libs: string[] = []): Promise<string> {
  const src = `${ROOT}/bench/${source}`;
  const out = `${BENCH_CACHE}/${output}`;
  if (exists(out) && Deno.statSync(out).mtime! >= Deno.statSync(src).mtime!) return out;
  log(`building ${output} with ${compiler}`);
  await run(compiler, ["-O2", "-Wall", "-o", out, src, ...libs]);
  return out;
}

async function ensureGcc(): Promise<void> {
  if (await which("gcc")) return;
  if (Deno.uid?.() !== 0 || !await which("apt-get")) {
    throw new Error("gcc is needed to build the load generator: install gcc (sudo apt-get install gcc)");
  }
  log("installing gcc with apt-get");
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await run("apt-get", ["update", "-qq"], env);
  await run("apt-get", ["install", "-y", "-qq", "gcc", "libc6-dev"], env);
}

/** Build the Linux load generator and the C seqpacket server. */
export async function prepareLinux(): Promise<LinuxTools> {
  Deno.mkdirSync(BENCH_CACHE, { recursive: true });
  await ensureGcc();
  return {
    load: await build("gcc", "load.c", "load", ["-lpthread"]),
    seqpacketServer: await build("gcc", "seqpacket_server.c", "seqpacket_server"),
    node: await which("node"),
  };
}

/**
 * Windows Deno (from the test harness), the mingw-built client and server, Node.js for Windows and
 * the bench's Wine prefix with a persistent wineserver.
 * @throws {WineUnavailable} when Wine cannot be had here
 */
export async function prepareWine(): Promise<WineTools> {
  const deno = await prepareWindowsDeno();
  // That left the test suite's prefix a persistent wineserver the bench never uses: stop it, or it
  // outlives the run.
  await stopWineserver(deno);
  const mingw = "x86_64-w64-mingw32-gcc";
  const loadExe = await build(mingw, "load.c", "load.exe");
  const pipeServerExe = await build(mingw, "pipe_server.c", "pipe_server.exe");
  const pipeIocpServerExe = await build(mingw, "pipe_iocp_server.c", "pipe_iocp_server.exe");
  const nodeExe = await ensureNodeWin(log); // shared with the interop tests, in .cache/wine/
  const prefix = `${BENCH_CACHE}/prefix`;
  const env = { ...deno.env, WINEPREFIX: prefix };
  const fresh = !exists(`${prefix}/system.reg`);
  if (fresh) log("creating the bench's Wine prefix (about 10 s, once)");
  // We hold the bench lock: whatever still runs in the prefix was left by an interrupted run.
  await new Deno.Command(WINESERVER, { args: ["-k"], env, stdout: "null", stderr: "null" }).output();
  await startWineserver(env);
  if (fresh) {
    // Node.js for Windows refuses to start unless the prefix reports Windows 10.
    await wineCommand(
      { ...deno, prefix, env },
      ["winecfg", "-v", "win10"],
      `${BENCH_CACHE}/winecfg.log`,
      WINE,
    );
  }
  return { deno, env, prefix, loadExe, pipeServerExe, pipeIocpServerExe, nodeExe };
}

/** A persistent wineserver, its output in a file: it would hold a pipe of ours open. */
export async function startWineserver(env: Record<string, string>): Promise<void> {
  await run("sh", ["-c", `${WINESERVER} -p >>"${BENCH_CACHE}/wineserver.log" 2>&1 </dev/null || true`], env);
}

/** Stop the bench prefix's wineserver and every Wine process in it. */
export async function stopWine(tools: WineTools): Promise<void> {
  await new Deno.Command(WINESERVER, { args: ["-k"], env: tools.env, stdout: "null", stderr: "null" })
    .output();
}

/** Versions and hardware for the report. */
export async function describeMachine(wine: WineTools | null, linux: LinuxTools | null): Promise<string[]> {
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown";
  const version = async (cmd: string, args: string[]) => {
    try {
      return (await run(cmd, args)).trim().split("\n")[0];
    } catch {
      return "not available";
    }
  };
  return [
    `CPU: ${cpu}, ${navigator.hardwareConcurrency} logical CPUs`,
    `Kernel: Linux ${Deno.osRelease()}`,
    `Deno: ${Deno.version.deno} (Linux and, under Wine, Windows)`,
    `Node.js: ${linux?.node ? await version(linux.node, ["--version"]) : "not found"} (Linux), ` +
    `${wine ? `v${NODE_WIN_VERSION}` : "not used"} (Windows, under Wine)`,
    `Wine: ${wine ? await version(WINE, ["--version"]) : "not used"}`,
    `C: ${await version("gcc", ["--version"])}; ${
      wine ? await version("x86_64-w64-mingw32-gcc", ["--version"]) : "mingw not used"
    }`,
  ];
}
