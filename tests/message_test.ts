/**
 * Messages through the public API: the seed's round trip, large and reassembled messages, odd and
 * zero lengths, the size limit, and byte mode. The same file runs on Windows (kernel32) and Linux.
 */
import assert from "node:assert/strict";
import { connect, listen } from "../mod.ts";
import { pattern, serve, uniqueName, within } from "./_pipes.ts";
import { largestMessage } from "./_send_limit.ts";

/** UTF-16LE with a trailing NUL, as the seed's C# client and server send text. */
function utf16z(text: string): Uint8Array {
  const bytes = new Uint8Array((text.length + 1) * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < text.length; i++) view.setUint16(i * 2, text.charCodeAt(i), true);
  return bytes;
}

function fromUtf16z(bytes: Uint8Array): string {
  let text = "";
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i + 1 < bytes.length; i += 2) text += String.fromCharCode(view.getUint16(i, true));
  return text.replace(/\0+$/, "");
}

Deno.test("a client does the seed's round trip: a UTF-16LE request with a NUL, a 58-byte reply", async () => {
  const response = utf16z("Default response from server");
  await using server = serve({ name: uniqueName("seed") }, () => response);
  await using client = await connect({ name: server.listener.path, mode: "message" });
  await client.writeMessage(utf16z("Default request from client"));
  const reply = await within(client.readMessage(), 5000, "the reply");
  assert.ok(reply);
  assert.equal(reply.length, 58);
  assert.equal(fromUtf16z(reply), "Default response from server");
});

Deno.test("a message larger than the pipe buffer is read back whole, both ways", async () => {
  await using server = serve({ name: uniqueName("larger"), bufferSize: 4096 });
  await using client = await connect({ name: server.listener.path });
  const message = pattern(100_000, 7);
  const [, echoed] = await within(
    Promise.all([client.writeMessage(message), client.readMessage()]),
    10_000,
    "the echo",
  );
  assert.deepEqual(echoed, message);
});

Deno.test("a 1 MiB message (or the largest this host can send) is reassembled; one byte more is a RangeError", async () => {
  await using server = serve({ name: uniqueName("mib") });
  await using client = await connect({ name: server.listener.path });
  // Windows, or Linux with CAP_NET_ADMIN or a raised wmem_max: 1 MiB. Unprivileged Linux at the
  // stock wmem_max: 425,952 bytes (tests/_send_limit.ts).
  const largest = largestMessage();
  const message = pattern(Math.min(1024 * 1024, largest), 3);
  const [, echoed] = await within(
    Promise.all([client.writeMessage(message), client.readMessage()]),
    20_000,
    `the ${message.length}-byte echo`,
  );
  assert.ok(echoed);
  assert.equal(echoed.length, message.length);
  assert.deepEqual(echoed, message);
  if (largest < 1024 * 1024) {
    await assert.rejects(client.writeMessage(pattern(largest + 1)), RangeError);
    await client.writeMessage(pattern(7));
    assert.deepEqual(
      await within(client.readMessage(), 5000, "the echo after the refused message"),
      pattern(7),
    );
  }
});

Deno.test("odd-length and zero-length messages arrive as sent, in order", async () => {
  await using server = serve({ name: uniqueName("odd") });
  await using client = await connect({ name: server.listener.path });
  const messages = [pattern(1), pattern(0), pattern(3), new Uint8Array(0), pattern(65_537), pattern(4095)];
  for (const message of messages) await client.writeMessage(message);
  for (const message of messages) {
    const echoed = await within(client.readMessage(), 5000, "an echo");
    assert.ok(echoed, "a zero-length message is not end of stream");
    assert.deepEqual(echoed, message);
  }
});

Deno.test("a zero-length message is an empty array and end of stream is null", async () => {
  await using server = serve({ name: uniqueName("zero") }, () => new Uint8Array(0));
  const client = await connect({ name: server.listener.path });
  await client.writeMessage(pattern(5));
  assert.deepEqual(await within(client.readMessage(), 5000, "the empty reply"), new Uint8Array(0));
  await client.close();
  await server.stop();
  assert.deepEqual(server.readErrors, []);
});

