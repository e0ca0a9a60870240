/**
 * `deno task bench`: namedpipe against native C and Node peers, on Linux and under Wine, measured
 * side by side with one native C load generator. See bench/README.md.
 *
 * ```sh
 * deno task bench                 # full run: 3 runs x (pinned, unpinned), writes bench/RESULTS.md
 * deno task bench --quick         # seconds: CI smoke, writes .cache/bench/RESULTS-quick.md
 * deno task bench --only linux --runs 5 --placement pinned
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { WINE, winePath, WineUnavailable } from "../tests/wine/windows_deno.ts";
import { FEW_CLIENTS, linuxPeers, type Peer, type ServerMode, winePeers } from "./peers.ts";
import {
  type CpuSample,
  cpuSample,
  finish,
  kill,
  killAll,
  pin,
  processTree,
  spawnLogged,
  Stalled,
  treeRssKiB,
  waitForLine,
  wineserverPids,
} from "./procs.ts";
import { relayBench } from "./relay.ts";
import {
  type Cost,
  costTable,
  errorKey,
  type Metric,
  type Placement,
  type Results,
  table,
} from "./report.ts";
import {
  BENCH_CACHE,
  describeMachine,
  type LinuxTools,
  prepareLinux,
  prepareWine,
  stopWine,
  type WineTools,
} from "./setup.ts";

const USAGE = `Usage: deno task bench [options]

  --quick              a few seconds per platform for CI smoke: 1 run, unpinned, short figures
  --runs N             runs of every figure (default 3); peers are interleaved within each run
  --duration S         seconds each figure is measured, after a warm-up (default 1.5)
  --idle N             idle connections for the memory figure (default 1000)
  --only linux|wine    one platform only (default both)
  --placement P        pinned, unpinned or both (default both)
  --peers ID,ID        only these servers (ids: linux-c linux-namedpipe linux-namedpipe-read
                       linux-deno linux-node linux-deno-node wine-c wine-c-iocp wine-namedpipe
                       wine-deno-node wine-node); keep the C one for ratios
  --out FILE           where the Markdown report goes (default bench/RESULTS.md;
                       with --quick .cache/bench/RESULTS-quick.md)`;

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const CLIENTS = 16;
/**
 * Round trips the 64 KiB figure warms up with, whatever the time: 128 MiB through the server. A server
 * that hands every received message out in a fresh buffer (namedpipe, Node) touches new memory with
 * each one until its runtime's first garbage collections let the allocator reuse freed buffers: on a VM
 * where a page fault costs tens of µs that start-up runs at a quarter of the steady rate for about
 * 1,000 messages, longer than a time-based warm-up on a loaded machine.
 */
const THR_WARMUP_ROUND_TRIPS = 2000;

interface Settings {
  runs: number;
  duration: number;
  warmup: number;
  idle: number;
  placements: Placement[];
  platforms: ("linux" | "wine")[];
  peers: string[] | null;
  out: string;
  quick: boolean;
}

interface Context {
  settings: Settings;
  linux: LinuxTools | null;
  wine: WineTools | null;
  results: Results;
  tmp: string;
  serial: number;
}

function log(message: string) {
  console.error(`[bench] ${message}`);
}

function parse(args: string[]): Settings | null {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean" },
      runs: { type: "string" },
      duration: { type: "string" },
      idle: { type: "string" },
      only: { type: "string" },
      placement: { type: "string" },
      peers: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return null;
  const quick = values.quick ?? false;
  const placement = values.placement ?? (quick ? "unpinned" : "both");
  if (!["pinned", "unpinned", "both"].includes(placement)) {
    throw new TypeError(`Unknown placement "${placement}"`);
  }
  if (values.only && !["linux", "wine"].includes(values.only)) {
    throw new TypeError(`Unknown platform "${values.only}"`);
  }
  return {
    runs: Number(values.runs ?? (quick ? 1 : 3)),
    duration: Number(values.duration ?? (quick ? 0.3 : 1.5)),
    warmup: quick ? 0.1 : 0.3,
    idle: Number(values.idle ?? (quick ? 100 : 1000)),
    placements: placement === "both" ? ["pinned", "unpinned"] : [placement as Placement],
    platforms: values.only ? [values.only as "linux" | "wine"] : ["linux", "wine"],
    peers: values.peers ? values.peers.split(",") : null,
    out: values.out ?? (quick ? `${BENCH_CACHE}/RESULTS-quick.md` : `${ROOT}/bench/RESULTS.md`),
    quick,
  };
}

