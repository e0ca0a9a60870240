/**
 * Byte mode, as a table of cases run against every byte-mode backend this platform has: the
 * platform's own engine (kernel32 on Windows, libc on Linux) and, on Linux, also Deno's own Unix
 * sockets — the backend macOS uses, selected here through its test-only switch so that it is not
 * untested code.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, listen, type PipeConn } from "../mod.ts";
import { DENO_SOCKETS_SWITCH } from "../pipe/posix/mod.ts";
import { pattern, serve, uniqueName, within } from "./_pipes.ts";

const WAIT_MS = 10_000;

/** Read exactly `length` bytes with `read()`. */
async function readExactly(conn: PipeConn, length: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  for (let have = 0; have < length;) {
    const n = await within(conn.read(bytes.subarray(have)), WAIT_MS, `${length - have} more bytes`);
    if (n === null) throw new Error(`End of stream after ${have} of ${length} bytes`);
    have += n;
  }
  return bytes;
}

const cases: { name: string; fn: (label: string) => Promise<void> }[] = [
  {
    name: "a 300 KB stream goes through an echo and back whole",
    async fn(label) {
      await using server = serve({ name: uniqueName(label), mode: "byte" });
      await using client = await connect({ name: server.listener.path, mode: "byte" });
      const sent = pattern(300_000, 7);
      const reading = readExactly(client, sent.length);
      await client.write(sent.subarray(0, 1000));
      await client.writeMessage(sent.subarray(1000));
      assert.deepEqual(await reading, sent);
    },
  },
  {
    name: "after closeWrite() writes reject, the server reads what came first and can still answer",
    async fn(label) {
      await using listener = listen({ name: uniqueName(label), mode: "byte" });
      await using client = await connect({ name: listener.path, mode: "byte" });
      await using conn = await within(listener.accept(), WAIT_MS, "accept");
      await client.write(pattern(10));
      await client.closeWrite();
      assert.deepEqual(await readExactly(conn, 10), pattern(10));
      // A Windows byte pipe has no half-close (README, "Half-close and end of stream").
      if (Deno.build.os !== "windows") {
        assert.equal(await within(conn.read(new Uint8Array(4)), WAIT_MS, "end of stream"), null);
      }
      await conn.write(pattern(3, 1));
      assert.deepEqual(await readExactly(client, 3), pattern(3, 1));
      await assert.rejects(client.write(pattern(1)), Deno.errors.BrokenPipe);
    },
  },
  {
    name: "a client beyond maxInstances is served once an instance is free, not dropped",
    async fn(label) {
      await using server = serve({ name: uniqueName(label), mode: "byte", maxInstances: 1 });
      const first = await connect({ name: server.listener.path, mode: "byte" });
      await first.write(pattern(3));
      assert.deepEqual(await readExactly(first, 3), pattern(3));
      const second = (async () => {
        const client = await connect({ name: server.listener.path, mode: "byte", timeout: WAIT_MS });
        await client.write(pattern(5, 1));
        return { client, reply: await readExactly(client, 5) };
      })();
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(server.accepted, 1, "a second instance was accepted beyond the limit");
      await first.close();
      const { client, reply } = await within(second, WAIT_MS, "the second client's echo");
      await using _client = client;
      assert.deepEqual(reply, pattern(5, 1));
    },
  },
  {
    name: "listen() refuses out-of-range options with RangeError",
    fn(label) {
      const name = uniqueName(label);
      const bad = [
        { maxInstances: 0 },
        { maxInstances: 256 },
        { maxInstances: 1.5 },
        { bufferSize: -1 },
        { maxMessageSize: -1 },
        { pendingInstances: 0 },
      ];
      for (const options of bad) {
        assert.throws(() => listen({ name, mode: "byte", ...options }), RangeError, JSON.stringify(options));
      }
      return Promise.resolve();
    },
  },
  {
    name: "a second listen() on a live name fails with AddrInUse and the first goes on",
    async fn(label) {
      await using server = serve({ name: uniqueName(label), mode: "byte" });
      assert.throws(() => listen({ name: server.listener.path, mode: "byte" }), Deno.errors.AddrInUse);
      await using client = await connect({ name: server.listener.path, mode: "byte" });
      await client.write(pattern(4));
      assert.deepEqual(await readExactly(client, 4), pattern(4));
    },
  },
  {
    name: "close() rejects a pending accept with BadResource, and the name is free again",
    async fn(label) {
      const name = uniqueName(label);
      const listener = listen({ name, mode: "byte" });
      // Caught from the start: Windows rejects it within close() itself.
      const accepting = listener.accept().then(() => undefined, (error: unknown) => error);
      await listener.close();
      const error = await within(accepting, WAIT_MS, "the accept");
      assert.ok(error instanceof Deno.errors.BadResource, String(error));
      await assert.rejects(connect({ name, mode: "byte", timeout: 100 }), Deno.errors.NotFound);
      await using _again = listen({ name, mode: "byte" });
    },
  },
  {
    name: "a client that closes is end of stream (null) for the server",
    async fn(label) {
      await using listener = listen({ name: uniqueName(label), mode: "byte" });
      const client = await connect({ name: listener.path, mode: "byte" });
      await using conn = await within(listener.accept(), WAIT_MS, "accept");
      await client.write(pattern(2));
      await client.close();
      assert.deepEqual(await readExactly(conn, 2), pattern(2));
      assert.equal(await within(conn.readMessage(), WAIT_MS, "end of stream"), null);
    },
  },
];

const backends = [
  { name: Deno.build.os === "windows" ? "kernel32" : "libc", denoSockets: false },
  ...(Deno.build.os === "linux" ? [{ name: "Deno sockets (the macOS backend)", denoSockets: true }] : []),
];

for (const backend of backends) {
  for (const { name, fn } of cases) {
    Deno.test(`byte mode over ${backend.name}: ${name}`, async () => {
      if (backend.denoSockets) Deno.env.set(DENO_SOCKETS_SWITCH, "1");
      try {
        await fn(`bytes${backend.denoSockets ? "deno" : ""}`);
      } finally {
        if (backend.denoSockets) Deno.env.delete(DENO_SOCKETS_SWITCH);
      }
    });
  }
}

Deno.test({
  name: "the test-only switch really selects Deno's sockets: peerPid is 0 there, the pid over libc",
  ignore: Deno.build.os !== "linux",
  async fn() {
    for (const denoSockets of [false, true]) {
      if (denoSockets) Deno.env.set(DENO_SOCKETS_SWITCH, "1");
      try {
        await using listener = listen({ name: uniqueName("switch"), mode: "byte" });
        await using client = await connect({ name: listener.path, mode: "byte" });
        assert.equal(client.peerPid, denoSockets ? 0 : Deno.pid);
      } finally {
        Deno.env.delete(DENO_SOCKETS_SWITCH);
      }
    }
  },
});