Deno.test("a message above maxMessageSize drops that client and the server goes on", async () => {
  await using server = serve({ name: uniqueName("oversize"), maxMessageSize: 1000 });
  await using greedy = await connect({ name: server.listener.path });
  await greedy.writeMessage(pattern(1000)); // exactly the limit: accepted
  assert.equal((await within(greedy.readMessage(), 5000, "the echo at the limit"))?.length, 1000);
  await greedy.writeMessage(pattern(5000));
  // The server closed that connection: end of stream, or a broken pipe.
  const after = await within(greedy.readMessage().catch(() => null), 5000, "the drop");
  assert.equal(after, null);
  await within(
    (async () => {
      while (server.readErrors.length === 0) await new Promise((r) => setTimeout(r, 10));
    })(),
    5000,
    "the server to report the oversized message",
  );
  assert.ok(server.readErrors[0] instanceof RangeError, String(server.readErrors[0]));

  await using polite = await connect({ name: server.listener.path });
  await polite.writeMessage(pattern(10));
  assert.deepEqual(await within(polite.readMessage(), 5000, "the next client's echo"), pattern(10));
});

Deno.test("a client's readMessage enforces its own maxMessageSize", async () => {
  await using server = serve({ name: uniqueName("clientmax") }, () => pattern(3000));
  const client = await connect({ name: server.listener.path, maxMessageSize: 2000 });
  await client.writeMessage(pattern(1));
  await assert.rejects(within(client.readMessage(), 5000, "the oversized reply"), RangeError);
  await client.close(); // already closed by the drop: idempotent
});

Deno.test("byte mode carries a stream through write and read", async () => {
  await using server = serve({ name: uniqueName("bytes"), mode: "byte" });
  await using client = await connect({ name: server.listener.path, mode: "byte" });
  const sent = pattern(10_000, 11);
  assert.equal(await client.write(sent.subarray(0, 4000)), 4000);
  await client.writeMessage(sent.subarray(4000));
  const received = new Uint8Array(sent.length);
  let have = 0;
  const chunk = new Uint8Array(3000);
  while (have < sent.length) {
    const n = await within(client.read(chunk), 5000, "stream bytes");
    assert.ok(n !== null && n > 0);
    received.set(chunk.subarray(0, n), have);
    have += n;
  }
  assert.deepEqual(received, sent);
});

Deno.test("read() in message mode returns a long message in pieces", async () => {
  await using server = serve({ name: uniqueName("pieces") });
  await using client = await connect({ name: server.listener.path });
  const message = pattern(2500, 5);
  await client.writeMessage(message);
  const got: number[] = [];
  const small = new Uint8Array(1000);
  while (got.length < message.length) {
    const n = await within(client.read(small), 5000, "a piece");
    assert.ok(n !== null && n > 0);
    got.push(...small.subarray(0, n));
  }
  assert.deepEqual(new Uint8Array(got), message);
});

Deno.test("read() into a large buffer: messages shorter, as long and longer, written only inside the buffer", async () => {
  // Large enough for the Linux engine to receive straight into the caller's buffer, and larger than
  // the Windows engine's first read buffer: a message that fits must still come in one read.
  // The buffer is a window into a larger one, so a write outside it would show.
  await using server = serve({ name: uniqueName("readinto"), bufferSize: 65536 });
  await using client = await connect({ name: server.listener.path });
  const SENTINEL = 0xee;
  const backing = new Uint8Array(3 * 8192).fill(SENTINEL);
  const window = backing.subarray(8192, 2 * 8192);
  const outside = () => [...backing.subarray(0, 8192), ...backing.subarray(2 * 8192)];
  const untouched = outside();
  const read = async (what: string) => {
    const n = await within(client.read(window), 5000, what);
    assert.deepEqual(outside(), untouched, `${what}: nothing written outside the buffer`);
    return n;
  };
  for (const [length, seed] of [[5000, 1], [8192, 2], [8192, 3], [100, 4], [6000, 5]]) {
    const message = pattern(length, seed);
    await client.writeMessage(message);
    assert.equal(await read(`the ${length}-byte echo`), length);
    assert.deepEqual(window.subarray(0, length), message, `the ${length}-byte echo's bytes`);
  }
  // Longer than the buffer: handed out over several reads, in order.
  const long = pattern(20_000, 6);
  await client.writeMessage(long);
  const got: number[] = [];
  while (got.length < long.length) {
    const n = await read("a piece of the long echo");
    assert.ok(n !== null && n > 0 && n <= window.length);
    got.push(...window.subarray(0, n));
  }
  assert.deepEqual(new Uint8Array(got), long);
  // Then a message that fits again, and the peer's closeWrite() as end of stream.
  await client.writeMessage(pattern(4096, 7));
  assert.equal(await read("the echo after the long one"), 4096);
  assert.deepEqual(window.subarray(0, 4096), pattern(4096, 7));
  await client.writeMessage(new Uint8Array(0));
  assert.equal(await read("the empty echo"), null, "an empty message reads as end of stream");
});

