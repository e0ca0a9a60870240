/**
 * The stress run's figures per backend and the Markdown table they are printed as.
 *
 * @module
 */

/** What one backend's run measured. */
export interface BackendReport {
  backend: "linux" | "wine";
  /** `library`: tests/stress/echo_server.ts; `cli`: main.ts serve --echo. */
  server: "library" | "cli";
  mode: "quick" | "full";
  connections: number;
  /** Well-behaved round trips, each reply checked byte for byte. */
  messages: number;
  bytes: number;
  /** Faults injected, by kind (in-process hostile clients and killed processes). */
  faults: Record<string, number>;
  /** Errors the faults caused, as the clients saw them (drops, cut writes). */
  expectedErrors: number;
  unexpectedErrors: number;
  /** Clients the server dropped for an oversized message, and clients that vanished on it. */
  serverDropped: number;
  serverVanished: number;
  wrong: number;
  unanswered: number;
  /** The engine's `openHandleCount()` in the server (library server only). */
  handlesBefore?: number;
  handlesAfter?: number;
  /** The load processes' own engine handles: idle and at the end, summed over the phases. */
  clientHandlesIdle: number;
  clientHandlesEnd: number;
  /** `/proc/PID/fd` of the server process (under Wine: Wine's Unix descriptors). */
  fdsBefore?: number;
  fdsAfter?: number;
  /** Heap plus external memory after a GC (library server only). */
  heapBefore?: number;
  heapAfter?: number;
  rssBefore?: number;
  rssAfter?: number;
  rssPeak: number;
  /** RSS at the end of each quarter of the main phase: a native leak shows as a steady climb. */
  rssChurn?: number[];
  serverAlive: boolean;
  /** Passes of the churn in the main phase. */
  passes: number;
  seconds: number;
  failures: string[];
  logDir: string;
}

const MIB = 1024 * 1024;

function mib(bytes: number | undefined): string {
  return bytes !== undefined && Number.isFinite(bytes) ? `${(bytes / MIB).toFixed(1)} MiB` : "-";
}

function count(n: number | undefined): string {
  return n === undefined || !Number.isFinite(n) ? "-" : n.toLocaleString("en-US");
}

/** One table, a column per backend, then the failures (if any). */
export function formatTable(reports: BackendReport[], seed: number): string {
  const faults = (r: BackendReport) => Object.values(r.faults).reduce((a, b) => a + b, 0);
  const faultKinds = [...new Set(reports.flatMap((r) => Object.keys(r.faults)))].sort();
  const rows: [string, (r: BackendReport) => string][] = [
    ["connections", (r) => count(r.connections)],
    ["churn passes", (r) => count(r.passes)],
    ["messages (round trips checked)", (r) => count(r.messages)],
    ["bytes echoed", (r) => mib(r.bytes)],
    ["faults injected", (r) => count(faults(r))],
    ...faultKinds.map((kind): [string, (r: BackendReport) => string] => [
      `↳ ${kind}`, // a fault kind: part of the row above
      (r) => count(r.faults[kind] ?? 0),
    ]),
    [
      "errors seen (server: dropped / vanished)",
      (r) => `${count(r.serverDropped)} / ${count(r.serverVanished)}`,
    ],
    [
      "errors seen (clients: expected / unexpected)",
      (r) => `${count(r.expectedErrors)} / ${count(r.unexpectedErrors)}`,
    ],
    ["**replies wrong**", (r) => `**${count(r.wrong)}**`],
    ["requests unanswered", (r) => count(r.unanswered)],
    ["engine handles before → after", (r) => `${count(r.handlesBefore)} → ${count(r.handlesAfter)}`],
    [
      "descriptors (/proc/PID/fd) before → after",
      (r) => r.fdsBefore === undefined ? "n/a" : `${r.fdsBefore} → ${r.fdsAfter}`,
    ],
    [
      "client engine handles idle → end (load processes)",
      (r) => `${count(r.clientHandlesIdle)} → ${count(r.clientHandlesEnd)}`,
    ],
    ["heap + external before → after (after GC)", (r) => `${mib(r.heapBefore)} → ${mib(r.heapAfter)}`],
    ["RSS before → after", (r) => `${mib(r.rssBefore)} → ${mib(r.rssAfter)}`],
    [
      "RSS at each quarter of the churn",
      (r) => (r.rssChurn ?? []).map((n) => mib(n).replace(" MiB", "")).join(", ") + " MiB",
    ],
    ["peak RSS", (r) => mib(r.rssPeak)],
    ["server still serving", (r) => r.serverAlive ? "yes" : "**no**"],
    ["wall time", (r) => `${r.seconds.toFixed(1)} s`],
    ["result", (r) => r.failures.length ? "**FAIL**" : "pass"],
  ];
  const header = [
    "",
    ...reports.map((r) =>
      `${r.backend === "wine" ? "Windows (Wine 8)" : "Linux"}, ${r.mode}${
        r.server === "cli" ? ", CLI server" : ""
      }`
    ),
  ];
  const lines = [
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => i === 0 ? "---" : "---:").join("|")}|`,
    ...rows.map(([label, cell]) => `| ${label} | ${reports.map(cell).join(" | ")} |`),
  ];
  lines.push("", `seed ${seed}; logs in ${reports.map((r) => r.logDir).join(", ")}`);
  for (const r of reports) for (const failure of r.failures) lines.push(`FAIL (${r.backend}): ${failure}`);
  return lines.join("\n");
}
