/**
 * Cancellation and unref through the public API: every waiting call takes an `AbortSignal` that
 * cancels that call alone and rejects with the signal's reason, and `unref()` lets a program exit
 * while a listener or connection waits. See `OperationOptions` in `pipe/types.ts` for what is left
 * usable after a cancellation on each platform.
 */
import assert from "node:assert/strict";
import { connect, listen, openHandleCount, type PipeConn, type PipeMode } from "../mod.ts";
import { pair } from "./_pair.ts";
import { pattern, uniqueName, within } from "./_pipes.ts";

const windows = Deno.build.os === "windows";
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const text = (bytes: Uint8Array | null) => (bytes === null ? null : decoder.decode(bytes));
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether `promise` is still pending after `ms` (it is left running). */
async function stillPending(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const timeout = Symbol("pending");
  promise.catch(() => {}); // judged by the caller later
  let timer: ReturnType<typeof setTimeout> | undefined;
  const result = await Promise.race([
    promise.then(() => null, () => null),
    new Promise((resolve) => timer = setTimeout(() => resolve(timeout), ms)),
  ]);
  clearTimeout(timer);
  return result === timeout;
}

/** Rejects with exactly `reason` (the same object), within a bound. */
async function rejectsWith(promise: Promise<unknown>, reason: unknown, what: string) {
  const outcome = await within(
    promise.then((value) => ({ value }), (error) => ({ error })),
    10_000,
    what,
  );
  assert.ok("error" in outcome, `${what} resolved instead of rejecting`);
  assert.equal(outcome.error, reason, `${what} rejected with ${outcome.error}`);
}

// ---- an already-aborted signal --------------------------------------------------------------

Deno.test("an already-aborted signal rejects every call at once with its reason, issuing no I/O", async () => {
  await using p = await pair({ name: uniqueName("preaborted") });
  const reason = new Error("given up before starting");
  const signal = AbortSignal.abort(reason);
  // A message is waiting: aborted reads must leave it in the pipe.
  await p.server.writeMessage(encoder.encode("waiting"));
  await rejectsWith(p.client.readMessage({ signal }), reason, "readMessage");
  await rejectsWith(p.client.read(new Uint8Array(64), { signal }), reason, "read");
  assert.equal(text(await within(p.client.readMessage(), 5000, "the waiting message")), "waiting");
  // Aborted writes send nothing: the peer's next message is the one written afterwards.
  await rejectsWith(p.client.writeMessage(encoder.encode("never"), { signal }), reason, "writeMessage");
  await rejectsWith(p.client.write(encoder.encode("never"), { signal }), reason, "write");
  await p.client.writeMessage(encoder.encode("after"));
  assert.equal(text(await within(p.server.readMessage(), 5000, "the message written after")), "after");
  // An aborted accept leaves a waiting client to the next accept; an aborted connect connects nothing.
  await rejectsWith(p.listener.accept({ signal }), reason, "accept");
  await rejectsWith(connect({ name: p.listener.path, signal }), reason, "connect");
  await assert.rejects(
    p.listener.accept({ signal: AbortSignal.timeout(300) }),
    (error: Error) => error.name === "TimeoutError",
    "no client came from the aborted connect",
  );
  await using late = await connect({ name: p.listener.path });
  await using accepted = await within(p.listener.accept(), 5000, "the next client");
  await late.writeMessage(encoder.encode("late"));
  assert.equal(text(await within(accepted.readMessage(), 5000, "the late client's message")), "late");
});

// ---- reads ----------------------------------------------------------------------------------

