/**
 * `deno task stress`: a bounded soak-and-fault run against a real server process on each backend —
 * Linux natively and Windows Deno under Wine — that stops by itself and prints one table.
 *
 * ```sh
 * deno task stress --quick            # both backends, well under 2 minutes (CI)
 * deno task stress                    # the full run: a 75 s soak per backend, a few minutes
 * deno task stress --backend linux    # or wine; --seed N repeats a run; --soak S soaks longer
 * deno task stress --server cli       # main.ts serve --echo instead of the library's echo server
 * ```
 *
 * Per backend: start the server; run the `check` phase (warm-up) and take the baseline (handles,
 * descriptors, memory); run the `main` phase (churn with hostile clients, repeated while soaking)
 * in one load process while rounds of fault processes are killed with SIGKILL idle, blocked,
 * mid-message, mid-reply and mid-connect; run the `check` phase again (the server still serves);
 * wait for the server to settle and compare; stop it with clients still connected. Exit 1 when a
 * reply was wrong or missing, the server died, or handles, descriptors or heap grew. See README.md.
 *
 * @module
 */
import type { Limits, LoadResult } from "./_messages.ts";
import type { LoadPlan } from "./load_client.ts";
import {
  type Backend,
  killAndReap,
  linuxBackend,
  memoryOf,
  poll,
  type Proc,
  readJson,
  start,
  waitExit,
  wineBackend,
  withOwnCache,
} from "./_processes.ts";
import { type ServerUnderTest, startCliServer, startLibraryServer, truncateLog } from "./_servers.ts";
import { type BackendReport, formatTable } from "./_report.ts";
import { stopWineserver } from "../wine/windows_deno.ts";
import { largestMessage } from "../_send_limit.ts";
import { SABOTAGE } from "./echo_server.ts";

