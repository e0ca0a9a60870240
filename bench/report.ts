/**
 * The report of `deno task bench`: per platform and CPU placement, one Markdown table whose cells
 * are the median of the runs, their spread (min–max) and the ratio to the native C server — the
 * median of the per-run ratios, so drift between runs cancels out.
 *
 * @module
 */
import type { Peer, Platform } from "./peers.ts";

export type Metric = "rtt1" | "rtt16" | "thr" | "conn" | "rss";
export type Placement = "pinned" | "unpinned";

/** One figure of one run. */
export interface Sample {
  placement: Placement;
  peer: string;
  metric: Metric;
  run: number;
  value: number;
}

/** What was measured, and what failed (by placement and peer). */
export interface Results {
  samples: Sample[];
  errors: Map<string, string>;
}

/** Errors are kept by placement, peer and figure ("server" when the server itself failed). */
export const errorKey = (placement: Placement, peer: string, what: Metric | "server") =>
  `${placement} ${peer} ${what}`;

function metricTitle(metric: Metric, clients: number, idle: number): string {
  return {
    rtt1: "1 client, round trips/s",
    rtt16: `${clients} clients, round trips/s`,
    thr: "64 KiB echo, MB/s",
    conn: "connects/s",
    rss: `RSS with ${idle.toLocaleString("en-US")} idle, MiB`,
  }[metric];
}

function median(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function format(value: number): string {
  const digits = Math.abs(value) >= 100 ? 0 : 1;
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The runs' values of one figure and their ratios to the baseline's in the same run. */
function figure(
  results: Results,
  placement: Placement,
  peer: Peer,
  baseline: Peer | undefined,
  metric: Metric,
) {
  const mine = results.samples.filter((s) =>
    s.placement === placement && s.peer === peer.id && s.metric === metric
  );
  const ratios = mine.flatMap((s) => {
    const base = results.samples.find((b) =>
      b.placement === placement && b.peer === baseline?.id && b.metric === metric && b.run === s.run
    );
    return base && base.value > 0 ? [s.value / base.value] : [];
  });
  return { values: mine.map((s) => s.value), ratios };
}

function cell(
  results: Results,
  placement: Placement,
  peer: Peer,
  baseline: Peer | undefined,
  metric: Metric,
) {
  const { values, ratios } = figure(results, placement, peer, baseline, metric);
  if (!values.length) {
    const failed = [metric, "server"] as const;
    return failed.some((what) => results.errors.has(errorKey(placement, peer.id, what))) ? "failed" : "–";
  }
  let text = format(median(values));
  if (values.length > 1) text += ` (${format(Math.min(...values))}–${format(Math.max(...values))})`;
  if (ratios.length) text += ` ${median(ratios).toFixed(2)}×`;
  return text;
}

/**
 * The targets for namedpipe, from the medians: at least 0.8x the C server's round trips
 * (1 and 16 clients), at least 0.9x its throughput, and ahead of Node on every figure.
 */
function targets(results: Results, placement: Placement, mine: Peer[], baseline: Peer | undefined): string {
  const namedpipe = mine.find((p) => p.id.endsWith("-namedpipe"));
  const node = mine.find((p) => p.id.endsWith("-node"));
  if (!namedpipe) return "";
  const mark = (ok: boolean) => ok ? "✓" : "✗";
  const names = { rtt1: "1 client", rtt16: "16 clients", thr: "64 KiB", conn: "connects", rss: "memory" };
  const goals = { rtt1: 0.8, rtt16: 0.8, thr: 0.9 };
  const ofC = (["rtt1", "rtt16", "thr"] as const).flatMap((metric) => {
    const { ratios } = figure(results, placement, namedpipe, baseline, metric);
    if (!ratios.length) return [];
    const ratio = median(ratios);
    // Three digits: 0.797 must not read as a met 0.80.
    return [`${names[metric]} ${ratio.toFixed(3)}× (goal ${goals[metric]}) ${mark(ratio >= goals[metric])}`];
  });
  const ahead = !node ? [] : (["rtt1", "rtt16", "thr", "conn", "rss"] as const).flatMap((metric) => {
    const ours = figure(results, placement, namedpipe, baseline, metric).values;
    const theirs = figure(results, placement, node, baseline, metric).values;
    if (!ours.length || !theirs.length) return [];
    // Memory: less is ahead.
    const better = metric === "rss" ? median(ours) <= median(theirs) : median(ours) >= median(theirs);
    return [`${names[metric]} ${mark(better)}`];
  });
  const lines = [
    ...(ofC.length ? [`- against C: ${ofC.join(", ")}`] : []),
    ...(ahead.length ? [`- ahead of Node: ${ahead.join(", ")}`] : []),
  ];
  return lines.length ? ["namedpipe targets:", "", ...lines].join("\n") : "";
}

/** One Markdown table for a platform and a placement. */
export function table(
  results: Results,
  peers: Peer[],
  platform: Platform,
  placement: Placement,
  settings: { clients: number; idle: number },
): string {
  const mine = peers.filter((p) => p.platform === platform);
  const baseline = mine.find((p) => p.baseline);
  const metrics: Metric[] = ["rtt1", "rtt16", "thr", "conn", "rss"];
  const rows = [
    `| server | ${metrics.map((m) => metricTitle(m, settings.clients, settings.idle)).join(" | ")} |`,
    `|---|${metrics.map(() => "---:").join("|")}|`,
    ...mine.map((p) =>
      `| ${p.label} | ${metrics.map((m) => cell(results, placement, p, baseline, m)).join(" | ")} |`
    ),
  ];
  const errors = mine.flatMap((p) =>
    [...results.errors].filter(([key]) => key.startsWith(errorKey(placement, p.id, "" as Metric))).map(
      ([key, error]) =>
        `- ${p.label}, ${key.split(" ")[2]} failed: ${error.split("\n").slice(0, 6).join(" ⏎ ")}`,
    )
  );
  const goals = targets(results, placement, mine, baseline);
  return [...rows, ...(goals ? ["", goals] : []), ...(errors.length ? ["", ...errors] : [])].join("\n");
}
