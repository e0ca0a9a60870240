/**
 * Windows engine internals that the public API cannot show: every overlapped operation completes
 * exactly once (no packet for an inline completion, in particular an immediate ERROR_MORE_DATA), and
 * the completion port is gone once nothing is open. Windows (or Wine) only.
 */
import assert from "node:assert/strict";
import { connect, listen, openHandleCount } from "../mod.ts";
import { pattern, serve, uniqueName, within } from "./_pipes.ts";

const ignore = Deno.build.os !== "windows";

Deno.test({
  name: "messages larger than the read buffer complete exactly once, inline or by packet",
  ignore,
  async fn() {
    const { portStats } = await import("../pipe/windows/completion_port.ts");
    const strays = portStats().strayPackets;
    {
      await using server = serve({ name: uniqueName("once"), bufferSize: 4096 });
      await using client = await connect({ name: server.listener.path });
      // Written before the read: the server's first ReadFile meets ERROR_MORE_DATA at once (inline).
      // Echoed while the client's read is pending: its ReadFile gets STATUS_BUFFER_OVERFLOW by packet.
      for (const size of [70_000, 200_000, 65_536, 65_537, 1]) {
        const message = pattern(size, size);
        const [, echoed] = await within(
          Promise.all([client.writeMessage(message), client.readMessage()]),
          10_000,
          `the ${size}-byte echo`,
        );
        assert.deepEqual(echoed, message);
      }
    }
    {
      // The whole message is queued before the server's first ReadFile: ERROR_MORE_DATA at once.
      await using listener = listen({ name: uniqueName("oncequeued"), bufferSize: 4096 });
      await using client = await connect({ name: listener.path });
      const message = pattern(150_000, 9);
      const writing = client.writeMessage(message);
      await using conn = await within(listener.accept(), 5000, "the accept");
      assert.deepEqual(await within(conn.readMessage(), 10_000, "the queued message"), message);
      await within(writing, 5000, "the write");
    }
    assert.equal(portStats().strayPackets, strays, "a packet arrived for an operation completed inline");
    assert.equal(portStats().pending, 0);
  },
});

Deno.test({
  name: "the completion port closes once every pipe handle is closed",
  ignore,
  async fn() {
    const { portStats } = await import("../pipe/windows/completion_port.ts");
    const before = openHandleCount();
    {
      await using server = serve({ name: uniqueName("portlife") });
      await using client = await connect({ name: server.listener.path });
      await client.writeMessage(pattern(3));
      assert.deepEqual(await within(client.readMessage(), 5000, "the echo"), pattern(3));
      assert.equal(portStats().open, true);
    }
    assert.equal(openHandleCount(), before);
    if (before === 0) assert.equal(portStats().open, false);
  },
});
