/**
 * Accepting clients through the public API: many at once, one that leaves before it is accepted,
 * a second server on a live name, and clients that find no server or only busy instances.
 */
import assert from "node:assert/strict";
import { connect, listen } from "../mod.ts";
import { pattern, serve, uniqueName, within } from "./_pipes.ts";

Deno.test("16 concurrent clients each do 100 round trips and every reply is correct", async () => {
  await using server = serve({ name: uniqueName("sixteen") }, (m) => m.map((b) => b ^ 0xff));
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const client = async (id: number) => {
    await using conn = await connect({ name: server.listener.path, timeout: 10_000 });
    for (let i = 0; i < 100; i++) {
      const request = encoder.encode(`client ${id} message ${i}`);
      await conn.writeMessage(request);
      const reply = await conn.readMessage();
      assert.ok(reply, `client ${id} got end of stream at message ${i}`);
      assert.equal(decoder.decode(reply.map((b) => b ^ 0xff)), `client ${id} message ${i}`);
    }
  };
  await within(Promise.all(Array.from({ length: 16 }, (_, id) => client(id))), 60_000, "16 clients");
  assert.equal(server.accepted, 16);
});

Deno.test("300 clients connected at once are all served (instances are unlimited by default)", async () => {
  await using server = serve({ name: uniqueName("many") });
  const clients = [];
  try {
    for (let i = 0; i < 300; i++) {
      clients.push(await connect({ name: server.listener.path, timeout: 10_000 }));
    }
    for (const [i, client] of clients.entries()) await client.writeMessage(pattern(4, i));
    for (const [i, client] of clients.entries()) {
      assert.deepEqual(await within(client.readMessage(), 5000, `client ${i}'s echo`), pattern(4, i));
    }
  } finally {
    for (const client of clients) await client.close();
  }
});

Deno.test("peerPid names this process on both ends of a pipe it serves to itself", async () => {
  await using listener = listen({ name: uniqueName("peer") });
  await using client = await connect({ name: listener.path });
  await using conn = await within(listener.accept(), 5000, "the accept");
  assert.equal(conn.peerPid, Deno.pid);
  assert.equal(client.peerPid, Deno.pid);
});

Deno.test("a client that connects and leaves before being accepted does not stall the server", async () => {
  await using server = serve({ name: uniqueName("leaver") });
  for (let i = 0; i < 5; i++) {
    const leaver = await connect({ name: server.listener.path });
    await leaver.close();
  }
  await using client = await connect({ name: server.listener.path });
  await client.writeMessage(pattern(32));
  assert.deepEqual(await within(client.readMessage(), 5000, "the echo after the leavers"), pattern(32));
});

Deno.test("a connection accepted after its client left reads end of stream", async () => {
  const listener = listen({ name: uniqueName("gone") });
  try {
    const client = await connect({ name: listener.path });
    await client.write(pattern(3));
    await client.close();
    const conn = await within(listener.accept(), 5000, "the accept");
    try {
      // Data written before the client left is still delivered, then end of stream.
      assert.deepEqual(await conn.readMessage(), pattern(3));
      assert.equal(await conn.readMessage(), null);
    } finally {
      await conn.close();
    }
  } finally {
    await listener.close();
  }
});

Deno.test("listen() rejects a second server on the same name with AddrInUse", async () => {
  const name = uniqueName("twice");
  await using first = serve({ name });
  assert.throws(() => listen({ name }), Deno.errors.AddrInUse);
  // The first server is untouched by the attempt.
  await using client = await connect({ name: first.listener.path });
  await client.writeMessage(pattern(4));
  assert.deepEqual(await within(client.readMessage(), 5000, "the echo"), pattern(4));
});

Deno.test("listen() rejects a second server on a name whose every instance is busy", async () => {
  const name = uniqueName("twicebusy");
  await using first = serve({ name, maxInstances: 1 });
  await using client = await connect({ name: first.listener.path });
  await client.writeMessage(pattern(1));
  assert.deepEqual(await within(client.readMessage(), 5000, "the echo"), pattern(1));
  assert.throws(() => listen({ name }), Deno.errors.AddrInUse);
});

Deno.test("connect() to a name nobody serves rejects with NotFound after its timeout", async () => {
  await assert.rejects(connect({ name: uniqueName("nobody"), timeout: 100 }), Deno.errors.NotFound);
});

Deno.test("connect() waits for a server that appears before the timeout", async () => {
  const name = uniqueName("late");
  const connecting = connect({ name, timeout: 5000 });
  await new Promise((r) => setTimeout(r, 50));
  await using _server = serve({ name });
  await using client = await within(connecting, 6000, "the late connect");
  await client.writeMessage(pattern(8));
  assert.deepEqual(await within(client.readMessage(), 5000, "the echo"), pattern(8));
});

Deno.test({
  name: "connect() rejects with TimedOut while every instance stays busy",
  ignore: Deno.build.os !== "windows", // a Unix socket's backlog takes the client instead
  async fn() {
    await using server = serve({ name: uniqueName("busy"), maxInstances: 1 });
    await using first = await connect({ name: server.listener.path });
    await assert.rejects(connect({ name: server.listener.path, timeout: 200 }), Deno.errors.TimedOut);
    await first.writeMessage(pattern(2));
    assert.deepEqual(await within(first.readMessage(), 5000, "the echo"), pattern(2));
  },
});

Deno.test("a client beyond maxInstances is served once an instance is free, not refused", async () => {
  await using server = serve({ name: uniqueName("limit"), maxInstances: 1 });
  const first = await connect({ name: server.listener.path });
  await first.writeMessage(pattern(3));
  assert.deepEqual(await within(first.readMessage(), 5000, "the first echo"), pattern(3));
  // Windows: the second waits in connect() (ERROR_PIPE_BUSY); Linux: in the backlog, not accepted.
  const second = (async () => {
    const client = await connect({ name: server.listener.path, timeout: 10_000 });
    await client.writeMessage(pattern(5, 1));
    return { client, reply: await client.readMessage() };
  })();
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(server.accepted, 1, "a second instance was accepted beyond the limit");
  await first.close();
  const { client, reply } = await within(second, 10_000, "the second client's echo");
  await using _client = client;
  assert.deepEqual(reply, pattern(5, 1));
});

Deno.test("accept() resolves for clients that connected before it was called, in order", async () => {
  await using listener = listen({ name: uniqueName("queued") });
  const clients = [];
  for (let i = 0; i < 3; i++) {
    const client = await connect({ name: listener.path });
    await client.writeMessage(pattern(1, i));
    clients.push(client);
  }
  const seen = new Set<number>();
  for (let i = 0; i < 3; i++) {
    const conn = await within(listener.accept(), 5000, "a queued client");
    seen.add((await conn.readMessage())![0]);
    await conn.close();
  }
  assert.deepEqual([...seen].sort(), [0, 1, 2]);
  for (const client of clients) await client.close();
});
