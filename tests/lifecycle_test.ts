/**
 * Lifecycle through the public API: closing a server with clients connected and while one is
 * connecting, a client killed mid-session, and 1,000 connect/disconnect cycles that release every
 * handle.
 */
import assert from "node:assert/strict";
import { connect, listen, openHandleCount } from "../mod.ts";
import { spawnFixture } from "./_fixtures.ts";
import { pattern, serve, uniqueName, within } from "./_pipes.ts";
import { assertOsCountBack, countLabel, osCount } from "./_os_handles.ts";

/** The OS-level count the leak checks trust here (none under Wine: the test names say so). */
const os = await osCount();

Deno.test("closing the server with clients connected does not hang; accepted connections stay open", async () => {
  const server = serve({ name: uniqueName("closeconnected") });
  const clients = await Promise.all([1, 2, 3].map(() => connect({ name: server.listener.path })));
  for (const client of clients) {
    await client.writeMessage(pattern(16));
    assert.deepEqual(await within(client.readMessage(), 5000, "an echo"), pattern(16));
  }
  await within(server.listener.close(), 5000, "the listener to close");
  // The accepted connections still serve after the listener is gone.
  await clients[0].writeMessage(pattern(5));
  assert.deepEqual(await within(clients[0].readMessage(), 5000, "an echo after close"), pattern(5));
  // No instance listens any more: the name is gone (NotFound) or only busy instances remain (TimedOut).
  await assert.rejects(
    connect({ name: server.listener.path, timeout: 50 }),
    (error) => error instanceof Deno.errors.NotFound || error instanceof Deno.errors.TimedOut,
  );
  for (const client of clients) await client.close();
  await server.stop();
});

Deno.test("closing the server while a client is connecting does not hang", async () => {
  for (let round = 0; round < 20; round++) {
    const listener = listen({ name: uniqueName("closeconnecting") });
    const connecting = connect({ name: listener.path, timeout: 200 });
    const closing = listener.close();
    const [connected] = await within(
      Promise.allSettled([connecting, closing]),
      5000,
      "the close and the connect to settle",
    );
    if (connected.status === "fulfilled") {
      // The client won the race: its instance was closed under it, so it sees end of stream.
      const conn = connected.value;
      assert.equal(await within(conn.readMessage().catch(() => null), 5000, "end of stream"), null);
      await conn.close();
    }
    await assert.rejects(listener.accept(), Deno.errors.BadResource);
  }
});

