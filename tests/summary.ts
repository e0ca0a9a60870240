/**
 * Reads the closing line of `deno test` (`ok | 12 passed | 0 failed | 1 ignored (3s)`).
 *
 * @module
 */

/** Counts of one suite run; `null` counts when the runner printed no closing line. */
export interface SuiteResult {
  name: string;
  passed: number;
  failed: number;
  skipped: number;
  /** Why the whole suite was skipped or could not run. */
  note?: string;
}

/** Parse the last `deno test` summary line in `output`. */
export function parseDenoTestSummary(name: string, output: string): SuiteResult | undefined {
  // deno test prints the summary after all results; colors are off (NO_COLOR) but strip them anyway.
  const plain = output.replace(new RegExp(String.fromCharCode(27) + "\\[[0-9;]*m", "g"), "");
  const lines = [
    ...plain.matchAll(
      /^(?:ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?(?: \| (\d+) ignored)?/gm,
    ),
  ];
  const last = lines.at(-1);
  if (!last) return undefined;
  return { name, passed: Number(last[1]), failed: Number(last[3]), skipped: Number(last[5] ?? 0) };
}
