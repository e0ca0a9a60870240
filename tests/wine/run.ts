/**
 * Run the test suite (or one script) with Windows Deno under Wine, so every kernel32 path runs on a
 * Linux machine.
 *
 * ```sh
 * deno run -A tests/wine/run.ts                      # deno test -A tests/ under Wine
 * deno run -A tests/wine/run.ts tests/message_test.ts --filter "round trip"
 * deno run -A tests/wine/run.ts --exec scratch.ts a b  # deno run -A scratch.ts a b under Wine
 * ```
 *
 * @module
 */
import { parseDenoTestSummary, type SuiteResult } from "../summary.ts";
import {
  CACHE,
  prepareWindowsDeno,
  restartWineserver,
  stopWineserver,
  TIMED_OUT,
  wineCommand,
  WineUnavailable,
} from "./windows_deno.ts";

const USAGE = `Usage: deno run -A tests/wine/run.ts [--exec SCRIPT ARGS... | DENO TEST ARGS...]

Prepares Windows Deno under Wine (installs wine, wine64 and gcc-mingw-w64-x86-64 with apt when root;
fetches @deno/win32-x64 at the host's Deno version from npm; builds the ProcessPrng shim; patches a copy
of deno.exe; all cached in .cache/wine/) and then runs:
  no arguments        deno test -A tests/
  DENO TEST ARGS      deno test -A ARGS (files, --filter ...)
  --exec SCRIPT ARGS  deno run -A SCRIPT ARGS
Output is written to .cache/wine/run-PID.log and echoed as it grows.`;

/** Run `deno test -A args` under Wine and read its summary; a missing Wine becomes a skipped suite. */
export async function runWindowsSuite(args: string[] = ["tests/"]): Promise<SuiteResult> {
  const name = "windows (wine)";
  let deno;
  try {
    deno = await prepareWindowsDeno();
  } catch (error) {
    if (error instanceof WineUnavailable) {
      return { name, passed: 0, failed: 0, skipped: 0, note: error.message };
    }
    throw error;
  }
  // Start from a fresh wineserver: nothing left over from earlier Wine programs in this prefix.
  await restartWineserver(deno);
  // One log per run: suites may run side by side in the same prefix.
  const logFile = `${CACHE}/run-${Deno.pid}.log`;
  let output = "";
  const code = await wineCommand(deno, [deno.exe, "test", "-A", ...args], logFile, undefined, (text) => {
    output += text;
    Deno.stdout.writeSync(new TextEncoder().encode(text));
  });
  // Left running, the persistent wineserver would outlive the suite; the next run restarts it in a second.
  await stopWineserver(deno);
  const result = parseDenoTestSummary(name, output);
  if (code === TIMED_OUT) {
    return {
      name,
      passed: result?.passed ?? 0,
      failed: 1,
      skipped: 0,
      note: `killed after 20 minutes: see ${logFile}`,
    };
  }
  if (!result) {
    return {
      name,
      passed: 0,
      failed: 1,
      skipped: 0,
      note: `Windows Deno exited ${code} without a test summary`,
    };
  }
  if (code !== 0 && result.failed === 0) result.failed = 1;
  return result;
}

async function main(args: string[]): Promise<number> {
  if (args[0] === "--help" || args[0] === "-h") {
    console.log(USAGE);
    return 0;
  }
  if (args[0] === "--exec") {
    if (!args[1]) {
      console.error(USAGE);
      return 2;
    }
    const deno = await prepareWindowsDeno();
    // No time limit: this may be a server (`--exec main.ts serve`) meant to run until stopped.
    const code = await wineCommand(
      deno,
      [deno.exe, "run", "-A", ...args.slice(1)],
      `${CACHE}/run-${Deno.pid}.log`,
      undefined,
      (text) => Deno.stdout.writeSync(new TextEncoder().encode(text)),
      null,
    );
    await stopWineserver(deno);
    return code;
  }
  const result = await runWindowsSuite(args.length ? args : ["tests/"]);
  if (result.note) console.error(`[wine] ${result.note}`);
  return result.failed > 0 || result.note ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
