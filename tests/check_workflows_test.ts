/**
 * The workflow check of `deno task check` (`tools/check_workflows.ts`): a `deno task` a workflow
 * runs must exist in `deno.json`. (The schema half is the npm validator's; `deno task check` runs it.
 * `cli_helpers_test.ts` checks the shipped workflows themselves.)
 *
 * @module
 */
import assert from "node:assert/strict";
import { unknownTasks } from "../tools/check_workflows.ts";

Deno.test("the workflow check names a deno task that deno.json does not define, with its line", () => {
  const workflow = [
    "steps:",
    "  - run: deno task check",
    "  - run: deno task tests # a typo",
    "  # deno task nothing: a comment is not a command",
    '  - run: deno  task "test:host" && deno task stress --quick',
  ].join("\n");
  assert.deepEqual(unknownTasks(workflow, ["check", "test", "stress"]), [
    { line: 3, task: "tests" },
    { line: 5, task: "test:host" },
  ]);
  assert.deepEqual(unknownTasks(workflow, ["check", "tests", "test:host", "stress"]), []);
});
