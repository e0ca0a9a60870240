import assert from "node:assert/strict";
import { parseDenoTestSummary } from "./summary.ts";
import { patchVirtualAlloc2 } from "./wine/windows_deno.ts";

Deno.test("the test summary parser reads passed, failed and ignored counts", () => {
  const output = "running 3 tests\nok | 12 passed (3 steps) | 1 failed | 2 ignored (3s)\n";
  assert.deepEqual(parseDenoTestSummary("x", output), { name: "x", passed: 12, failed: 1, skipped: 2 });
  assert.equal(parseDenoTestSummary("x", "error: Module not found"), undefined);
});

Deno.test("the deno.exe patch replaces exactly one VirtualAlloc2 and refuses otherwise", () => {
  const enc = new TextEncoder();
  const patched = patchVirtualAlloc2(enc.encode("..VirtualAlloc2\0..VirtualAlloc\0"));
  assert.equal(new TextDecoder().decode(patched), "..VirtualAllocZ\0..VirtualAlloc\0");
  assert.throws(() => patchVirtualAlloc2(enc.encode("VirtualAlloc2\0VirtualAlloc2\0")), /2 times/);
  assert.throws(() => patchVirtualAlloc2(enc.encode("nothing")), /0 times/);
});
