/**
 * Backpressure keeps memory flat: 100 MiB through one byte-mode connection's streams grow the
 * process by under 64 MiB (the README's figure). The bound leaves room for a garbage-collected heap
 * holding both ends and for what earlier test files left; unbounded buffering would grow by the whole
 * 100 MiB on top.
 */
import assert from "node:assert/strict";
import { uniqueName, within } from "./_pipes.ts";
import { streamThrough } from "./fixtures/stream_memory.ts";

const MIB = 1024 * 1024;

Deno.test("streaming 100 MiB through a byte-mode connection keeps memory flat", async () => {
  const result = await within(streamThrough(uniqueName("memory"), 100 * MIB), 300_000, "100 MiB to stream");
  const growth = result.peak - result.baseline;
  console.log(
    `RSS baseline ${(result.baseline / MIB).toFixed(1)} MiB, peak +${(growth / MIB).toFixed(1)} MiB, ` +
      `after ${(result.after / MIB).toFixed(1)} MiB`,
  );
  // The README states this bound. Measured 0-11 MiB after the suite's other files and 36 MiB after
  // the large-message tests (RSS is the whole process's); unbounded buffering would be 100 MiB more.
  assert.ok(growth < 64 * MIB, `memory grew by ${(growth / MIB).toFixed(1)} MiB while streaming 100 MiB`);
});