for (const mode of ["message", "byte"] as PipeMode[]) {
  const reads: [string, (conn: PipeConn, signal?: AbortSignal) => Promise<string | null>][] = [
    ["readMessage()", async (conn, signal) => text(await conn.readMessage({ signal }))],
    ["read()", async (conn, signal) => {
      const buffer = new Uint8Array(256);
      const n = await conn.read(buffer, { signal });
      return n === null ? null : decoder.decode(buffer.subarray(0, n));
    }],
  ];
  for (const [label, read] of reads) {
    Deno.test(`${mode} mode: a waiting ${label} is cancelled alone, and the read queued behind it gets the data`, async () => {
      await using p = await pair({ name: uniqueName("cancelread"), mode });
      const controller = new AbortController();
      const cancelled = read(p.client, controller.signal);
      const next = read(p.client);
      assert.ok(await stillPending(cancelled, 100), "the read waits for data");
      const reason = new Error("read no more");
      controller.abort(reason);
      await rejectsWith(cancelled, reason, `the cancelled ${label}`);
      // Writing on the same connection still works meanwhile, in both directions.
      await p.client.writeMessage(encoder.encode("up"));
      assert.equal(text(await within(p.server.readMessage(), 5000, "the client's message")), "up");
      await p.server.writeMessage(encoder.encode("down"));
      assert.equal(await within(next, 5000, "the read queued behind"), "down");
      // And later reads still work.
      await p.server.writeMessage(encoder.encode("again"));
      assert.equal(await within(read(p.client), 5000, "a later read"), "again");
    });

    Deno.test(`${mode} mode: a ${label} queued behind another is cancelled alone`, async () => {
      await using p = await pair({ name: uniqueName("cancelqueued"), mode });
      const first = read(p.client);
      const controller = new AbortController();
      const queued = read(p.client, controller.signal);
      assert.ok(await stillPending(queued, 50), "the queued read waits");
      controller.abort("queued reason");
      await rejectsWith(queued, "queued reason", `the queued ${label}`);
      await p.server.writeMessage(encoder.encode("first"));
      assert.equal(await within(first, 5000, "the first read"), "first");
    });
  }
}

Deno.test("a timeout signal rejects a waiting readMessage() with a TimeoutError and the connection goes on", async () => {
  await using p = await pair({ name: uniqueName("timeoutread") });
  const started = performance.now();
  await assert.rejects(
    within(p.client.readMessage({ signal: AbortSignal.timeout(150) }), 10_000, "the timeout"),
    (error: Error) => error instanceof DOMException && error.name === "TimeoutError",
  );
  assert.ok(performance.now() - started >= 100, "not before the timeout");
  await p.server.writeMessage(pattern(100));
  assert.deepEqual(await within(p.client.readMessage(), 5000, "a later message"), pattern(100));
});

// ---- accept and connect -----------------------------------------------------------------------

Deno.test("a cancelled accept() leaves the listener to the other accept(), which gets the next client", async () => {
  await using listener = listen({ name: uniqueName("cancelaccept") });
  const controller = new AbortController();
  const cancelled = listener.accept({ signal: controller.signal });
  const other = listener.accept();
  assert.ok(await stillPending(cancelled, 50), "accept waits for a client");
  controller.abort("stop accepting");
  await rejectsWith(cancelled, "stop accepting", "the cancelled accept");
  await using client = await connect({ name: listener.path });
  await using server = await within(other, 5000, "the other accept");
  await client.writeMessage(encoder.encode("hello"));
  assert.equal(text(await within(server.readMessage(), 5000, "the client's message")), "hello");
});

Deno.test("aborting connections({ signal }) throws its reason out of for await; the listener still accepts", async () => {
  await using listener = listen({ name: uniqueName("cancelloop") });
  const controller = new AbortController();
  const reason = new Error("shutting down");
  let seen = 0;
  const loop = (async () => {
    for await (const conn of listener.connections({ signal: controller.signal })) {
      seen++;
      await conn.close();
    }
  })();
  const first = await connect({ name: listener.path });
  for (let i = 0; seen < 1 && i < 500; i++) await delay(10);
  assert.equal(seen, 1);
  controller.abort(reason);
  await rejectsWith(loop, reason, "the loop");
  await first.close();
  await using client = await connect({ name: listener.path });
  await using server = await within(listener.accept(), 5000, "an accept after the loop");
  assert.ok(server.path === listener.path && client.path === listener.path);
});

