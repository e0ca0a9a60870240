/**
 * `deno task test`: the whole suite, on the host and, on Linux, again under Wine with Windows Deno so
 * that every kernel32 path runs. Ends with one summary and a non-zero exit if anything failed.
 * On Linux it first installs the programs the tests run (`setup.ts`; as root, else it says what to
 * install and fails). With `CI=true`, a Windows suite that could not run is a failure, not a pass.
 *
 * Arguments are passed to both `deno test` runs (files, `--filter ...`).
 *
 * @module
 */
import { parseDenoTestSummary, type SuiteResult } from "./summary.ts";
import { runWindowsSuite } from "./wine/run.ts";
import { ensureHostTools } from "./setup.ts";

async function runHostSuite(args: string[]): Promise<SuiteResult> {
  const name = `host (${Deno.build.os})`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", ...args],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // A hang must fail the run, not stall CI until its own limit.
  let timedOut = false;
  const deadline = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, 15 * 60_000);
  let output = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    output += decoder.decode(chunk, { stream: true });
    await Deno.stdout.write(chunk);
  }
  const { code } = await child.status;
  clearTimeout(deadline);
  if (timedOut) return { name, passed: 0, failed: 1, skipped: 0, note: "killed after 15 minutes" };
  const result = parseDenoTestSummary(name, output) ??
    { name, passed: 0, failed: 1, skipped: 0, note: `deno test exited ${code} without a summary` };
  if (code !== 0 && result.failed === 0) result.failed = 1;
  return result;
}

function banner(text: string) {
  console.log(`\n=== ${text} ===\n`);
}

async function main(args: string[]): Promise<number> {
  const testArgs = args.length ? args : ["tests/"];
  const ci = Deno.env.get("CI") === "true";
  const started = Date.now();
  try {
    await ensureHostTools();
  } catch (error) {
    console.error(`\n${(error as Error).message}`);
    return 1;
  }
  banner(`host suite: deno test on ${Deno.build.os}`);
  const results = [await runHostSuite(testArgs)];
  if (Deno.build.os === "linux") {
    banner("windows suite: Windows Deno under Wine");
    const windows = await runWindowsSuite(testArgs);
    if (windows.note && windows.passed + windows.failed === 0) {
      windows.note = `skipped: ${windows.note}`;
      if (ci) windows.failed = 1;
    }
    results.push(windows);
  }
  banner(`summary (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  for (const r of results) {
    const note = r.note ? ` (${r.note})` : "";
    console.log(`${r.name.padEnd(18)} ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped${note}`);
  }
  const total = (key: "passed" | "failed" | "skipped") => results.reduce((n, r) => n + r[key], 0);
  console.log(`${total("passed")} passed, ${total("failed")} failed, ${total("skipped")} skipped`);
  return total("failed") > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
