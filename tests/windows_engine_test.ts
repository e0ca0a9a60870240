/**
 * Windows engine internals that the public API cannot show: every overlapped operation completes
 * exactly once (no packet for an inline completion, in particular an immediate ERROR_MORE_DATA), and
 * the completion port is gone once nothing is open. Windows (or Wine) only.
 */
import assert from "node:assert/strict";
import { connect, listen, openHandleCount, type PipeConn } from "../mod.ts";
import { pattern, serve, uniqueName, within } from "./_pipes.ts";
import { assertOsCountBack, osCount } from "./_os_handles.ts";

const ignore = Deno.build.os !== "windows";
const FAIL_ASSOCIATE = "NAMEDPIPE_TEST_ONLY_FAIL_ASSOCIATE";

Deno.test({
  name: "messages larger than the read buffer complete exactly once, inline or by packet",
  ignore,
  async fn() {
    const { portStats } = await import("../pipe/windows/completion_port.ts");
    const strays = portStats().strayPackets;
    const inlineMoreData = portStats().inlineMoreData;
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
    // The case this test is about really happened: a ReadFile met ERROR_MORE_DATA at once.
    assert.ok(portStats().inlineMoreData > inlineMoreData, "no read met ERROR_MORE_DATA inline");
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

Deno.test({
  name:
    "a CreateNamedPipeW failing mid-run leaves the connection to its accept(); the next accept() gets the error",
  ignore,
  async fn() {
    const k32 = await import("../ffi/kernel32.ts");
    const { wide } = await import("../ffi/win32_strings.ts");
    const k = k32.kernel32();
    const before = openHandleCount();
    const listener = listen({ name: uniqueName("createfail"), maxInstances: 3, pendingInstances: 1 });
    const name = wide(listener.path);
    // Another program of the same user (our DACL lets it add instances) fills the name's instance limit.
    const intruders: bigint[] = [];
    while (intruders.length < 300) {
      const h = k.CreateNamedPipeW(
        name,
        (k32.PIPE_ACCESS_DUPLEX | k32.FILE_FLAG_OVERLAPPED) >>> 0,
        k32.PIPE_TYPE_MESSAGE | k32.PIPE_READMODE_MESSAGE,
        k32.PIPE_UNLIMITED_INSTANCES,
        4096,
        4096,
        0,
        null,
      );
      if (h === k32.INVALID_HANDLE_VALUE) {
        assert.equal(k.GetLastError(), k32.ERROR_PIPE_BUSY);
        break;
      }
      intruders.push(BigInt(h));
    }
    const clients: PipeConn[] = [];
    try {
      assert.ok(intruders.length >= 1 && intruders.length < 300, `${intruders.length} intruding instances`);
      const accepting = listener.accept();
      // Clients land on any listening instance, ours or the intruder's: one more than the intruder's
      // instances makes sure one reaches ours, whose replacement then cannot be created.
      for (let i = 0; i <= intruders.length; i++) {
        const client = await connect({ name: listener.path, timeout: 5000 });
        await client.writeMessage(pattern(1, i));
        clients.push(client);
      }
      const conn = await within(accepting, 5000, "the accept the connection satisfies");
      const [index] = (await within(conn.readMessage(), 5000, "the message"))!;
      assert.ok(index <= intruders.length);
      await conn.writeMessage(pattern(2));
      assert.deepEqual(await within(clients[index].readMessage(), 5000, "the reply"), pattern(2));
      // The failure shows on the next accept, with its own kind: the name's limit is reached.
      const error = await listener.accept().then(() => undefined, (e) => e);
      assert.ok(error instanceof Deno.errors.AddrInUse, `${error}`);
      assert.equal((error as { code?: number }).code, k32.ERROR_PIPE_BUSY);
      // Once the other program lets go, the listener listens again.
      for (const h of intruders.splice(0)) k.CloseHandle(h);
      const next = listener.accept();
      await using late = await connect({ name: listener.path, timeout: 5000 });
      await using served = await within(next, 5000, "an accept after the failure");
      await late.writeMessage(pattern(3));
      assert.deepEqual(await within(served.readMessage(), 5000, "the late client's message"), pattern(3));
      await conn.close();
    } finally {
      for (const h of intruders) k.CloseHandle(h);
      for (const client of clients) await client.close();
      await listener.close();
    }
    // The drain loop may be waiting for its fairness turn (a 0 ms timer) before it ends and closes
    // the port: let that turn come before counting.
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(openHandleCount(), before);
  },
});

Deno.test({
  name: "a handle whose association with the completion port fails is closed, on listen() and connect()" +
    " (engine count; GetProcessHandleCount where it is not a stub)",
  ignore,
  async fn() {
    const os = await osCount();
    const before = openHandleCount();
    const osBefore = os.source ? os.count() : undefined;
    const failed = (e: unknown) => (e as { code?: number }).code === 6; // ERROR_INVALID_HANDLE
    // Four instances listen before the fault; three clients then connect to them without a new one.
    const listener = listen({ name: uniqueName("assocfail"), pendingInstances: 4 });
    // Test-only fault: associate() names the pipe handle itself as the port, which the OS refuses.
    Deno.env.set(FAIL_ASSOCIATE, "1");
    try {
      for (let i = 0; i < 20; i++) assert.throws(() => listen({ name: uniqueName("assocfail") }), failed);
      for (let i = 0; i < 3; i++) await assert.rejects(connect({ name: listener.path }), failed);
    } finally {
      Deno.env.delete(FAIL_ASSOCIATE);
      await listener.close();
    }
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(openHandleCount(), before, "handles left open by failed associations");
    assertOsCountBack(os, osBefore, "23 failed associations");
    await using server = serve({ name: uniqueName("assocok") });
    await using client = await connect({ name: server.listener.path });
    await client.writeMessage(pattern(4));
    assert.deepEqual(await within(client.readMessage(), 5000, "an echo after the faults"), pattern(4));
  },
});

Deno.test({
  name: "a packet with a stale completion key is counted as stray and never completes the operation it names",
  ignore,
  async fn() {
    const port = await import("../pipe/windows/completion_port.ts");
    const strays = port.portStats().strayPackets;
    await using server = serve({ name: uniqueName("stale") });
    await using client = await connect({ name: server.listener.path });
    // The client's read waits in the kernel; a packet naming its OVERLAPPED under a key no live handle
    // has (a closed handle's, say) must not complete it.
    const reading = client.readMessage();
    await new Promise((r) => setTimeout(r, 20));
    const posted = port.testOnlyPostStalePackets();
    assert.ok(posted >= 1, `${posted} stale packets posted`);
    await within(
      (async () => {
        while (port.portStats().strayPackets < strays + posted) await new Promise((r) => setTimeout(r, 5));
      })(),
      5000,
      "the stale packets to be counted",
    );
    const early = await Promise.race([
      reading.then(() => "completed", () => "failed"),
      Promise.resolve("pending"),
    ]);
    assert.equal(early, "pending", "a stale packet completed the read it named");
    await client.writeMessage(pattern(6, 1));
    assert.deepEqual(await within(reading, 5000, "the real echo"), pattern(6, 1));
    assert.equal(port.portStats().strayPackets, strays + posted);
  },
});

Deno.test({
  name: "a long message's read that races close() never calls PeekNamedPipe on the closed handle",
  ignore,
  async fn() {
    // Spied on through the symbol table the engine calls (writable at run time, read-only in its type).
    const k = (await import("../ffi/kernel32.ts")).kernel32() as unknown as Record<
      "PeekNamedPipe" | "CloseHandle",
      (h: bigint, ...rest: unknown[]) => number
    >;
    const { PeekNamedPipe, CloseHandle } = k;
    const closed = new Set<bigint>();
    const peeked: bigint[] = [];
    k.CloseHandle = (h: bigint) => {
      closed.add(BigInt(h));
      return CloseHandle(h);
    };
    k.PeekNamedPipe = (h: bigint, ...rest: unknown[]) => {
      if (closed.has(BigInt(h))) peeked.push(BigInt(h));
      return PeekNamedPipe(h, ...rest);
    };
    try {
      await using listener = listen({ name: uniqueName("peekclose"), bufferSize: 4096 });
      for (let i = 0; i < 5; i++) {
        const connecting = connect({ name: listener.path });
        await using conn = await within(listener.accept(), 5000, "the accept");
        await using client = await connecting;
        const reading = conn.readMessage();
        await new Promise((r) => setTimeout(r, 20)); // the read now waits in the kernel
        closed.clear();
        // The message lands in the waiting read (its first 4 KiB, ERROR_MORE_DATA) and close() starts
        // in the same turn, before that read's packet is handled.
        const writing = client.writeMessage(pattern(150_000)).catch(() => {});
        const closing = conn.close();
        await within(reading.then(() => {}, () => {}), 5000, "the read");
        await closing;
        await client.close();
        await writing;
      }
    } finally {
      k.PeekNamedPipe = PeekNamedPipe;
      k.CloseHandle = CloseHandle;
    }
    assert.deepEqual(peeked, [], "PeekNamedPipe ran on a handle close() had closed");
  },
});