Deno.test(`closing the server while another process keeps connecting never hangs or leaks ${countLabel(os)}`, async () => {
  const name = uniqueName("hammer");
  const before = openHandleCount();
  const osBefore = os.source ? os.count() : undefined;
  const child = spawnFixture("hammer_client.ts", [name]);
  try {
    let accepted = 0;
    for (let round = 0; round < 30; round++) {
      const server = serve({ name });
      // Let the other process connect a few times (the first round waits for it to start), then
      // close in the middle of its attempts.
      await within(
        (async () => {
          do await new Promise((r) => setTimeout(r, 20)); while (round === 0 && server.accepted === 0);
        })(),
        60_000,
        "the other process to connect",
      );
      await within(server.stop(), 10_000, `round ${round}'s close`);
      accepted += server.accepted;
    }
    assert.ok(accepted > 30, `only ${accepted} connections were accepted`);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
  assert.equal(openHandleCount(), before);
  assertOsCountBack(os, osBefore, "30 rounds of closing under a connecting process");
});

Deno.test("a reply written just before the server closes the connection still reaches the client", async () => {
  await using listener = listen({ name: uniqueName("lastwords") });
  await using client = await connect({ name: listener.path });
  const conn = await within(listener.accept(), 5000, "the accept");
  await conn.writeMessage(pattern(1000, 1));
  await conn.writeMessage(new Uint8Array(0));
  // The client has read nothing yet: close() must neither wait for it nor discard what it wrote.
  await within(conn.close(), 5000, "the close");
  assert.deepEqual(await within(client.readMessage(), 5000, "the reply"), pattern(1000, 1));
  assert.deepEqual(await within(client.readMessage(), 5000, "the empty reply"), new Uint8Array(0));
  assert.equal(await within(client.readMessage(), 5000, "end of stream"), null);
});

Deno.test("a client that never reads does not block the server's close", async () => {
  await using listener = listen({ name: uniqueName("neverreads"), bufferSize: 4096 });
  await using client = await connect({ name: listener.path });
  const conn = await within(listener.accept(), 5000, "the accept");
  // More than the pipe buffer: this write stays pending because the client never reads.
  const writing = conn.writeMessage(pattern(50_000)).catch((error) => error);
  await within(conn.close(), 5000, "the close");
  // Windows: the write was still pending and is cancelled. Linux: the socket buffer took it all.
  const result = await within(writing, 5000, "the write to settle");
  assert.ok(result === undefined || result instanceof Deno.errors.BadResource, String(result));
  void client;
});

Deno.test("closing the server with no accept pending and no client does not hang", async () => {
  const listener = listen({ name: uniqueName("closeidle"), pendingInstances: 8 });
  await within(listener.close(), 5000, "the idle listener to close");
  await within(listener.close(), 5000, "a second close"); // idempotent
});

Deno.test("a pending accept() rejects with BadResource when the server closes", async () => {
  const listener = listen({ name: uniqueName("pendingaccept") });
  const accepting = assert.rejects(listener.accept(), Deno.errors.BadResource);
  await listener.close();
  await within(accepting, 5000, "the accept to reject");
});

Deno.test("a pending readMessage() rejects with BadResource when its connection closes", async () => {
  await using server = serve({ name: uniqueName("pendingread") }, () => null);
  const client = await connect({ name: server.listener.path });
  const reading = assert.rejects(client.readMessage(), Deno.errors.BadResource);
  await within(client.close(), 5000, "the close");
  await within(reading, 5000, "the read to end");
  await assert.rejects(client.writeMessage(pattern(1)), Deno.errors.BadResource);
});

Deno.test("a client process killed mid-session is seen as end of stream and the server goes on", async () => {
  const received: string[] = [];
  const peers: number[] = [];
  await using server = serve({ name: uniqueName("killed") }, (m, conn) => {
    received.push(new TextDecoder().decode(m));
    peers.push(conn.peerPid);
    return null;
  });
  const child = spawnFixture("stuck_client.ts", [server.listener.path]);
  try {
    await within(
      (async () => {
        while (received.length === 0) await new Promise((r) => setTimeout(r, 20));
      })(),
      60_000,
      "the child's message",
    );
    assert.equal(server.accepted, 1);
    assert.equal(peers[0], child.pid, "peerPid names the client process");
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
  // The killed client's connection ends; a new client is served.
  await using client = await connect({ name: server.listener.path });
  await client.writeMessage(pattern(3));
  await within(
    (async () => {
      while (received.length < 2) await new Promise((r) => setTimeout(r, 10));
    })(),
    5000,
    "the next client's message",
  );
  assert.deepEqual(server.readErrors, []);
});

Deno.test(`1,000 connect/disconnect cycles release every handle ${countLabel(os)}`, async () => {
  const before = openHandleCount();
  const osBefore = os.source ? os.count() : undefined;
  const server = serve({ name: uniqueName("cycles") });
  for (let i = 0; i < 1000; i++) {
    const client = await connect({ name: server.listener.path, timeout: 5000 });
    if (i % 100 === 0) {
      await client.writeMessage(pattern(4, i));
      assert.deepEqual(await within(client.readMessage(), 5000, "an echo"), pattern(4, i));
    }
    await client.close();
  }
  // Let the accept loop take the last clients (the listener closes any it has not taken).
  for (let wait = 0; server.accepted < 1000 && wait < 100; wait++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  await server.stop();
  assert.equal(openHandleCount(), before);
  // Linux: /proc/self/fd; Windows: GetProcessHandleCount (the runtime may hold a few more, a leak here
  // would be 1,000 or more). Wine has no OS count: the engine's is all there is.
  assertOsCountBack(os, osBefore, "1,000 connect/disconnect cycles");
});