/** Start a peer's server and wait for its "ready" line. */
async function startServer(ctx: Context, peer: Peer, mode: ServerMode, cpus: string | undefined) {
  const n = ctx.serial++;
  const address = peer.platform === "linux"
    ? `${ctx.tmp}/${peer.id}-${n}.sock`
    : `\\\\.\\pipe\\namedpipe-bench-${Deno.pid}-${peer.id}-${n}`;
  const env = peer.platform === "wine" ? ctx.wine!.env : undefined;
  const server = spawnLogged(peer.argv(address, mode), `${BENCH_CACHE}/logs/${peer.id}-${mode}.log`, {
    env,
    cpus,
    cwd: ROOT,
  });
  try {
    await waitForLine(server, /^ready/m, 60_000, `${peer.label} server`);
  } catch (error) {
    await kill(server);
    throw error;
  }
  return { server, address };
}

/**
 * Run the load generator against `address`; returns its "ok ..." fields and, given the server's pid,
 * what the server spent per operation between the generator's "measuring" and "measured" lines.
 */
async function load(
  ctx: Context,
  peer: Peer,
  address: string,
  args: string[],
  cpus: string | undefined,
  serverPid?: number,
) {
  const { settings } = ctx;
  const common = [
    "-p",
    address,
    ...(peer.message ? ["-m"] : []),
    "-d",
    `${settings.duration}`,
    "-w",
    `${settings.warmup}`,
  ];
  const argv = peer.platform === "linux"
    ? [ctx.linux!.load, ...common, ...args]
    : [WINE, ctx.wine!.loadExe, ...common, ...args];
  const env = peer.platform === "wine" ? ctx.wine!.env : undefined;
  const client = spawnLogged(argv, `${BENCH_CACHE}/logs/${peer.id}-client.log`, { env, cpus, cwd: ROOT });
  const timeout = (settings.duration + settings.warmup + 80) * 1000; // the warm-up may last 20 s
  const what = `load ${args.join(" ")}`;
  // The processes to read, found before the window opens: each scan of /proc for them would take CPU
  // from the server being measured.
  const server = serverPid === undefined ? [] : processTree(serverPid);
  const wineserver = peer.platform === "wine" && server.length
    ? wineserverPids(ctx.wine!.prefix).flatMap(processTree)
    : [];
  let readings: [CpuSample[], CpuSample[]] | undefined;
  if (server.length) {
    try {
      await waitForLine(client, /^measuring$/m, timeout, what);
      const first = [cpuSample(server), cpuSample(wineserver)];
      await waitForLine(client, /^measured$/m, timeout, what);
      readings = [first, [cpuSample(server), cpuSample(wineserver)]];
    } catch {
      // finish() below says what went wrong.
    }
  }
  const line = await finish(client, timeout, what);
  const fields: Record<string, number> = Object.fromEntries(
    line.split(" ").slice(1).map((kv) => kv.split("=")).map(([k, v]) => [k, Number(v)]),
  );
  let cost: Cost | undefined;
  if (readings && fields.rate > 0) {
    const [[server0, wine0], [server1, wine1]] = readings;
    // Per second of the sampled window, then per operation at the measured rate.
    const perOp = (delta: number) => delta / ((server1.at - server0.at) / 1000) / fields.rate;
    cost = {
      cpuUs: perOp((server1.ns - server0.ns) / 1000),
      switches: perOp(server1.switches - server0.switches),
    };
    if (wineserver.length) cost.wineserverUs = perOp((wine1.ns - wine0.ns) / 1000);
  }
  return { rate: fields.rate, mbps: fields.mbps, cost };
}