Deno.test("each message readMessage() returns is its own array, untouched by the messages after it", async () => {
  // Steady-size messages, each read before its echo arrives (so the read waits): the Linux engine
  // receives such messages straight into a new array, and keeps the one a waiting read allocated.
  await using server = serve({ name: uniqueName("ownarrays"), bufferSize: 65536 });
  await using client = await connect({ name: server.listener.path });
  const got: Uint8Array[] = [];
  for (let i = 0; i < 20; i++) {
    const reply = client.readMessage();
    await client.writeMessage(pattern(8192, i));
    got.push((await within(reply, 5000, `echo ${i}`))!);
  }
  assert.equal(new Set(got.map((m) => m.buffer)).size, got.length, "one buffer per message");
  got.forEach((message, i) => assert.deepEqual(message, pattern(8192, i), `message ${i} as it came`));
});

Deno.test("connect() refuses a maxMessageSize that is not an integer from 0 to 2^31-1 with RangeError", async () => {
  await using server = serve({ name: uniqueName("clientmaxcheck") });
  for (const maxMessageSize of [NaN, -1, 1.5, Infinity, 2 ** 31]) {
    await assert.rejects(
      connect({ name: server.listener.path, maxMessageSize, timeout: 1000 }),
      RangeError,
      `maxMessageSize ${maxMessageSize}`,
    );
  }
});

Deno.test("a message-mode client of a byte-mode server fails with TypeError saying the server is in byte mode", async () => {
  await using server = serve({ name: uniqueName("modemismatch"), mode: "byte" });
  await assert.rejects(
    connect({ name: server.listener.path, mode: "message", timeout: 1000 }),
    (error: Error) => error instanceof TypeError && /server is in byte mode/.test(error.message),
  );
  // The same server still serves a client of its own mode.
  await using client = await connect({ name: server.listener.path, mode: "byte" });
  await client.writeMessage(pattern(5));
  const got = new Uint8Array(5);
  assert.equal(await within(client.read(got), 5000, "the byte echo"), 5);
  assert.deepEqual(got, pattern(5));
});

Deno.test({
  name: "a 64 MiB message to a 1 MiB limit is refused after its first part, without growing memory, " +
    "and its writer sees BrokenPipe (Windows: a POSIX seqpacket send that large fails at the writer)",
  ignore: Deno.build.os !== "windows",
  async fn() {
    const { portStats } = await import("../pipe/windows/completion_port.ts");
    await using listener = listen({ name: uniqueName("farover"), maxMessageSize: 1024 * 1024 });
    const connecting = connect({ name: listener.path });
    await using conn = await within(listener.accept(), 5000, "the accept");
    await using client = await connecting;
    const huge = pattern(64 * 1024 * 1024, 3);
    const rss = Deno.memoryUsage().rss;
    const moreData = portStats().inlineMoreData;
    // Written before the read: the server's first ReadFile meets ERROR_MORE_DATA at once, and
    // PeekNamedPipe then tells how much is left: far over the limit, so nothing more is read.
    const writing = client.writeMessage(huge).then(() => undefined, (e) => e);
    await new Promise((r) => setTimeout(r, 50));
    const error = await within(conn.readMessage().then(() => undefined, (e) => e), 10_000, "the refusal");
    assert.ok(error instanceof RangeError, `${error}`);
    assert.match(error.message, /message of at least 67108864 bytes exceeds maxMessageSize 1048576/);
    assert.ok(portStats().inlineMoreData > moreData, "the first read did not meet ERROR_MORE_DATA inline");
    const grew = Deno.memoryUsage().rss - rss;
    assert.ok(grew < 16 * 1024 * 1024, `the reader's process grew by ${(grew / 2 ** 20).toFixed(1)} MiB`);
    const writeError = await within(writing, 10_000, "the writer's failure");
    assert.ok(writeError instanceof Deno.errors.BrokenPipe, `the writer got ${writeError}`);
  },
});
