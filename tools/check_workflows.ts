/**
 * Part of `deno task check`: the GitHub workflows are the only path to the released .exe and cannot
 * run on a Linux build machine, so check them here. Each `.github/workflows/*.yml` is validated
 * against the workflow schema by `npm:@action-validator/cli` (offline, pinned in `deno.lock`), and
 * every `deno task NAME` a workflow runs must be a task `deno.json` defines.
 *
 * ```sh
 * deno run -A tools/check_workflows.ts              # every workflow of this checkout
 * deno run -A tools/check_workflows.ts FILE.yml...  # only these files
 * ```
 *
 * @module
 */

const ROOT = new URL("../", import.meta.url);
const VALIDATOR = "npm:@action-validator/cli@0.6.0";

/** Each `deno task NAME` in `text` whose NAME is not in `tasks`, with its 1-based line number. */
export function unknownTasks(text: string, tasks: Iterable<string>): { line: number; task: string }[] {
  const known = new Set(tasks);
  const found: { line: number; task: string }[] = [];
  text.split("\n").forEach((line, i) => {
    // A comment is not a command; a task name is what `deno task` would take as its first argument.
    const code = line.replace(/(^|\s)#.*$/, "");
    for (const match of code.matchAll(/\bdeno\s+task\s+["']?([^\s"'`;&|)]+)/g)) {
      if (!known.has(match[1])) found.push({ line: i + 1, task: match[1] });
    }
  });
  return found;
}

/** The workflow files of this checkout. */
function workflowFiles(): string[] {
  const dir = new URL(".github/workflows/", ROOT);
  const files = [...Deno.readDirSync(dir)]
    .filter((entry) => entry.isFile && /\.ya?ml$/.test(entry.name))
    .map((entry) => decodeURIComponent(new URL(entry.name, dir).pathname));
  return files.sort();
}

async function validate(file: string): Promise<string | null> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--frozen", VALIDATOR, file],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (output.success) return null;
  const text = new TextDecoder().decode(output.stderr) + new TextDecoder().decode(output.stdout);
  // The validator prints a JSON report; the `detail` lines say what is wrong and where.
  const details = [...text.matchAll(/"detail": "([^"]*)",\s*"path": "([^"]*)"/g)]
    .map((m) => `${m[2]}: ${m[1]}`);
  return [...new Set(details)].join("\n  ") || text.trim();
}

async function main(args: string[]): Promise<number> {
  const config = JSON.parse(Deno.readTextFileSync(new URL("deno.json", ROOT)));
  const tasks = Object.keys(config.tasks ?? {});
  const files = args.length ? args : workflowFiles();
  let failed = 0;
  for (const file of files) {
    const problems: string[] = [];
    const invalid = await validate(file);
    if (invalid) problems.push(`not a valid workflow:\n  ${invalid}`);
    for (const { line, task } of unknownTasks(Deno.readTextFileSync(file), tasks)) {
      problems.push(`line ${line}: "deno task ${task}" is not a task in deno.json (${tasks.join(", ")})`);
    }
    if (problems.length) {
      failed++;
      for (const problem of problems) console.error(`${file}: ${problem}`);
    }
  }
  console.error(`workflows: ${files.length - failed} of ${files.length} valid`);
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
