/**
 * The relay rows of `deno task bench` (Linux): MB/s through `namedpipe relay` against socat, both
 * relaying Unix socket to Unix socket with the same framing (`SOCK_SEQPACKET` on both sides, so both
 * keep message boundaries), to the C seqpacket echo server; and the same load sent to that server
 * directly, for the cost of any relay. `run.ts` calls {@linkcode relayBench} once and appends the
 * section it returns to the report.
 *
 * ```sh
 * deno run -A bench/relay.ts --runs 3 --duration 1.5     # just these rows
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { finish, kill, spawnLogged, waitForLine } from "./procs.ts";
import { BENCH_CACHE, prepareLinux } from "./setup.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** What {@linkcode relayBench} needs from the bench run. */
export interface RelayBenchSettings {
  runs: number;
  /** Seconds each figure is measured, after `warmup` seconds. */
  duration: number;
  warmup: number;
  /** The load generator and the C seqpacket server (`prepareLinux()`). */
  load: string;
  seqpacketServer: string;
  /** A scratch directory for the sockets. */
  tmp: string;
}

/** The rows, in table order. */
const ROWS = [
  { id: "direct", label: "no relay: the load generator straight to the C echo server" },
  { id: "socat", label: "`socat -b 65536 UNIX-LISTEN:…,socktype=5,fork UNIX-CONNECT:…,socktype=5`" },
  { id: "relay", label: "`namedpipe relay unix-listen:…,mode=message unix:…,mode=message`" },
] as const;
type RowId = typeof ROWS[number]["id"];

function log(message: string) {
  console.error(`[bench] ${message}`);
}

/** Wait until a socket file exists (socat prints no ready line). */
async function socketAppears(path: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (true) {
    try {
      if (Deno.statSync(path).isSocket) return;
    } catch {
      // Not yet.
    }
    if (Date.now() > deadline) throw new Error(`${path} did not appear within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Measure the relay rows and return them as a Markdown section (failures become notes in it).
 * @param settings runs, durations, tools, scratch directory
 * @returns the section, starting with its `##` title
 */
export async function relayBench(settings: RelayBenchSettings): Promise<string> {
  const samples = new Map<RowId, number[]>(ROWS.map((row) => [row.id, []]));
  const errors = new Map<RowId, string>();
  const logs = `${BENCH_CACHE}/logs`;
  Deno.mkdirSync(logs, { recursive: true });
  let serial = 0;
  const thr = async (address: string): Promise<number> => {
    const client = spawnLogged([
      settings.load,
      "-p",
      address,
      "-m",
      "-t",
      "thr",
      "-c",
      "1",
      "-d",
      `${settings.duration}`,
      "-w",
      `${settings.warmup}`,
    ], `${logs}/relay-client.log`);
    const line = await finish(client, (settings.duration + settings.warmup + 60) * 1000, "load -t thr");
    return Number(/mbps=([\d.]+)/.exec(line)?.[1]);
  };
  for (let run = 0; run < settings.runs; run++) {
    const back = `${settings.tmp}/relay-back-${run}.sock`;
    const server = spawnLogged([settings.seqpacketServer, back, "echo"], `${logs}/relay-server.log`);
    try {
      await waitForLine(server, /^ready/m, 30_000, "the C echo server");
      for (const { id } of ROWS) {
        if (errors.has(id)) continue;
        log(`relay run ${run + 1}/${settings.runs}: ${id}`);
        const front = `${settings.tmp}/relay-front-${serial++}.sock`;
        const argv = id === "socat"
          ? [
            "socat",
            "-b",
            "65536",
            `UNIX-LISTEN:${front},socktype=5,fork`,
            `UNIX-CONNECT:${back},socktype=5`,
          ]
          : id === "relay"
          ? [
            Deno.execPath(),
            "run",
            "-A",
            `${ROOT}/main.ts`,
            "relay",
            `unix-listen:${front},mode=message`,
            `unix:${back},mode=message`,
          ]
          : null;
        const relay = argv ? spawnLogged(argv, `${logs}/relay-${id}.log`, { cwd: ROOT }) : null;
        try {
          if (relay && id === "relay") await waitForLine(relay, /Listening on/, 60_000, "namedpipe relay");
          if (relay && id === "socat") await socketAppears(front, 10_000);
          samples.get(id)!.push(await thr(relay ? front : back));
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          log(`relay ${id} failed: ${message}`);
          errors.set(id, message.split("\n")[0]);
        } finally {
          if (relay) await kill(relay);
        }
      }
    } finally {
      await kill(server);
    }
  }
  return render(settings, samples, errors);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function render(
  settings: RelayBenchSettings,
  samples: Map<RowId, number[]>,
  errors: Map<RowId, string>,
): string {
  const socat = samples.get("socat")!;
  const lines = [
    "## Relay: Unix socket to Unix socket (Linux)",
    "",
    "One connection echoing 64 KiB messages through a relay to the C `SOCK_SEQPACKET` echo server; MB/s in one " +
    `direction, median (min–max) over ${settings.runs} run(s), unpinned. Both relays use the same framing: ` +
    "seqpacket on both sides, one message per read (socat needs `-b 65536` not to cut 64 KiB messages). " +
    "With a Unix socket on both sides, `namedpipe relay` copies on its copy thread (one blocking " +
    "`epoll_wait` loop, as socat), not through the event loop.",
    "",
    "| path | MB/s | vs socat |",
    "| --- | --- | --- |",
  ];
  for (const { id, label } of ROWS) {
    const values = samples.get(id)!;
    if (values.length === 0) {
      lines.push(`| ${label} | failed: ${errors.get(id) ?? "no sample"} | |`);
      continue;
    }
    const spread = values.length > 1
      ? ` (${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)})`
      : "";
    const ratio = socat.length ? `${(median(values) / median(socat)).toFixed(2)}×` : "";
    lines.push(`| ${label} | ${median(values).toFixed(0)}${spread} | ${ratio} |`);
  }
  if (errors.size) lines.push("", ...[...errors].map(([id, message]) => `> ${id}: ${message}`));
  return lines.join("\n") + "\n";
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { runs: { type: "string" }, duration: { type: "string" } },
  });
  const linux = await prepareLinux();
  const tmp = Deno.makeTempDirSync({ prefix: "namedpipe-relay-bench-" });
  try {
    console.log(
      await relayBench({
        runs: Number(values.runs ?? 1),
        duration: Number(values.duration ?? 1),
        warmup: 0.3,
        load: linux.load,
        seqpacketServer: linux.seqpacketServer,
        tmp,
      }),
    );
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
}
