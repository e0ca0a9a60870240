/**
 * The report of `deno task bench`: per platform and CPU placement, one Markdown table whose cells
 * are the median of the runs, their spread (min–max) and the ratio to the native C server — the
 * median of the per-run ratios, so drift between runs cancels out.
 *
 * @module
 */
import type { Peer, Platform } from "./peers.ts";

export type Metric = "rtt1" | "rtt16" | "thr" | "conn" | "rss" | "rttFew";
export type Placement = "pinned" | "unpinned";

/** What the server spent per operation (round trip, or connect) while a figure was measured. */
export interface Cost {
  /** CPU time of the server process, every thread, µs per operation. */
  cpuUs: number;
  /** Its context switches per operation. */
  switches: number;
  /** Under Wine: the wineserver's CPU time, µs per operation (it does part of every pipe call). */
  wineserverUs?: number;
}

/** One figure of one run. */
export interface Sample {
  placement: Placement;
  peer: string;
  metric: Metric;
  run: number;
  value: number;
  cost?: Cost;
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
    rttFew: "round trips/s",
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
    const error = results.errors.get(errorKey(placement, peer.id, metric)) ??
      results.errors.get(errorKey(placement, peer.id, "server"));
    return error === undefined ? "–" : error.startsWith("stalls") ? "stalls" : "failed";
  }
  let text = format(median(values));
  if (values.length > 1) text += ` (${format(Math.min(...values))}–${format(Math.max(...values))})`;
  if (ratios.length) text += ` ${median(ratios).toFixed(2)}×`;
  return text;
}

/** The peers a user would pick instead of namedpipe: neither a C server nor namedpipe itself. */
function isAlternative(peer: Peer): boolean {
  return !peer.baseline && !peer.id.includes("-namedpipe") && !peer.id.includes("-c-");
}

/**
 * The targets for namedpipe, from the medians: at least 0.8x the C server's round trips (1 and 16
 * clients), at least 0.9x its throughput, and at least the best alternative peer on every figure
 * (Node, Deno; for memory: at most).
 */
function targets(results: Results, placement: Placement, mine: Peer[], baseline: Peer | undefined): string {
  const namedpipe = mine.find((p) => p.id.endsWith("-namedpipe"));
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
  const ahead = (["rtt1", "rtt16", "thr", "conn", "rss"] as const).flatMap((metric) => {
    const ours = figure(results, placement, namedpipe, baseline, metric).values;
    if (!ours.length) return [];
    // Memory: less is better.
    const best = bestAlternative(results, placement, mine, metric);
    if (!best) return [];
    const ok = metric === "rss" ? median(ours) <= best.value : median(ours) >= best.value;
    return [`${names[metric]} ${(median(ours) / best.value).toFixed(2)}× of ${best.peer.label} ${mark(ok)}`];
  });
  const lines = [
    ...(ofC.length ? [`- against C: ${ofC.join(", ")}`] : []),
    ...(ahead.length ? [`- against the best alternative (medians): ${ahead.join("; ")}`] : []),
  ];
  return lines.length ? ["namedpipe targets:", "", ...lines].join("\n") : "";
}

/** The best alternative's median of a figure (more, or for memory less, is better). */
function bestAlternative(results: Results, placement: Placement, mine: Peer[], metric: Metric) {
  let best: { peer: Peer; value: number } | null = null;
  for (const peer of mine.filter(isAlternative)) {
    const values = figure(results, placement, peer, undefined, metric).values;
    if (!values.length) continue;
    const value = median(values);
    if (!best || (metric === "rss" ? value < best.value : value > best.value)) best = { peer, value };
  }
  return best;
}

/**
 * One Markdown table for a platform: a column per figure and placement, side by side. namedpipe's
 * cells also carry the ratio of its median to the best alternative's (for memory, higher is more).
 */
