/**
 * Remote pipe paths (`\\SERVER\pipe\NAME`): `CreateFileW`, `SetNamedPipeHandleState` and
 * `PeekNamedPipe` on them block the JS thread for the network's timeout, so `connect()` refuses them
 * unless the caller passes `allowRemote: true`, and refuses at once, without touching the network.
 * Windows only: POSIX has no remote pipes (its `pipePath` rejects a server name).
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, waitForPipe } from "../mod.ts";

const ignore = Deno.build.os !== "windows";

Deno.test({
  name:
    "connect() and waitForPipe() refuse a remote server at once with NotSupported (Windows: POSIX has none)",
  ignore,
  async fn() {
    // A 10 ms interval timer must keep running: a call that blocks the JS thread would stall it.
    let last = performance.now();
    let worstGap = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      worstGap = Math.max(worstGap, now - last);
      last = now;
    }, 10);
    try {
      const attempts: [string, () => Promise<unknown>][] = [
        ["a full path", () => connect({ name: "\\\\nonexistent-host\\pipe\\np_remote", timeout: 200 })],
        ["the server option", () => connect({ name: "np_remote", server: "nonexistent-host", timeout: 200 })],
        ["waitForPipe", () => waitForPipe({ name: "\\\\nonexistent-host\\pipe\\np_remote", timeout: 200 })],
      ];
      for (const [what, attempt] of attempts) {
        const started = performance.now();
        const error = await attempt().then(() => undefined, (e) => e);
        const took = performance.now() - started;
        assert.ok(error instanceof Deno.errors.NotSupported, `${what}: ${error}`);
        assert.match(error.message, /remote/);
        assert.ok(took < 1000, `${what} took ${took.toFixed(0)} ms`);
      }
      await new Promise((r) => setTimeout(r, 30));
    } finally {
      clearInterval(timer);
    }
    assert.ok(worstGap < 1000, `the 10 ms timer waited ${worstGap.toFixed(0)} ms`);
  },
});