Deno.test("a cancelled connect() stops waiting for a missing server at once", async () => {
  const controller = new AbortController();
  const started = performance.now();
  const connecting = connect({
    name: uniqueName("cancelconnect"),
    timeout: 60_000,
    signal: controller.signal,
  });
  assert.ok(await stillPending(connecting, 100), "connect waits for the server");
  controller.abort("no longer needed");
  await rejectsWith(connecting, "no longer needed", "the cancelled connect");
  assert.ok(performance.now() - started < 30_000, "long before its own timeout");
});

// ---- writes -----------------------------------------------------------------------------------

/** Write 64 KiB messages from `conn` until one waits (the peer does not read); returns it. */
async function fillUntilWriteWaits(
  conn: PipeConn,
  signal: AbortSignal,
): Promise<{ pending: Promise<void>; written: number }> {
  for (let written = 0; written < 2000; written++) {
    const write = conn.writeMessage(pattern(64 * 1024, written), { signal });
    if (await stillPending(write, 50)) return { pending: write, written };
    await write;
  }
  throw new Error("No write ever waited: the peer's buffer never filled");
}

Deno.test({
  name:
    "a cancelled waiting write leaves the connection usable, and the write queued behind it goes on (Linux only: Windows closes it)",
  ignore: windows,
  async fn() {
    await using p = await pair({ name: uniqueName("cancelwrite"), bufferSize: 4096 });
    const controller = new AbortController();
    const { pending, written } = await fillUntilWriteWaits(p.client, controller.signal);
    const behind = p.client.writeMessage(encoder.encode("behind"));
    controller.abort("write no more");
    await rejectsWith(pending, "write no more", "the cancelled write");
    for (let i = 0; i < written; i++) {
      assert.deepEqual(await within(p.server.readMessage(), 5000, `message ${i}`), pattern(64 * 1024, i));
    }
    // The cancelled message never arrives: the next is the one queued behind it.
    await within(behind, 5000, "the write queued behind");
    assert.equal(text(await within(p.server.readMessage(), 5000, "the queued message")), "behind");
    await p.client.writeMessage(encoder.encode("later"));
    assert.equal(text(await within(p.server.readMessage(), 5000, "a later message")), "later");
  },
});

Deno.test({
  name:
    "a cancelled write pending in the kernel closes the connection (Windows only: the peer may hold part of it)",
  ignore: !windows,
  async fn() {
    await using p = await pair({ name: uniqueName("cancelwritewin"), bufferSize: 4096 });
    const controller = new AbortController();
    const { pending } = await fillUntilWriteWaits(p.client, controller.signal);
    controller.abort("write no more");
    await rejectsWith(pending, "write no more", "the cancelled write");
    await assert.rejects(p.client.writeMessage(encoder.encode("later")), Deno.errors.BadResource);
  },
});

// ---- leaks ------------------------------------------------------------------------------------