export function table(
  results: Results,
  peers: Peer[],
  platform: Platform,
  placements: Placement[],
  settings: { clients: number; idle: number; few: number },
): string {
  const mine = peers.filter((p) => p.platform === platform);
  const baseline = mine.find((p) => p.baseline);
  const metrics: Metric[] = ["rtt1", "rtt16", "thr", "conn", "rss"];
  const columns = metrics.flatMap((metric) => placements.map((placement) => ({ metric, placement })));
  const ourCell = (p: Peer, metric: Metric, placement: Placement) => {
    const text = cell(results, placement, p, baseline, metric);
    const values = figure(results, placement, p, baseline, metric).values;
    const best = bestAlternative(results, placement, mine, metric);
    if (!p.id.endsWith("-namedpipe") || !values.length || !best) return text;
    return `${text}, ${(median(values) / best.value).toFixed(2)}× best`;
  };
  const rows = [
    `| server | ${
      columns.map(({ metric, placement }) =>
        `${metricTitle(metric, settings.clients, settings.idle)}, ${placement}`
      ).join(" | ")
    } |`,
    `|---|${columns.map(() => "---:").join("|")}|`,
    ...mine.map((p) =>
      `| ${p.label} | ${columns.map(({ metric, placement }) => ourCell(p, metric, placement)).join(" | ")} |`
    ),
  ];
  const notes = placements.map((placement) => notesFor(results, mine, baseline, placement, settings));
  return [...rows, ...notes.flatMap((n) => n ? ["", n] : [])].join("\n");
}

/** Under the table, per placement: the few-clients figures, the targets and what failed. */
function notesFor(
  results: Results,
  mine: Peer[],
  baseline: Peer | undefined,
  placement: Placement,
  settings: { few: number },
): string {
  const errors = mine.flatMap((p) =>
    [...results.errors].filter(([key]) => key.startsWith(errorKey(placement, p.id, "" as Metric))).map(
      ([key, error]) =>
        `- ${p.label}, ${key.split(" ")[2]}${error.startsWith("stalls") ? ":" : " failed:"} ${
          error.split("\n").slice(0, 6).join(" ⏎ ")
        }`,
    )
  );
  const few = mine.filter((p) => p.fewClients).map((p) => {
    const text = cell(results, placement, p, baseline, "rttFew");
    return `- ${p.label} with ${settings.few} clients: ${text}${text === "stalls" ? "" : " round trips/s"}`;
  });
  const goals = targets(results, placement, mine, baseline);
  const body = [
    ...(few.length ? [few.join("\n")] : []),
    ...(goals ? [goals] : []),
    ...(errors.length ? [errors.join("\n")] : []),
  ];
  return body.length ? [`**${placement}**`, "", body.join("\n\n")].join("\n") : "";
}

/**
 * The server's cost per operation, from the same runs as {@linkcode table}: CPU time (every thread)
 * with its ratio to the C server's, context switches, and under Wine the wineserver's CPU time. It
 * says where a figure's time goes: in the server's own work, or in waiting and waking up.
 */
export function costTable(
  results: Results,
  peers: Peer[],
  platform: Platform,
  placements: Placement[],
): string {
  const mine = peers.filter((p) => p.platform === platform);
  const baseline = mine.find((p) => p.baseline);
  const metrics: Metric[] = ["rtt1", "rtt16", "thr", "conn"];
  const costs = (peer: Peer | undefined, metric: Metric, placement: Placement) =>
    results.samples.filter((s) =>
      s.cost && s.placement === placement && s.peer === peer?.id && s.metric === metric
    ).map((s) => s.cost!);
  const cellOf = (peer: Peer, metric: Metric, placement: Placement) => {
    const mineCosts = costs(peer, metric, placement);
    if (!mineCosts.length) return "–";
    const cpu = median(mineCosts.map((c) => c.cpuUs));
    const base = costs(baseline, metric, placement);
    let text = `${format(cpu)} µs`;
    if (base.length && peer !== baseline) text += ` ${(cpu / median(base.map((c) => c.cpuUs))).toFixed(2)}×`;
    const server = mineCosts.flatMap((c) => c.wineserverUs === undefined ? [] : [c.wineserverUs]);
    if (server.length) text += ` + ${format(median(server))} µs wineserver`;
    return `${text}, ${median(mineCosts.map((c) => c.switches)).toFixed(2)} cs`;
  };
  const columns = metrics.flatMap((metric) => placements.map((placement) => ({ metric, placement })));
  const titles: Partial<Record<Metric, string>> = {
    rtt1: "1 client",
    rtt16: "16 clients",
    thr: "64 KiB echo",
    conn: "per connect",
  };
  return [
    `| server | ${columns.map(({ metric, placement }) => `${titles[metric]}, ${placement}`).join(" | ")} |`,
    `|---|${columns.map(() => "---:").join("|")}|`,
    ...mine.map((p) =>
      `| ${p.label} | ${columns.map(({ metric, placement }) => cellOf(p, metric, placement)).join(" | ")} |`
    ),
  ].join("\n");
}