/** Hold `idle` connections open and read the server's resident memory meanwhile. */
async function idleRss(ctx: Context, peer: Peer, address: string, pid: number, cpus: string | undefined) {
  const stopfile = `${ctx.tmp}/stop-${ctx.serial++}`;
  const args = ["-p", address, ...(peer.message ? ["-m"] : []), "-t", "idle", "-n", `${ctx.settings.idle}`];
  const argv = peer.platform === "linux"
    ? [ctx.linux!.load, ...args, "-s", stopfile]
    : [WINE, ctx.wine!.loadExe, ...args, "-s", winePath(stopfile)];
  const env = peer.platform === "wine" ? ctx.wine!.env : undefined;
  const client = spawnLogged(argv, `${BENCH_CACHE}/logs/${peer.id}-idle.log`, { env, cpus, cwd: ROOT });
  try {
    await waitForLine(client, /^ready/m, 120_000, "the idle clients");
    await new Promise((r) => setTimeout(r, 200)); // let the server finish arming its reads
    const kib = treeRssKiB(pid);
    Deno.writeTextFileSync(stopfile, "");
    await finish(client, 30_000, "the idle clients");
    return kib / 1024;
  } finally {
    await kill(client);
  }
}

/**
 * Every figure of one peer in one placement, for run `run`. A failing figure is recorded and the
 * next one still measured while the server lives; a server that does not start throws.
 */
async function measure(ctx: Context, peer: Peer, placement: Placement, run: number) {
  const cpus = placement === "pinned" ? "0" : undefined;
  if (peer.platform === "wine") {
    const all = `0-${navigator.hardwareConcurrency - 1}`;
    for (const pid of wineserverPids(ctx.wine!.prefix)) await pin(pid, cpus ?? all);
  }
  type Figure = [Metric, (address: string, pid: number) => Promise<{ value: number; cost?: Cost }>];
  const serving = async (mode: ServerMode, figures: Figure[]) => {
    let started: Awaited<ReturnType<typeof startServer>> | null = null;
    let alive = false;
    try {
      for (const [metric, take] of figures) {
        // A fresh server after a failed figure: one that stalled may stay broken (Deno's node:net pipe
        // server loses its pipe after more than four clients), and the next figure deserves its own.
        if (!started) {
          started = await startServer(ctx, peer, mode, cpus);
          alive = true;
          started.server.status.then(() => alive = false);
        }
        const { server, address } = started;
        if (!alive) {
          throw new Error(`${peer.label} server exited:\n${Deno.readTextFileSync(server.log).slice(-800)}`);
        }
        try {
          ctx.results.samples.push({
            placement,
            peer: peer.id,
            metric,
            run,
            ...await take(address, server.pid),
          });
        } catch (error) {
          const message = error instanceof Stalled
            ? `stalls (${error.message})`
            : error instanceof Error
            ? error.message
            : String(error);
          log(`${peer.id} ${metric} failed: ${message}`);
          const key = errorKey(placement, peer.id, metric);
          if (!ctx.results.errors.has(key)) ctx.results.errors.set(key, message);
          await kill(server);
          started = null;
        }
      }
    } finally {
      if (started) await kill(started.server);
    }
  };
  const rate = (args: string[]) => async (address: string, pid: number) => {
    const { rate, cost } = await load(ctx, peer, address, args, cpus, pid);
    return { value: rate, cost };
  };
  const rss: Figure = [
    "rss",
    async (address, pid) => ({ value: await idleRss(ctx, peer, address, pid, cpus) }),
  ];
  const rtt1: Figure = ["rtt1", rate(["-t", "rtt", "-c", "1"])];
  const rtt16: Figure = ["rtt16", rate(["-t", "rtt", "-c", `${CLIENTS}`])];
  const conn: Figure = ["conn", rate(["-t", "conn", "-c", "1"])];
  // Peers that serve only a few clients: the extra client count, and with --quick one client only.
  const replyFigures: Figure[] = peer.echoOnly
    ? []
    : !peer.fewClients
    ? [rss, rtt1, rtt16, conn]
    : ctx.settings.quick
    ? [rtt1, conn]
    : [rtt1, conn, ["rttFew", rate(["-t", "rtt", "-c", `${FEW_CLIENTS}`])], rtt16, rss];
  if (replyFigures.length) await serving("reply", replyFigures);
  await serving("echo", [
    [
      "thr",
      async (address, pid) => {
        const thr = ["-t", "thr", "-c", "1", "-W", `${THR_WARMUP_ROUND_TRIPS}`];
        const { mbps, cost } = await load(ctx, peer, address, thr, cpus, pid);
        return { value: mbps, cost };
      },
    ],
  ]);
}

