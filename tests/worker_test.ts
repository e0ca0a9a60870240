/**
 * Pipes refuse to run inside a Worker: a Worker can be terminated while the kernel still owns an
 * operation's OVERLAPPED and buffer (Windows) or a blocking `epoll_wait` writes into its event array
 * (Linux), and nothing would keep that memory alive. Both backends say so with the same error.
 *
 * @module
 */
import assert from "node:assert/strict";
import { within } from "./_pipes.ts";

Deno.test("listen() and connect() in a Worker fail at once with NotSupported saying why", async () => {
  const worker = new Worker(new URL("./fixtures/worker_pipes.ts", import.meta.url), { type: "module" });
  try {
    const results = await within(
      new Promise<{ call: string; error?: { name: string; message: string } }[]>((resolve, reject) => {
        worker.onmessage = (event) => resolve(event.data);
        worker.onerror = (event) => {
          event.preventDefault();
          reject(new Error(`the worker failed: ${event.message}`));
        };
      }),
      20_000,
      "the worker's report",
    );
    assert.deepEqual(results.map((r) => r.call), ["listen", "connect"]);
    for (const { call, error } of results) {
      assert.ok(error, `${call}() in a Worker succeeded`);
      assert.equal(error.name, "NotSupported", `${call}: ${error.name}: ${error.message}`);
      assert.match(error.message, /Worker/);
    }
  } finally {
    worker.terminate();
  }
});
