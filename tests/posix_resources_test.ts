/**
 * The Linux backend when resources run short: a server out of descriptors keeps listening, and an
 * oversized message costs no buffer of the size limit. Linux-only.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, listen } from "../mod.ts";
import { pattern, uniqueName, within } from "./_pipes.ts";

const ignore = Deno.build.os !== "linux";
const WAIT_MS = 30_000;
const MOD = new URL("../mod.ts", import.meta.url).href;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

Deno.test({
  name: "a server out of descriptors (EMFILE) logs it and goes on accepting once some are free",
  ignore,
  async fn() {
    const name = uniqueName("emfile");
    // The child server, under a lowered RLIMIT_NOFILE, waits until the test's client is in its
    // backlog, takes every descriptor left and starts iterating: the accept fails with EMFILE. The
    // log line reporting it gives the descriptors back (inside the same synchronous step, so that
    // Deno itself never runs out), and the iterator must then accept the client.
    const code = `
      import { configure } from "npm:@logtape/logtape@^2.4.2";
      import { listen } from "${MOD}";
      const hogs = [];
      await configure({
        sinks: {
          stderr: (record) => {
            for (const hog of hogs.splice(0)) hog.close();
            console.error(record.message.map(String).join(""));
          },
        },
        loggers: [
          { category: ["namedpipe"], sinks: ["stderr"], lowestLevel: "error" },
          { category: ["logtape", "meta"], sinks: [], lowestLevel: "fatal" },
        ],
      });
      const listener = listen({ name: "${name}" });
      console.log("listening");
      for await (const _ of Deno.stdin.readable) break;
      try {
        while (true) hogs.push(Deno.openSync("/dev/null"));
      } catch { /* the limit */ }
      for await (const conn of listener) {
        const message = await conn.readMessage();
        await conn.writeMessage(message);
        await conn.close();
        break;
      }
      await listener.close();
      console.log("done");`;
    const child = new Deno.Command("sh", {
      args: ["-c", 'ulimit -n 256 && exec "$0" "$@"', Deno.execPath(), "eval", "--config", CONFIG, code],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let stdout = "";
    let stderr = "";
    const pumps = Promise.all([
      (async () => {
        for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) stdout += text;
      })(),
      (async () => {
        for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) stderr += text;
      })(),
    ]);
    const writer = child.stdin.getWriter();
    try {
      const deadline = Date.now() + WAIT_MS;
      while (!stdout.includes("listening")) {
        assert.ok(Date.now() < deadline, "the server did not start");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await using client = await connect({ name, timeout: WAIT_MS });
      await client.writeMessage(new TextEncoder().encode("after EMFILE"));
      await writer.write(new TextEncoder().encode("go\n"));
      const reply = await within(client.readMessage(), WAIT_MS, "the reply after EMFILE");
      assert.equal(new TextDecoder().decode(reply ?? new Uint8Array()), "after EMFILE");
      const status = await within(child.status, WAIT_MS, "the server to exit");
      await pumps;
      assert.equal(status.code, 0);
      assert.match(stdout, /done/);
      assert.match(stderr, /Cannot accept a client .*too many open files \(24\)/);
    } catch (error) {
      throw new Error(`${error}\nThe server's stderr:\n${stderr}`, { cause: error });
    } finally {
      await writer.close().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status;
      await pumps;
    }
  },
});

/** Whether this process may give a socket a send buffer of `bytes` (root, or a high wmem_max). */
function canSend(bytes: number): boolean {
  if (Deno.build.os !== "linux") return false;
  if (Deno.uid() === 0) return true;
  return Number(Deno.readTextFileSync("/proc/sys/net/core/wmem_max")) >= bytes;
}

/**
 * The largest `SOCK_SEQPACKET` message Linux takes is about 4 MiB plus 17 pages (its linear part
 * must come from one kmalloc), so a limit above the 4 MiB under which a buffer of the limit's size
 * is used at once can only be exceeded by a few KiB.
 */
const LIMIT = 4 * 1024 * 1024 + 1024;
const OVERSIZE = 4 * 1024 * 1024 + 32 * 1024;

Deno.test({
  name: "a message over a maxMessageSize above 4 MiB is refused without allocating the limit" +
    (canSend(2 * OVERSIZE) ? "" : " (skipped: needs root or a net.core.wmem_max of 9 MiB to send it)"),
  ignore: !canSend(2 * OVERSIZE),
  async fn() {
    await using listener = listen({ name: uniqueName("peek"), maxMessageSize: LIMIT });
    await using client = await connect({ name: listener.path, maxMessageSize: 2 * OVERSIZE });
    await using conn = await within(listener.accept(), WAIT_MS, "accept");
    await client.writeMessage(pattern(OVERSIZE));
    const before = Deno.memoryUsage().external;
    await assert.rejects(within(conn.readMessage(), WAIT_MS, "the oversized read"), RangeError);
    const grown = Deno.memoryUsage().external - before;
    assert.ok(grown < 1024 * 1024, `the refused read allocated ${(grown / 1048576).toFixed(1)} MiB`);
  },
});
