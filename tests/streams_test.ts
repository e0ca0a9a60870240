/**
 * `readable`, `writable` and `closeWrite()` through the public API: byte round trips, backpressure
 * counted in chunks (never timed), end of stream and half-close in both modes, the whole-message API
 * beside the streams, and `await using`. The same file runs on Windows (kernel32) and Linux.
 */
import assert from "node:assert/strict";
import { connect, listen, type PipeConn } from "../mod.ts";
import { collect, pair, readExactly } from "./_pair.ts";
import { pattern, serve, uniqueName, within } from "./_pipes.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("readable and writable carry a byte stream both ways through an echo", async () => {
  await using p = await pair({ name: uniqueName("roundtrip"), mode: "byte" });
  const echo = p.server.readable.pipeTo(p.server.writable);
  const sent = pattern(1024 * 1024, 9);
  const writer = p.client.writable.getWriter();
  const writing = (async () => {
    // Uneven pieces, so chunk and read boundaries never line up.
    for (let offset = 0; offset < sent.length; offset += 10_007) {
      await writer.write(sent.subarray(offset, offset + 10_007));
    }
  })();
  const reader = p.client.readable.getReader();
  const received = new Uint8Array(sent.length);
  let have = 0;
  while (have < sent.length) {
    const { value, done } = await within(reader.read(), 10_000, "echoed bytes");
    assert.ok(!done && value, `end of stream after ${have} bytes`);
    received.set(value, have);
    have += value.length;
  }
  await within(writing, 10_000, "the writes");
  assert.deepEqual(received, sent);
  reader.releaseLock();
  writer.releaseLock();
  // Closing the client ends the server's readable on both backends, which ends the echo.
  await p.client.close();
  await within(echo, 10_000, "the echo to finish");
});

Deno.test("a writer to a peer that does not read stops progressing until the peer reads", async () => {
  await using p = await pair({ name: uniqueName("backpressure"), mode: "byte" });
  // Round trips on another pipe turn the event loop and the engine many times meanwhile.
  await using ping = serve({ name: uniqueName("ping") });
  await using pinger = await connect({ name: ping.listener.path });
  const chunk = pattern(64 * 1024, 1);
  const total = 64; // 4 MiB
  let handed = 0;
  let accepted = 0;
  const failures: unknown[] = [];
  const writer = p.client.writable.getWriter();
  const producer = (async () => {
    while (handed < total) {
      await writer.ready;
      handed++;
      writer.write(chunk).then(() => accepted++, (error) => failures.push(error));
    }
    await writer.close();
  })();

  for (let i = 0; i < 200; i++) {
    await pinger.writeMessage(pattern(16, i));
    await within(pinger.readMessage(), 5000, "a ping");
  }
  // The pipe's buffer (a few hundred KiB on Linux, 4 KiB on Windows) holds a few chunks at most,
  // and the writable queues one more: the producer is held back, not buffering 4 MiB.
  const stalledAt = handed;
  assert.ok(handed <= 16, `the writer got ${handed} chunks (${handed * 64} KiB) past a peer that never read`);
  assert.ok(accepted < handed, "a write is still pending while the peer does not read");
  assert.equal(writer.desiredSize, 0, "the writable asks its producer to wait");

  const received = await readExactly(p.server, total * chunk.length, 30_000);
  await within(producer, 10_000, "the producer to finish");
  assert.equal(accepted, total);
  assert.deepEqual(failures, []);
  assert.ok(stalledAt < total);
  for (let i = 0; i < total; i++) {
    assert.deepEqual(received.subarray(i * chunk.length, (i + 1) * chunk.length), chunk, `chunk ${i}`);
  }
});

Deno.test("closing a writable and then the connection ends the peer's readable in byte mode", async () => {
  await using p = await pair({ name: uniqueName("eos"), mode: "byte" });
  const writer = p.server.writable.getWriter();
  await writer.write(text("hello, "));
  await writer.write(text("world"));
  await writer.close(); // closeWrite()
  await p.server.close();
  assert.equal(new TextDecoder().decode(await collect(p.client.readable)), "hello, world");
  assert.equal(await p.client.read(new Uint8Array(8)), null, "end of stream stays the end");
});

