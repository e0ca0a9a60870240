/**
 * `namedpipe list`: the pipes that exist, found without connecting to any, as a table or JSON.
 *
 * ```ts
 * import { list } from "./list.ts";
 *
 * const found = await list({ pattern: "docker*", json: true });
 * ```
 *
 * @module
 */
import { listPipes } from "../pipe/mod.ts";
import type { PipeInfo } from "../pipe/types.ts";

/** Options of {@linkcode list}. */
export interface ListCommandOptions {
  /** Only names matching this glob (`*`, `?`). */
  pattern?: string;
  /** POSIX: socket paths to look at too. */
  paths?: string[];
  /** One JSON array of {@linkcode PipeInfo} instead of the table. */
  json?: boolean;
  /** Where the output goes. Default `Deno.stdout`. */
  stdout?: { write(p: Uint8Array): Promise<number> };
}

/** The table's columns: header, and the text of a field ("-" where the platform reports none). */
const COLUMNS: [string, (pipe: PipeInfo) => string][] = [
  ["NAME", (p) => p.name],
  ["INSTANCES", (p) => p.instances?.toString() ?? "-"],
  ["MAX", (p) => p.maxInstances?.toString() ?? "-"],
  ["MODE", (p) => p.mode ?? "-"],
  ["OWNER", (p) => p.owner ?? p.uid?.toString() ?? "-"],
  ["PERMS", (p) => p.fileMode === undefined ? "-" : p.fileMode.toString(8).padStart(4, "0")],
  ["PATH", (p) => p.path],
];

/**
 * Print the pipes found.
 * @param options what to look for and how to print it
 * @returns the pipes printed
 */
export async function list(options: ListCommandOptions = {}): Promise<PipeInfo[]> {
  const pipes = await listPipes({ pattern: options.pattern, paths: options.paths });
  const text = options.json ? JSON.stringify(pipes, null, 2) + "\n" : table(pipes);
  const bytes = new TextEncoder().encode(text);
  const stdout = options.stdout ?? Deno.stdout;
  for (let done = 0; done < bytes.length;) done += await stdout.write(bytes.subarray(done));
  return pipes;
}

/** Columns a platform never fills are left out; a name with control characters is escaped. */
function table(pipes: PipeInfo[]): string {
  if (pipes.length === 0) return "";
  const columns = COLUMNS.filter(([header, field]) =>
    header === "NAME" || header === "PATH" || pipes.some((p) => field(p) !== "-")
  );
  const rows = [
    columns.map(([header]) => header),
    ...pipes.map((p) => columns.map(([, field]) => escapeControls(field(p)))),
  ];
  const widths = columns.map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) =>
    row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i])).join("  ")
  )
    .join("\n") + "\n";
}

/** `\x1b` for ESC and the like: a pipe's name must not be able to forge terminal output. */
function escapeControls(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}