Deno.test("cancelled reads, writes, accepts and connects leak no handle", async () => {
  const osCount = await osHandleCounter();
  const engineBefore = openHandleCount();
  const osBefore = osCount();
  for (let round = 0; round < 20; round++) {
    await using p = await pair({ name: uniqueName("cancelleak") });
    const reads = new AbortController();
    const read = p.client.readMessage({ signal: reads.signal });
    const accepts = new AbortController();
    const accept = p.listener.accept({ signal: accepts.signal });
    const connects = new AbortController();
    const connecting = connect({ name: uniqueName("cancelleak_missing"), signal: connects.signal });
    await delay(5);
    reads.abort();
    accepts.abort();
    connects.abort();
    await Promise.allSettled([read, accept, connecting]);
    await assert.rejects(read, (error: Error) => error.name === "AbortError");
    await p.server.writeMessage(pattern(8, round));
    assert.deepEqual(
      await within(p.client.readMessage(), 5000, "a message after the cancellations"),
      pattern(8, round),
    );
    if (round % 4 === 0) {
      // A write waiting for a peer that does not read (on Windows this closes its connection).
      await using w = await pair({ name: uniqueName("cancelleakwrite"), bufferSize: 4096 });
      const writes = new AbortController();
      const { pending } = await fillUntilWriteWaits(w.client, writes.signal);
      writes.abort();
      await assert.rejects(pending, (error: Error) => error.name === "AbortError");
    }
  }
  // The completion port closes once its loop has noticed that nothing is left: give it a moment.
  for (let i = 0; openHandleCount() !== engineBefore && i < 200; i++) await delay(10);
  assert.equal(openHandleCount(), engineBefore, "the engine's handle count");
  // Linux: /proc/self/fd. Windows: GetProcessHandleCount, a stub returning 0 under Wine, where only
  // the engine's own count above can be checked.
  const osAfter = osCount();
  if (osBefore > 0) assert.ok(Math.abs(osAfter - osBefore) < 10, `${osBefore} → ${osAfter} OS handles`);
});

/** The OS's count of this process's open handles or descriptors; 0 when unknown. */
async function osHandleCounter(): Promise<() => number> {
  if (windows) {
    const { CURRENT_PROCESS, kernel32 } = await import("../ffi/kernel32.ts");
    const count = new Uint32Array(1);
    return () => kernel32().GetProcessHandleCount(CURRENT_PROCESS, count) ? count[0] : 0;
  }
  return () => [...Deno.readDirSync("/proc/self/fd")].length;
}

// ---- unref ------------------------------------------------------------------------------------

/** Run `tests/fixtures/idle_pipes.ts CASE MARKER` and watch its marker file. */
function spawnIdle(which: string) {
  const marker = Deno.makeTempFileSync({ prefix: "np_idle_" });
  const config = new URL("../deno.json", import.meta.url);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      decodeURIComponent(config.pathname).replace(/^\/([A-Za-z]:)/, "$1"),
      new URL("./fixtures/idle_pipes.ts", import.meta.url).href,
      which,
      marker,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const lines = () => Deno.readTextFileSync(marker).split("\n").filter(Boolean);
  return {
    status,
    lines,
    get exited() {
      return exited;
    },
    async ready() {
      for (let i = 0; !lines().includes("ready"); i++) {
        if (exited) throw new Error(`The ${which} child exited before it was ready: ${lines()}`);
        if (i > 3000) throw new Error(`The ${which} child never got ready`);
        await delay(10);
      }
    },
    async [Symbol.asyncDispose]() {
      if (!exited) child.kill("SIGKILL");
      await status;
      Deno.removeSync(marker);
    },
  };
}

for (const which of ["unref-listener", "unref-conns"]) {
  Deno.test(`${which}: a program whose pipes wait unref'd exits by itself`, async () => {
    await using child = spawnIdle(which);
    await child.ready();
    const status = await within(child.status, 30_000, `the ${which} child to exit by itself`);
    assert.equal(status.code, 0);
  });
}

for (
  const [which, what] of [
    ["ref-again", "a listener unref'd and ref'd again"],
    ["accepted-ref", "a read on a connection accepted by an unref'd listener"],
  ]
) {
  Deno.test(`${what} keeps the program running`, async () => {
    await using child = spawnIdle(which);
    await child.ready();
    await delay(2000);
    assert.ok(!child.exited, `the ${which} child exited by itself`);
  });
}

Deno.test("an unref'd listener still accepts while something else keeps the program running", async () => {
  await using child = spawnIdle("unref-accepts");
  await child.ready();
  const status = await within(child.status, 30_000, "the child to accept and exit");
  assert.equal(status.code, 0);
  assert.ok(child.lines().includes("accepted"), `marker: ${child.lines()}`);
  assert.ok(!child.lines().includes("timer fired"));
});