for (const mode of ["byte", "message"] as const) {
  Deno.test(`after closeWrite() in ${mode} mode writes reject and the peer can still answer`, async () => {
    await using p = await pair({ name: uniqueName(`half_${mode}`), mode });
    await p.client.write(text("request"));
    await p.client.closeWrite();
    await p.client.closeWrite(); // idempotent
    await assert.rejects(p.client.write(text("more")), Deno.errors.BrokenPipe);
    await assert.rejects(p.client.writeMessage(text("more")), Deno.errors.BrokenPipe);
    assert.deepEqual(await readExactly(p.server, 7), text("request"));
    await p.server.write(text("answer"));
    assert.deepEqual(await readExactly(p.client, 6), text("answer"));
    await p.client.close();
    await assert.rejects(p.client.closeWrite(), Deno.errors.BadResource);
  });
}

Deno.test("in message mode closeWrite() sends a zero-length message that ends read() and readable", async () => {
  await using p = await pair({ name: uniqueName("zero_eos"), mode: "message" });
  await p.client.writeMessage(text("last words"));
  await p.client.closeWrite();
  // The whole-message API sees the marker as what it is: an empty message.
  assert.deepEqual(await within(p.server.readMessage(), 5000, "the message"), text("last words"));
  assert.deepEqual(await within(p.server.readMessage(), 5000, "the empty message"), new Uint8Array(0));
  // The byte-oriented API sees end of stream, with the connection still open both ways.
  await p.server.writeMessage(text("reply"));
  await p.server.closeWrite();
  assert.equal(new TextDecoder().decode(await collect(p.client.readable)), "reply");
  await assert.rejects(p.server.writeMessage(new Uint8Array(0)), Deno.errors.BrokenPipe);
});

Deno.test({
  name: "in byte mode on Linux closeWrite() ends the peer's readable while it can still answer",
  // Windows byte-mode pipes have no half-close: there the peer sees the end only at close().
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await using p = await pair({ name: uniqueName("shutdown"), mode: "byte" });
    const writer = p.client.writable.getWriter();
    await writer.write(text("GET / HTTP/1.0\r\n\r\n"));
    await writer.close();
    const request = await collect(p.server.readable);
    assert.equal(new TextDecoder().decode(request), "GET / HTTP/1.0\r\n\r\n");
    await p.server.write(text("HTTP/1.0 204 No Content\r\n\r\n"));
    await p.server.close();
    assert.equal(
      new TextDecoder().decode(await collect(p.client.readable)),
      "HTTP/1.0 204 No Content\r\n\r\n",
    );
  },
});

Deno.test("a message-mode connection keeps whole messages beside its streams", async () => {
  await using p = await pair({ name: uniqueName("mixed"), mode: "message" });
  const writer = p.client.writable.getWriter();
  const big = pattern(70_000, 4);
  await writer.write(text("one"));
  await writer.write(new Uint8Array(0)); // nothing to send: skipped, never an end-of-stream marker
  // Larger than the pipe's buffer: the write resolves only as the server reads it.
  const writing = writer.write(big);
  assert.deepEqual(await within(p.server.readMessage(), 5000, "the first message"), text("one"));
  assert.deepEqual(await within(p.server.readMessage(), 5000, "the large message"), big);
  await within(writing, 5000, "the large write");
  writer.releaseLock();

  await p.server.writeMessage(text("two"));
  await p.server.writeMessage(text("three"));
  assert.deepEqual(await within(p.client.readMessage(), 5000, "a whole message"), text("two"));
  const reader = p.client.readable.getReader();
  const { value } = await within(reader.read(), 5000, "a chunk");
  assert.deepEqual(value, text("three"));
  reader.releaseLock();
});

Deno.test("cancelling a readable closes its connection", async () => {
  await using p = await pair({ name: uniqueName("cancel"), mode: "byte" });
  await p.client.readable.cancel();
  await assert.rejects(p.client.read(new Uint8Array(1)), Deno.errors.BadResource);
  assert.equal(await within(p.server.read(new Uint8Array(1)), 5000, "the end"), null);
});

Deno.test("a connection declared with await using is closed at the end of its block", async () => {
  await using listener = listen({ name: uniqueName("using"), mode: "byte" });
  let outer: PipeConn;
  let server: PipeConn;
  {
    await using client = await connect({ name: listener.path, mode: "byte" });
    outer = client;
    server = await within(listener.accept(), 5000, "the client");
    const writer = client.writable.getWriter();
    await writer.write(text("bye"));
    writer.releaseLock();
  }
  try {
    assert.equal(new TextDecoder().decode(await collect(server.readable)), "bye");
    await assert.rejects(outer.read(new Uint8Array(1)), Deno.errors.BadResource);
  } finally {
    await server.close();
  }
});
