/**
 * What an idle connection costs: every served connection keeps one read pending, and the buffer of
 * that read must be small (1,000 idle clients held 64 MiB of read buffers with 64 KiB each, 4 MiB
 * with 4 KiB).
 * Counted as V8's external memory, where every ArrayBuffer's backing store is accounted.
 */
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import { pattern, serve, uniqueName, within } from "./_pipes.ts";

const CLIENTS = 200;
/**
 * Per idle connection (both of its ends live in this process), everything the engine allocates
 * outside the JS heap (buffers). Under Wine, with the read buffer starting at 1 KiB: 2,390 bytes;
 * at 4 KiB: 8,536; at 64 KiB: 131,297.
 */
const MAX_EXTERNAL_PER_CONNECTION = 4 * 1024;

Deno.test("an idle connection's pending read holds a small buffer, not 64 KiB", async () => {
  await using server = serve({ name: uniqueName("idle-memory") });
  const clients = [];
  try {
    // One connection first, so the engine's one-time allocations are not counted.
    clients.push(await connect({ name: server.listener.path, timeout: 10_000 }));
    await clients[0].writeMessage(pattern(64));
    await within(clients[0].readMessage(), 5000, "the first echo");
    const before = Deno.memoryUsage().external;
    for (let i = 1; i <= CLIENTS; i++) {
      const client = await connect({ name: server.listener.path, timeout: 10_000 });
      clients.push(client);
      // One round trip: the server has read once and waits in its next read.
      await client.writeMessage(pattern(64, i));
      assert.deepEqual(await within(client.readMessage(), 5000, `client ${i}'s echo`), pattern(64, i));
    }
    const perConnection = (Deno.memoryUsage().external - before) / CLIENTS;
    assert.ok(
      perConnection < MAX_EXTERNAL_PER_CONNECTION,
      `${CLIENTS} idle connections hold ${Math.round(perConnection)} bytes of external memory each ` +
        `(at most ${MAX_EXTERNAL_PER_CONNECTION})`,
    );
  } finally {
    for (const client of clients) await client.close();
  }
});

Deno.test({
  name: "an idle connection that received 64 KiB messages holds no 64 KiB array " +
    "(Linux only: the Windows engine keeps a connection's grown read buffer)",
  ignore: Deno.build.os !== "linux",
  async fn() {
    // A child with --expose-gc: without collections, arrays already dropped would still count.
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        new URL("./fixtures/idle_after_large.ts", import.meta.url).pathname,
        uniqueName("idle-large"),
      ],
      stdin: "null",
    }).output();
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
    const perConnection = Number(new TextDecoder().decode(output.stdout).trim());
    assert.ok(
      perConnection < MAX_EXTERNAL_PER_CONNECTION,
      `an idle connection holds ${perConnection} bytes of external memory after 64 KiB messages ` +
        `(at most ${MAX_EXTERNAL_PER_CONNECTION})`,
    );
  },
});