/**
 * One bench at a time on this machine: runs share the Wine prefix, its wineserver (pinned, then
 * stopped at the end) and the logs — and two runs on the same CPUs would measure each other.
 * The lock (flock) goes with the process, also when it is killed.
 */
async function lockBench(): Promise<Deno.FsFile> {
  const file = await Deno.open(`${BENCH_CACHE}/bench.lock`, { create: true, write: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const waited = setTimeout(() => log("another bench run holds the lock: waiting (at most 30 min)"), 1000);
  const timeout = new Promise<never>((_, reject) =>
    timer = setTimeout(() => reject(new Error("Another bench run held the lock for 30 min")), 30 * 60_000)
  );
  try {
    await Promise.race([file.lock(true), timeout]);
  } finally {
    clearTimeout(timer);
    clearTimeout(waited);
  }
  return file;
}

async function prepare(settings: Settings, notes: string[]) {
  let linux: LinuxTools | null = null, wine: WineTools | null = null;
  linux = await prepareLinux(); // the Linux load generator is needed either way
  if (!linux.node) notes.push("Node.js for Linux (`node`) not found: its peer is skipped.");
  if (settings.platforms.includes("wine")) {
    try {
      wine = await prepareWine();
    } catch (error) {
      if (!(error instanceof WineUnavailable)) throw error;
      notes.push(`Windows peers skipped: ${error.message}`);
    }
  }
  return { linux, wine };
}

function render(
  ctx: Context,
  peers: Peer[],
  machine: string[],
  notes: string[],
  started: Date,
  args: string[],
): string {
  const { settings } = ctx;
  const placementTitle = {
    pinned: "server, client and wineserver on CPU 0 (`taskset -c 0`)",
    unpinned: "the scheduler places every process",
  };
  const sections = [
    "# namedpipe benchmarks",
    "",
    `\`${["deno task bench", ...args].join(" ")}\`, ${started.toISOString().slice(0, 16)} UTC: ` +
    `${settings.runs} run(s), each figure measured for ${settings.duration} s after a ${settings.warmup} s ` +
    "warm-up, peers interleaved within every run. Each cell: median (min–max over runs) and the ratio to the " +
    "native C server of the same platform (median of per-run ratios; for memory, higher means more). " +
    "How each figure is taken and how each peer is framed: bench/README.md.",
    "",
    "## Machine",
    "",
    ...machine.map((m) => `- ${m}`),
    ...(notes.length ? ["", ...notes.map((n) => `> ${n}`)] : []),
  ];
  const titles = { linux: "Linux: Unix domain sockets", wine: "Windows named pipes, under Wine" };
  for (const platform of settings.platforms) {
    if (!peers.some((p) => p.platform === platform)) continue;
    sections.push("", `## ${titles[platform]}`);
    sections.push("", settings.placements.map((p) => `${p}: ${placementTitle[p]}`).join("; ") + ".", "");
    sections.push(
      table(ctx.results, peers, platform, settings.placements, {
        clients: CLIENTS,
        idle: settings.idle,
        few: FEW_CLIENTS,
      }),
    );
    sections.push(
      "",
      "What each server spent per operation while measured (median over the runs): CPU time of the server " +
        "process, all its threads (`/proc/PID/task/*/schedstat`), its ratio to the C server's, and context " +
        "switches (cs); under Wine also the wineserver's CPU time.",
      "",
      costTable(ctx.results, peers, platform, settings.placements),
    );
  }
  return sections.join("\n") + "\n";
}

async function main(args: string[]): Promise<number> {
  const settings = parse(args);
  if (!settings) {
    console.log(USAGE);
    return 0;
  }
  if (Deno.build.os !== "linux") {
    // The Windows peers run under Wine from Linux; a native Windows bench is not written yet.
    console.error("deno task bench runs on Linux only (the Windows path is measured under Wine): skipped");
    return 0;
  }
  const notes: string[] = [];
  Deno.mkdirSync(BENCH_CACHE, { recursive: true });
  using _lock = await lockBench();
  const started = new Date();
  try {
    Deno.removeSync(`${BENCH_CACHE}/logs`, { recursive: true }); // the last run's logs only
  } catch {
    // None yet.
  }
  Deno.mkdirSync(`${BENCH_CACHE}/logs`, { recursive: true });
  const { linux, wine } = await prepare(settings, notes);
  const ctx: Context = {
    settings,
    linux,
    wine,
    results: { samples: [], errors: new Map() },
    tmp: Deno.makeTempDirSync({ prefix: "namedpipe-bench-" }),
    serial: 0,
  };
  // Once, whether the run ends or a signal ends it first.
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    cleaning ??= (async () => {
      await killAll();
      if (wine) await stopWine(wine);
      Deno.removeSync(ctx.tmp, { recursive: true });
    })();
  let interrupted = false;
  const onSignal = async () => {
    log("interrupted: stopping every server, writing no report");
    interrupted = true;
    await cleanup(); // the measurement in flight fails at once; the loop below then stops
    setTimeout(() => Deno.exit(130), 10_000).unref?.();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const peers = [
      ...(settings.platforms.includes("linux") && linux ? linuxPeers(linux) : []),
      ...(wine ? winePeers(wine, WINE) : []),
    ].filter((p) => !settings.peers || settings.peers.includes(p.id));
    for (let run = 0; run < settings.runs; run++) {
      for (const placement of settings.placements) {
        // Rotate the order every run so no peer always follows the same one.
        const order = peers.map((_, i) => peers[(i + run) % peers.length]);
        for (const peer of order) {
          if (interrupted) return 130;
          const key = errorKey(placement, peer.id, "server");
          if (ctx.results.errors.has(key)) continue; // its server failed in this placement: do not wait on it again
          log(`run ${run + 1}/${settings.runs}, ${placement}: ${peer.id}`);
          const attempt = () => measure(ctx, peer, placement, run).then(() => "", messageOf);
          let message = await attempt();
          // Under Wine a server can lose its wineserver while it starts ("wine client error:0: recvmsg:
          // Connection reset by peer", seen once in CI): a server that never got ready is started once
          // more; one that fails again, or fails once measured, is a failure.
          if (message.includes("before it was ready")) {
            log(`${peer.id} did not start, once more: ${message}`);
            message = await attempt();
          }
          if (message) {
            log(`${peer.id} failed: ${message}`);
            ctx.results.errors.set(key, message);
          }
        }
      }
    }
    if (interrupted) return 130;
    // The relay rows (bench/relay.ts): Linux only, whatever --peers says.
    const relay = settings.platforms.includes("linux")
      ? await relayBench({
        ...settings,
        load: linux.load,
        seqpacketServer: linux.seqpacketServer,
        tmp: ctx.tmp,
      })
      : "";
    const report = render(ctx, peers, await describeMachine(wine, linux), notes, started, args) +
      (relay && `\n${relay}`);
    Deno.writeTextFileSync(settings.out, report);
    // Formatted like the rest of the repository, so `deno fmt --check` passes on the committed file.
    await new Deno.Command(Deno.execPath(), {
      args: ["fmt", "--quiet", settings.out],
      stdout: "null",
      stderr: "null",
    })
      .output();
    console.log(Deno.readTextFileSync(settings.out));
    Deno.writeTextFileSync(`${BENCH_CACHE}/last-samples.json`, JSON.stringify(ctx.results.samples, null, 1));
    log(`report written to ${settings.out}`);
    // A peer that failed is a failure, also for CI smoke; a stall is a finding about that peer.
    return [...ctx.results.errors.values()].some((e) => !e.startsWith("stalls")) ? 1 : 0;
  } finally {
    await cleanup();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
