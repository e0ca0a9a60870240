/**
 * The leak checks are only as good as what they count. These tests run a deliberately leaking build
 * (the test-only hook `NAMEDPIPE_TEST_ONLY_LEAK_FDS=1`, which makes the POSIX backend's close skip
 * `close(2)` while everything else behaves) and show that the OS-level checks catch it where the
 * engine's own count cannot. Linux only: the hook is in the POSIX backend, and the counts come from
 * `/proc`; the Windows counterpart, `GetProcessHandleCount`, is a stub under Wine.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import { pattern, uniqueName, within } from "./_pipes.ts";
import { descriptorsOf, OS_SLACK } from "./_os_handles.ts";

const ignore = Deno.build.os !== "linux";
const HOOK = "NAMEDPIPE_TEST_ONLY_LEAK_FDS";
const path = (url: URL) => decodeURIComponent(url.pathname);
const CONFIG = path(new URL("../deno.json", import.meta.url));
const MAIN = path(new URL("../main.ts", import.meta.url));
const decoder = new TextDecoder();

Deno.test({
  name: "a close that skips close(2) fails the cycle tests' OS-level check, not their engine count",
  ignore,
  async fn() {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "test",
        "-A",
        "--no-check", // this run has type-checked them
        "--config",
        CONFIG,
        path(new URL("./lifecycle_test.ts", import.meta.url)),
        path(new URL("./posix_test.ts", import.meta.url)),
        "--filter",
        "1,000 connect",
      ],
      env: { [HOOK]: "1", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = decoder.decode(output.stdout) + decoder.decode(output.stderr);
    assert.equal(output.code, 1, text);
    assert.match(text, /FAILED \| 0 passed \| 2 failed/, text);
    // Each failed on the OS count; the engine's count (an assert.equal before it) came back.
    const leaks = [...text.matchAll(/^error: Error: (.*): \/proc\/self\/fd grew from (\d+) to (\d+)/gm)];
    assert.equal(leaks.length, 2, text);
    for (const [, what, before, after] of leaks) {
      assert.ok(Number(after) - Number(before) >= 1000, `${what}: ${before} → ${after}`);
    }
    assert.doesNotMatch(text, /AssertionError/, "the engine's count was fooled, as expected");
  },
});

/** `main.ts serve --echo` in a child; resolves once it answers. */
async function startServer(name: string, env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, MAIN, "serve", "--echo", "--name", name, "-q"],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  await roundTrip(name, 60_000); // Deno starts slowly on a loaded machine
  return child;
}

async function roundTrip(name: string, timeout = 5000) {
  await using client = await connect({ name, timeout });
  await client.writeMessage(pattern(9));
  assert.deepEqual(await within(client.readMessage(), 30_000, "the echo"), pattern(9));
}

/** The server's descriptors once they stop falling (it closes its side of each client as it sees it leave). */
async function settledDescriptors(pid: number, floor: number): Promise<number> {
  let last = descriptorsOf(pid);
  for (let i = 0; i < 200 && last > floor + OS_SLACK; i++) {
    await new Promise((r) => setTimeout(r, 100));
    last = descriptorsOf(pid);
  }
  return last;
}

/** Growth of a CLI server child's /proc/PID/fd over 200 connect/echo/close cycles. */
async function serverGrowth(env: Record<string, string>): Promise<{ before: number; after: number }> {
  const name = uniqueName("leakcli");
  const child = await startServer(name, env);
  try {
    const before = descriptorsOf(child.pid);
    for (let i = 0; i < 200; i++) await roundTrip(name);
    return { before, after: await settledDescriptors(child.pid, before) };
  } finally {
    child.kill("SIGTERM");
    await within(child.status, 20_000, "the server to stop");
  }
}

Deno.test({
  name: "a CLI server's /proc/PID/fd comes back after 200 client cycles, and the leaking build's does not",
  ignore,
  async fn() {
    const clean = await serverGrowth({});
    assert.ok(clean.after - clean.before <= OS_SLACK, `${clean.before} → ${clean.after} descriptors`);
    const leaking = await serverGrowth({ [HOOK]: "1" });
    assert.ok(leaking.after - leaking.before >= 200, `leaking build: ${leaking.before} → ${leaking.after}`);
  },
});