const HERE = new URL(".", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;
const WORK = `${ROOT}.cache/stress`;

const LIMITS: Limits = {
  bufferSize: 4096,
  maxMessageSize: 256 * 1024,
  farOverMax: linuxCanSend(1024 * 1024),
};
const FAULT_KINDS = ["idle", "no-read", "mid-message", "mid-reply", "byte-stream", "connect-storm"] as const;
/** Growth allowed between the baseline and the end. The engine's own count must come back exactly. */
const TOLERANCE = { handles: 0, descriptors: 4, heapBytes: 16 * 1024 * 1024 };

/** How much of each kind a run throws: the load plan's counts, plus the fault and time bounds. */
interface Scale extends
  Pick<
    LoadPlan,
    | "clients"
    | "concurrency"
    | "idle"
    | "noRead"
    | "overMax"
    | "halfMessage"
    | "cutMessage"
    | "connectClose"
    | "floods"
    | "floodSize"
  > {
  /** Rounds of fault processes, one of each kind per round, each killed with SIGKILL. */
  faultRounds: number;
  /** Repeat the churn (and the fault rounds) for this long. */
  soakSeconds: number;
  /** Bound on the main phase. */
  maxSeconds: number;
}

/** Wine pays a wineserver round trip on every pipe operation: fewer clients there. */
const SCALES: Record<"quick" | "full" | "sabotage", Record<Backend["name"], Scale>> = {
  quick: {
    linux: scale(2_000, 64, 2, 0, 60),
    wine: scale(600, 32, 2, 0, 80),
  },
  /** `--sabotage`: only to show that a check trips, so a third of the quick run. */
  sabotage: {
    linux: scale(600, 32, 1, 0, 40),
    wine: scale(200, 16, 1, 0, 60),
  },
  full: {
    linux: scale(10_000, 128, 4, 75, 240),
    wine: scale(2_000, 64, 4, 75, 300),
  },
};

function scale(
  clients: number,
  concurrency: number,
  faultRounds: number,
  soakSeconds: number,
  maxSeconds: number,
): Scale {
  const n = (share: number) => Math.max(2, Math.round(clients * share));
  return {
    clients,
    concurrency,
    idle: Math.min(40, n(0.02)),
    noRead: Math.min(8, n(0.005)),
    overMax: Math.min(40, n(0.01)),
    halfMessage: n(0.01),
    cutMessage: Math.min(40, n(0.01)),
    connectClose: n(0.03),
    floods: Math.min(6, n(0.002)),
    floodSize: clients >= 2000 ? 5000 : 1000,
    faultRounds,
    soakSeconds,
    maxSeconds,
  };
}

/** `size` when a message that big can be sent here (tests/_send_limit.ts), else 0. */
function linuxCanSend(size: number): number {
  return largestMessage() >= size ? size : 0;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function log(backend: string, message: string) {
  console.error(`[stress ${backend}] ${message}`);
}

/** One backend's whole run; every process it starts is killed in `finally`. */
async function runBackend(
  backend: Backend,
  serverKind: ServerUnderTest["kind"],
  quick: boolean,
  seed: number,
  sabotage: string,
  soak?: number,
): Promise<BackendReport> {
  // The CLI logs every message in full (about 6 times the traffic): never the full scale for it.
  const scaled =
    SCALES[sabotage !== "none" ? "sabotage" : quick || serverKind === "cli" ? "quick" : "full"][backend.name];
  const s = soak === undefined
    ? scaled
    : { ...scaled, soakSeconds: soak, maxSeconds: soak + scaled.maxSeconds };
  const dir = `${WORK}/${backend.name}-${serverKind}-${Date.now()}`;
  Deno.mkdirSync(dir, { recursive: true });
  const name = `np_stress_${backend.name}_${Deno.pid}_${seed}`;
  const started = performance.now();
  const procs: Proc[] = [];
  const report: BackendReport = {
    backend: backend.name,
    server: serverKind,
    mode: quick ? "quick" : "full",
    connections: 0,
    messages: 0,
    bytes: 0,
    faults: {},
    expectedErrors: 0,
    unexpectedErrors: 0,
    serverDropped: 0,
    serverVanished: 0,
    wrong: 0,
    unanswered: 0,
    rssPeak: 0,
    clientHandlesIdle: 0,
    clientHandlesEnd: 0,
    serverAlive: false,
    passes: 0,
    seconds: 0,
    failures: [],
    logDir: dir,
  };
  const fail = (why: string) => {
    report.failures.push(why);
    log(backend.name, `FAIL: ${why}`);
  };
  const startupMs = backend.name === "wine" ? 60_000 : 15_000;

  // `--sabotage leak-fd`: the POSIX backend's test-only hook, in the server's environment only.
  const serverBackend = sabotage === "leak-fd"
    ? { ...backend, env: { ...backend.env, NAMEDPIPE_TEST_ONLY_LEAK_FDS: "1" } }
    : backend;
  const server = serverKind === "library"
    ? startLibraryServer(serverBackend, dir, name, LIMITS, s.maxSeconds + 2 * startupMs / 1000 + 60, sabotage)
    : startCliServer(backend, dir, name, LIMITS);
  procs.push(...server.procs);
  let peakRss = 0;
  /** RSS over the main phase: a leak shows as growth from its middle to its end. */
  let timeline: number[] | undefined;
  const sampler = setInterval(() => {
    const memory = memoryOf(server.main.pid);
    if (!memory) return;
    peakRss = Math.max(peakRss, memory.rss, memory.peak);
    timeline?.push(memory.rss);
  }, 200);

  /** Run one load phase to its end, within its bound; returns what it reported. */
  const runLoad = async (phase: "check" | "main", label: string, plan: Partial<LoadPlan>) => {
    const full: LoadPlan = {
      phase,
      name,
      seed: seed + label.length * 7919,
      limits: LIMITS,
      clients: 20,
      concurrency: 8,
      rounds: [2, 5],
      byteShare: 0.1,
      idle: 0,
      noRead: 0,
      overMax: 0,
      halfMessage: 0,
      cutMessage: 0,
      connectClose: 0,
      floods: 0,
      floodSize: 200,
      soakSeconds: 0,
      clientTimeoutMs: 30_000,
      maxSeconds: 60,
      ...plan,
    };
    const planFile = `${dir}/${label}-plan.json`;
    const resultFile = `${dir}/${label}-result.json`;
    Deno.writeTextFileSync(planFile, JSON.stringify(full, null, 2));
    const proc = start(
      backend,
      label,
      `${HERE}load_client.ts`,
      [backend.path(planFile), backend.path(resultFile)],
      `${dir}/${label}.log`,
    );
    procs.push(proc);
    const status = await waitExit(proc, (full.maxSeconds + startupMs / 1000 + 10) * 1000);
    if (status === null) {
      fail(`the ${label} load process did not finish in time`);
      await killAndReap(proc);
    } else if (status.code !== 0) {
      fail(`the ${label} load process exited with code ${status.code} (see ${proc.log})`);
    }
    const result = readJson<LoadResult>(resultFile);
    if (!result) fail(`the ${label} load process wrote no result`);
    else add(report, result);
    return result;
  };

  try {
    if (!await server.ready(startupMs)) {
      throw new Error(`the server did not start within ${startupMs} ms (see ${server.main.log})`);
    }
    log(backend.name, `${serverKind} server up (pid ${server.procs.map((p) => p.pid).join(", ")})`);

    // Warm-up doubles as the first check; the baseline is taken once the server is idle after it.
    await runLoad("check", "warmup", {});
    const before = await server.settle();
    if (!before) throw new Error("the server did not become idle after the warm-up");
    report.handlesBefore = before.handles;
    report.heapBefore = before.heap;
    report.rssBefore = before.rss;
    report.fdsBefore = before.fds;
    log(backend.name, `baseline: ${before.handles ?? "-"} handles, ${before.fds ?? "-"} fds`);

    timeline = [];
    const main = runLoad("main", "main", {
      clients: s.clients,
      concurrency: s.concurrency,
      idle: s.idle,
      noRead: s.noRead,
      overMax: s.overMax,
      halfMessage: s.halfMessage,
      cutMessage: s.cutMessage,
      connectClose: s.connectClose,
      floods: s.floods,
      floodSize: s.floodSize,
      soakSeconds: s.soakSeconds,
      maxSeconds: s.maxSeconds,
    });
    let mainDone = false;
    main.finally(() => mainDone = true);
    // At least `faultRounds` rounds, and more while the soak goes on.
    const kills = injectFaults(
      backend,
      dir,
      name,
      (round) => round < s.faultRounds || !mainDone,
      procs,
      report,
      fail,
    );
    const [mainResult] = await Promise.all([main, kills]);
    report.rssChurn = [1, 2, 3, 4].map((q) =>
      timeline![Math.max(0, Math.ceil(timeline!.length * q / 4) - 1)]
    );
    timeline = undefined;
    report.passes = mainResult?.passes ?? 0;

    // The server still serves, with every edge length, after all of that.
    await runLoad("check", "final", { clients: 50 });
    // Deno's own descriptors (and Wine's fd cache) may take a moment to settle too.
    const after = await server.settle(
      before.handles,
      before.fds === undefined ? undefined : before.fds + TOLERANCE.descriptors,
    ) ?? await server.settle();
    if (!after) throw new Error("the server did not become idle after the run");
    report.handlesAfter = after.handles;
    report.heapAfter = after.heap;
    report.rssAfter = after.rss;
    report.fdsAfter = after.fds;
    report.serverDropped = after.dropped;
    report.serverVanished = after.vanished;
    report.serverAlive = server.alive();
    if (after.errorSamples.length) {
      log(backend.name, `server saw: ${after.errorSamples.slice(0, 4).join(" | ")}`);
    }
    // Stopping cleanly is part of the test: every handle released, a clean exit, also with clients
    // still connected that are idle or blocked with the pipe full (go-winio #281, #357).
    const holders = await Promise.all(
      (["idle", "no-read", "mid-reply"] as const).map((kind) =>
        startFault(withOwnCache(backend, `${WORK}/fault_deno_dir`), dir, name, kind, `at-stop-${kind}`, procs)
      ),
    );
    for (const { proc, inPlace } of holders) {
      if (!inPlace) fail(`the ${proc.label} process never got its fault in place (see ${proc.log})`);
      else report.faults["connected at stop"] = (report.faults["connected at stop"] ?? 0) + 1;
    }
    const stopped = await server.stop();
    if (stopped) fail(stopped);
  } catch (error) {
    fail((error as Error).message);
  } finally {
    clearInterval(sampler);
    for (const proc of procs) {
      await killAndReap(proc);
      truncateLog(proc.log);
    }
    report.rssPeak = peakRss;
    report.seconds = (performance.now() - started) / 1000;
  }
  check(report, fail);
  return report;
}

/** Start a fault process and wait (bounded) until its fault is in place; false if it never was. */
async function startFault(
  backend: Backend,
  dir: string,
  name: string,
  kind: string,
  label: string,
  procs: Proc[],
): Promise<{ proc: Proc; inPlace: boolean }> {
  const ready = `${dir}/${label}.ready`;
  const proc = start(
    backend,
    label,
    `${HERE}fault_client.ts`,
    [kind, name, String(LIMITS.bufferSize), String(LIMITS.maxMessageSize), backend.path(ready)],
    `${dir}/${label}.log`,
  );
  procs.push(proc);
  const inPlace = await poll(() => {
    try {
      Deno.statSync(ready);
      return true;
    } catch {
      return proc.exited ? false : undefined;
    }
  }, backend.name === "wine" ? 45_000 : 15_000);
  return { proc, inPlace: inPlace === true };
}

/** Rounds of fault processes, one per kind: wait until each is in place, then SIGKILL it. */
async function injectFaults(
  backend: Backend,
  dir: string,
  name: string,
  another: (round: number) => boolean,
  procs: Proc[],
  report: BackendReport,
  fail: (why: string) => void,
) {
  // The fault processes come and go by the thousand in a soak: they get caches of their own.
  const faultBackend = withOwnCache(backend, `${WORK}/fault_deno_dir`);
  for (let round = 0; another(round); round++) {
    let failed = false;
    await Promise.all(FAULT_KINDS.map(async (kind) => {
      const label = `fault-${kind}-${round}`;
      const { proc, inPlace } = await startFault(faultBackend, dir, name, kind, label, procs);
      if (!inPlace) {
        failed = true;
        fail(`the ${label} process never got its fault in place (see ${proc.log})`);
      } else {
        // A random moment inside the transfer (mid-message, mid-reply); at once for the others.
        await sleep(Math.floor(Math.random() * 200));
        report.faults[`killed ${kind}`] = (report.faults[`killed ${kind}`] ?? 0) + 1;
      }
      await killAndReap(proc);
    }));
    // A round that failed would fail again at once: stop rather than spin.
    if (failed) break;
  }
}

function add(report: BackendReport, result: LoadResult) {
  report.connections += result.connections;
  report.messages += result.messages;
  report.bytes += result.bytes;
  report.wrong += result.wrong;
  report.unanswered += result.unanswered;
  report.expectedErrors += result.expectedErrors;
  report.unexpectedErrors += result.unexpectedErrors;
  report.clientHandlesIdle += result.clientHandles.idle;
  report.clientHandlesEnd += result.clientHandles.end;
  for (const [kind, n] of Object.entries(result.faults)) report.faults[kind] = (report.faults[kind] ?? 0) + n;
  for (const sample of result.errorSamples) {
    console.error(`[stress ${report.backend}] ${result.phase}: ${sample}`);
  }
}

/**
 * The pass/fail rules; each failure is a sentence in the report that starts with its check's name in
 * brackets (`[descriptors] ...`), which `--sabotage` runs are asserted on.
 */
function check(report: BackendReport, fail: (why: string) => void) {
  const failCheck = (name: string, why: string) => fail(`[${name}] ${why}`);
  if (report.wrong > 0) failCheck("wrong replies", `${report.wrong} wrong replies`);
  if (report.unanswered > 0) {
    failCheck("unanswered requests", `${report.unanswered} requests of well-behaved clients got no reply`);
  }
  if (report.unexpectedErrors > 0) {
    failCheck("client errors", `${report.unexpectedErrors} unexpected client errors`);
  }
  if (!report.serverAlive) failCheck("server alive", "the server died or stopped answering");
  const overMax = report.faults["over max"] ?? 0;
  if (report.serverDropped !== overMax) {
    failCheck(
      "drop count",
      `the server dropped ${report.serverDropped} clients for oversized messages; ${overMax} sent one`,
    );
  }
  const grew = (before: number | undefined, after: number | undefined, tolerance: number) =>
    before !== undefined && !(after !== undefined && after - before <= tolerance);
  if (grew(report.handlesBefore, report.handlesAfter, TOLERANCE.handles)) {
    failCheck("engine handles", `engine handles grew from ${report.handlesBefore} to ${report.handlesAfter}`);
  }
  if (grew(report.fdsBefore, report.fdsAfter, TOLERANCE.descriptors)) {
    failCheck("descriptors", `open descriptors grew from ${report.fdsBefore} to ${report.fdsAfter}`);
  }
  if (grew(report.clientHandlesIdle, report.clientHandlesEnd, TOLERANCE.handles)) {
    failCheck(
      "client handles",
      `the load processes' engines kept ${report.clientHandlesEnd - report.clientHandlesIdle} handles`,
    );
  }
  if (grew(report.heapBefore, report.heapAfter, TOLERANCE.heapBytes)) {
    failCheck("heap", `the server's heap grew from ${report.heapBefore} to ${report.heapAfter} bytes`);
  }
}

/** Keep the logs of the last few runs only. */
function pruneOldRuns(keep = 12) {
  let dirs: Deno.DirEntry[];
  try {
    dirs = [...Deno.readDirSync(WORK)].filter((entry) => entry.isDirectory && /-\d+$/.test(entry.name));
  } catch {
    return;
  }
  const stamp = (entry: Deno.DirEntry) => Number(entry.name.split("-").at(-1));
  dirs.sort((a, b) => stamp(b) - stamp(a));
  for (const old of dirs.slice(keep)) Deno.removeSync(`${WORK}/${old.name}`, { recursive: true });
}

const USAGE = `Usage: deno task stress [--quick] [--backend linux|wine|all] [--server library|cli] [--seed N]
                         [--soak SECONDS] [--sabotage KIND]

A bounded soak-and-fault run against an echo server on Linux and on Windows Deno under Wine: the
library's (tests/stress/echo_server.ts, which reports the engine's handle count; the default) or
the CLI's (main.ts serve --echo, watched from /proc). Logs go to .cache/stress/. Exits 1 on a wrong
or missing reply, a dead server, or growth of the server's handles, descriptors or heap; each
failure names its check in brackets.

--soak SECONDS repeats the churn (and the kills) that long instead of the mode's default.
--sabotage KIND makes the library server misbehave so that one check must fail (the run then exits 1
naming it); the CLI server cannot be sabotaged (exit 2). KIND and the check it trips:
${Object.entries(SABOTAGE).map(([kind, check]) => `  ${kind.padEnd(11)} [${check}]`).join("\n")}
leak-fd is the POSIX backend's test-only close that skips close(2): Linux backend only.`;

async function main(args: string[]): Promise<number> {
  let quick = false;
  let which = "all";
  let serverKind = "library";
  let sabotage = "none";
  let soak: number | undefined;
  let seed = Math.floor(Math.random() * 1_000_000);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--quick") quick = true;
    else if (arg === "--backend") which = args[++i];
    else if (arg === "--seed") seed = Number(args[++i]);
    else if (arg === "--server") serverKind = args[++i];
    else if (arg === "--sabotage") sabotage = args[++i];
    else if (arg === "--soak") soak = Number(args[++i]);
    else {
      console.error(arg === "--help" || arg === "-h" ? USAGE : `Unknown argument "${arg}"\n\n${USAGE}`);
      return arg === "--help" || arg === "-h" ? 0 : 2;
    }
  }
  if (
    !["linux", "wine", "all"].includes(which) || !["library", "cli"].includes(serverKind) ||
    !(sabotage === "none" || sabotage in SABOTAGE) ||
    !Number.isInteger(seed) || (soak !== undefined && !(soak >= 0))
  ) {
    console.error(USAGE);
    return 2;
  }
  if (sabotage !== "none" && serverKind === "cli") {
    console.error("--sabotage needs the library server: the CLI server (--server cli) has no sabotage");
    return 2;
  }
  if (sabotage === "leak-fd" && which !== "linux") {
    console.error("--sabotage leak-fd is a hook of the POSIX backend: add --backend linux");
    return 2;
  }
  if (Deno.build.os !== "linux") {
    // It drives both backends from Linux (Wine for Windows) and reads /proc.
    console.error("deno task stress runs on a Linux host (it runs the Windows backend under Wine)");
    return 2;
  }
  console.error(`[stress] ${quick ? "quick" : "full"} run, seed ${seed}`);
  pruneOldRuns();
  const reports: BackendReport[] = [];
  const kind = serverKind as ServerUnderTest["kind"];
  if (which !== "wine") reports.push(await runBackend(linuxBackend(), kind, quick, seed, sabotage, soak));
  if (which !== "linux") {
    const wine = await wineBackend();
    try {
      reports.push(await runBackend(wine, kind, quick, seed, sabotage, soak));
    } finally {
      // Thousands of killed Windows processes went through this wineserver: leave none of its
      // state to whatever runs next in the prefix (CI runs the test suite there).
      await stopWineserver({ env: wine.env });
    }
  }
  console.log(formatTable(reports, seed));
  return reports.some((r) => r.failures.length > 0) ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
