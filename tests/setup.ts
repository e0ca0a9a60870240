/**
 * What the test suite needs on a Linux host beyond Deno, and its installation: `deno task test`
 * calls {@linkcode ensureHostTools} first, so that on a fresh machine with only Node.js/npm the
 * README's command sets up everything itself. As root (with apt-get) it installs what is missing;
 * otherwise it says exactly what to install and the run fails. No test skips for a missing tool.
 *
 * ```sh
 * deno run -A tests/setup.ts      # the same check and installation, on its own
 * ```
 *
 * @module
 */
import { exists, WINE } from "./wine/windows_deno.ts";

/** A tool a test or the Wine harness runs, how to find it, and the Debian package it comes in. */
export interface Tool {
  package: string;
  /** A command on the PATH, or an absolute path. */
  command: string;
  usedBy: string;
}

/** Every program the suite spawns that a fresh Debian/Ubuntu machine with Node.js may lack. */
export const TOOLS: Tool[] = [
  { package: "socat", command: "socat", usedBy: "tests/socat_test.ts, tests/posix_test.ts" },
  { package: "binutils", command: "objdump", usedBy: "the libc symbol-version test" },
  { package: "wine", command: "wine", usedBy: "the Windows suite (tests/wine/)" },
  { package: "wine64", command: WINE, usedBy: "the Windows suite (tests/wine/)" },
  {
    package: "gcc-mingw-w64-x86-64",
    command: "x86_64-w64-mingw32-gcc",
    usedBy: "the Windows suite's ProcessPrng shim",
  },
];

async function found(command: string): Promise<boolean> {
  if (command.startsWith("/")) return exists(command);
  const out = await new Deno.Command("sh", {
    args: ["-c", 'command -v "$1"', "sh", command],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}

/** The tools of `tools` that this machine lacks. */
export async function missingTools(tools: Tool[] = TOOLS): Promise<Tool[]> {
  const missing: Tool[] = [];
  for (const tool of tools) if (!await found(tool.command)) missing.push(tool);
  return missing;
}

/** The sentence a user without root reads: exactly what to install, and why. */
export function installAdvice(missing: Tool[]): string {
  const packages = [...new Set(missing.map((tool) => tool.package))];
  const lines = missing.map((tool) => `  ${tool.command} (package ${tool.package}): ${tool.usedBy}`);
  return [
    "The test suite needs programs this machine lacks:",
    ...lines,
    `Install them, then run the tests again: sudo apt-get install -y ${packages.join(" ")}`,
  ].join("\n");
}

/**
 * Install the missing tools with apt-get when root; otherwise throw with {@linkcode installAdvice}.
 * Linux only: elsewhere (Windows) the suite needs nothing but Deno.
 */
export async function ensureHostTools(log: (line: string) => void = console.error): Promise<void> {
  if (Deno.build.os !== "linux") return;
  const missing = await missingTools();
  if (missing.length === 0) return;
  const root = Deno.uid() === 0;
  if (!root || !await found("apt-get")) throw new Error(installAdvice(missing));
  const packages = [...new Set(missing.map((tool) => tool.package))];
  log(`[setup] installing ${packages.join(" ")} with apt-get (a minute or two, once)`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  for (const args of [["update", "-qq"], ["install", "-y", "-qq", ...packages]]) {
    const out = await new Deno.Command("apt-get", {
      args,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-10).join("\n");
      throw new Error(`apt-get ${args.join(" ")} failed (exit ${out.code}):\n${err}`);
    }
  }
  const still = await missingTools(missing);
  if (still.length) throw new Error(`apt-get installed ${packages.join(" ")}, yet:\n${installAdvice(still)}`);
}

/**
 * Spawn one of {@linkcode TOOLS}; when it is not installed, the error says how to get it rather than
 * "Failed to spawn" (and the test fails: none skips for a missing tool).
 */
export function spawnTool(command: string, options: Deno.CommandOptions): Deno.ChildProcess {
  try {
    return new Deno.Command(command, options).spawn();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    const tool = TOOLS.find((t) => t.command === command);
    const advice = tool ? installAdvice([tool]) : `${command} is not installed`;
    throw new Error(`${advice}\n(deno task test installs it when run as root)`, { cause: error });
  }
}

if (import.meta.main) {
  try {
    await ensureHostTools();
    console.error("[setup] every tool the suite runs is installed");
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
}
