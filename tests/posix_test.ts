/**
 * The Linux backend (Unix domain sockets over libc): socket file modes, stale sockets, the name
 * rule, message semantics and descriptor leaks. Linux-only; every wait is bounded and every server
 * and connection is closed in a `finally` or by `await using`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, listen, openHandleCount, type PipeConn, type PipeListener, pipePath } from "../mod.ts";
import {
  connectDenoUnix,
  listenDenoUnix,
  openHandleCount as denoUnixHandleCount,
} from "../pipe/posix/deno_unix.ts";
import { uniqueName as sharedName, within as withinMs } from "./_pipes.ts";
import { largestMessage } from "./_send_limit.ts";
import { spawnTool } from "./setup.ts";
import { assertOsCountBack, descriptorsOf } from "./_os_handles.ts";

const ignore = Deno.build.os !== "linux";
const WAIT_MS = 20_000;

/** A pipe name no other test (or run) uses. */
const uniqueName = () => sharedName("posix");
/** `promise`, or a rejection naming `what` if it has not settled within `ms`. */
const within = <T>(promise: Promise<T>, what: string, ms = WAIT_MS) => withinMs(promise, ms, what);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An echo server that closes every connection it accepted when disposed. */
class EchoServer implements AsyncDisposable {
  readonly listener: PipeListener;
  readonly conns = new Set<PipeConn>();
  readonly errors: unknown[] = [];
  #handlers = new Set<Promise<void>>();
  #loop: Promise<void>;

  constructor(listener: PipeListener) {
    this.listener = listener;
    this.#loop = this.#serve();
  }

  async #serve(): Promise<void> {
    for await (const conn of this.listener) {
      this.conns.add(conn);
      const handler = this.#echo(conn).finally(() => this.#handlers.delete(handler));
      this.#handlers.add(handler);
    }
  }

  async #echo(conn: PipeConn): Promise<void> {
    try {
      while (true) {
        const message = await conn.readMessage();
        if (message === null) break;
        await conn.writeMessage(message);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) this.errors.push(error);
    } finally {
      this.conns.delete(conn);
      await conn.close();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.listener.close();
    await within(this.#loop, "the accept loop to end");
    for (const conn of this.conns) await conn.close();
    await within(Promise.all(this.#handlers), "the echo handlers to end");
  }
}

function modeOf(path: string): number {
  return Deno.lstatSync(path).mode! & 0o7777;
}

/** Run `socat` with `args` until it exits; it is killed if it outlives `WAIT_MS`. */
function spawnSocat(args: string[]): Deno.ChildProcess {
  return spawnTool("socat", { args, stdin: "null", stdout: "null", stderr: "piped" });
}

/** Wait until a server listens on `path` (a socket file alone may still be between bind and listen). */
async function waitForServer(path: string): Promise<void> {
  const conn = await connect({ name: path, timeout: WAIT_MS });
  await conn.close();
}

Deno.test({
  name: "pipePath() maps a bare name to $TMPDIR/CoreFxPipe_NAME and keeps an absolute path",
  ignore,
  fn() {
    const saved = Deno.env.get("TMPDIR");
    try {
      Deno.env.set("TMPDIR", "/var/tmp/");
      assert.equal(pipePath("HelloWorld"), "/var/tmp/CoreFxPipe_HelloWorld");
      assert.equal(pipePath("\\\\.\\pipe\\HelloWorld"), "/var/tmp/CoreFxPipe_HelloWorld");
      Deno.env.delete("TMPDIR");
      assert.equal(pipePath("HelloWorld"), "/tmp/CoreFxPipe_HelloWorld");
      assert.equal(pipePath("/run/user/app.sock"), "/run/user/app.sock");
      assert.throws(() => pipePath("a/b"), TypeError);
      assert.throws(() => pipePath("HelloWorld", "otherhost"), /Windows-only/);
    } finally {
      if (saved === undefined) Deno.env.delete("TMPDIR");
      else Deno.env.set("TMPDIR", saved);
    }
  },
});

Deno.test({
  name: "listen() gives the socket mode 0600 in a directory others cannot write to or replace in",
  ignore,
  async fn() {
    await using listener = listen({ name: uniqueName() });
    assert.ok(Deno.lstatSync(listener.path).isSocket);
    assert.equal(modeOf(listener.path), 0o600);
    assert.equal(listener.describe().fileMode, 0o600);
    const directory = listener.path.slice(0, listener.path.lastIndexOf("/"));
    const dirMode = modeOf(directory);
    // Either others cannot write there at all, or the sticky bit stops them from removing our file.
    assert.ok((dirMode & 0o002) === 0 || (dirMode & 0o1000) !== 0, `directory mode ${dirMode.toString(8)}`);
    // No private directory is left behind next to it.
    const leftovers = [...Deno.readDirSync(directory)].filter((entry) => entry.name.startsWith(".np-"));
    assert.deepEqual(
      leftovers.filter((entry) => Deno.lstatSync(`${directory}/${entry.name}`).uid === Deno.uid()),
      [],
    );
  },
});

Deno.test({
  name: "listen() with security everyone gives the socket mode 0666",
  ignore,
  async fn() {
    await using listener = listen({ name: uniqueName(), security: "everyone" });
    assert.equal(modeOf(listener.path), 0o666);
    assert.equal(listener.describe().fileMode, 0o666);
  },
});

Deno.test({
  name: "listen() refuses an SDDL security descriptor as Windows-only",
  ignore,
  fn() {
    assert.throws(() => listen({ name: uniqueName(), security: { sddl: "D:P(A;;GA;;;WD)" } }), {
      name: "TypeError",
      message: /SDDL is Windows-only/,
    });
  },
});

Deno.test({
  name: "close() removes the socket file the listener created",
  ignore,
  async fn() {
    const listener = listen({ name: uniqueName() });
    assert.ok(Deno.lstatSync(listener.path).isSocket);
    await listener.close();
    assert.throws(() => Deno.lstatSync(listener.path), Deno.errors.NotFound);
    await listener.close();
  },
});

Deno.test({
  name: "listen() on a name a live server holds fails with AddrInUse and leaves that server working",
  ignore,
  async fn() {
    await using server = new EchoServer(listen({ name: uniqueName() }));
    const name = server.listener.path;
    assert.throws(() => listen({ name }), (error: Error & { code?: number }) => {
      assert.ok(error instanceof Deno.errors.AddrInUse, String(error));
      assert.match(error.message, /name already in use/);
      return true;
    });
    assert.throws(() => listen({ name, mode: "byte" }), Deno.errors.AddrInUse);
    assert.throws(() => listen({ name, firstInstance: false }), Deno.errors.AddrInUse);
    await using client = await connect({ name });
    await client.writeMessage(encoder.encode("still here"));
    assert.equal(decoder.decode((await within(client.readMessage(), "the echo"))!), "still here");
  },
});

Deno.test({
  name: "listen() fails with AddrInUse on a name a live server in another process holds",
  ignore,
  async fn() {
    const path = pipePath(uniqueName());
    const socat = spawnSocat([`UNIX-LISTEN:${path},socktype=5,fork`, "SYSTEM:cat"]);
    try {
      await waitForServer(path);
      assert.throws(() => listen({ name: path }), Deno.errors.AddrInUse);
      assert.ok(Deno.lstatSync(path).isSocket, "the live server's socket is left in place");
    } finally {
      socat.kill("SIGKILL");
      await within(socat.status, "socat to exit");
      await socat.stderr.cancel();
      await Deno.remove(path).catch(() => {});
    }
  },
});

Deno.test({
  name: "listen() replaces a stale socket file left by a crashed server",
  ignore,
  async fn() {
    const path = pipePath(uniqueName());
    const crashed = spawnSocat([`UNIX-LISTEN:${path},socktype=5,fork`, "SYSTEM:cat"]);
    await waitForServer(path);
    crashed.kill("SIGKILL");
    await within(crashed.status, "the crashed server to exit");
    await crashed.stderr.cancel();
    assert.ok(Deno.lstatSync(path).isSocket, "the crashed server left its socket file");

    await using server = new EchoServer(listen({ name: path }));
    assert.equal((server.listener.describe() as { replacedStale?: boolean }).replacedStale, true);
    assert.equal(modeOf(path), 0o600);
    await using client = await connect({ name: path });
    await client.writeMessage(encoder.encode("fresh"));
    assert.equal(decoder.decode((await within(client.readMessage(), "the echo"))!), "fresh");
  },
});

Deno.test({
  name: "listen() refuses to replace a file that is not a socket",
  ignore,
  fn() {
    const path = pipePath(uniqueName());
    Deno.writeTextFileSync(path, "not a socket");
    try {
      assert.throws(() => listen({ name: path }), Deno.errors.AddrInUse);
      assert.equal(Deno.readTextFileSync(path), "not a socket");
    } finally {
      Deno.removeSync(path);
    }
  },
});

Deno.test({
  name: "a zero-length message is a message, and end of stream is null",
  ignore,
  async fn() {
    await using listener = listen({ name: uniqueName() });
    await using client = await connect({ name: listener.path });
    // Sent before the server accepts: the queued message must keep its meaning.
    await client.writeMessage(new Uint8Array(0));
    await client.writeMessage(encoder.encode("after"));
    await using conn = await within(listener.accept(), "accept");
    assert.deepEqual(await within(conn.readMessage(), "the empty message"), new Uint8Array(0));
    assert.equal(decoder.decode((await within(conn.readMessage(), "the next message"))!), "after");
    await client.close();
    assert.equal(await within(conn.readMessage(), "end of stream"), null);
    assert.equal(await within(conn.readMessage(), "end of stream again"), null);
  },
});

Deno.test({
  name:
    "a message of maxMessageSize (1 MiB where the send buffer allows) arrives whole; one byte more drops it",
  ignore,
  async fn() {
    // The greedy client below must be able to send one byte more than the server's limit.
    const maxMessageSize = Math.min(1024 * 1024, largestMessage(2 * 1024 * 1024) - 1);
    await using server = new EchoServer(listen({ name: uniqueName(), maxMessageSize }));
    const name = server.listener.path;
    const big = new Uint8Array(maxMessageSize);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    await using client = await connect({ name, maxMessageSize });
    await client.writeMessage(big);
    assert.deepEqual(await within(client.readMessage(), "the echo at the limit"), big);

    await using greedy = await connect({ name, maxMessageSize: 2 * 1024 * 1024 });
    await greedy.writeMessage(new Uint8Array(big.length + 1));
    // The server drops the connection: end of stream here, a RangeError on its side.
    assert.equal(await within(greedy.readMessage(), "the drop"), null);
    await client.writeMessage(encoder.encode("server goes on"));
    assert.equal(decoder.decode((await within(client.readMessage(), "the echo"))!), "server goes on");
    await using late = await connect({ name });
    await late.writeMessage(encoder.encode("new client"));
    assert.equal(decoder.decode((await within(late.readMessage(), "the echo"))!), "new client");
    assert.equal(server.errors.length, 1);
    assert.ok(server.errors[0] instanceof RangeError, String(server.errors[0]));
    assert.match((server.errors[0] as Error).message, /exceeds maxMessageSize/);
  },
});

Deno.test({
  name: "a message larger than the send buffer allows is a clear RangeError and the connection goes on",
  ignore,
  async fn() {
    await using listener = listen({ name: uniqueName() });
    // A small maxMessageSize leaves the socket's default send buffer (net.core.wmem_default), whatever
    // the privilege: the same limit an unprivileged sender meets at wmem_max.
    const maxMessageSize = 1000;
    await using client = await connect({ name: listener.path, maxMessageSize });
    await using conn = await within(listener.accept(), "accept");
    const largest = largestMessage(maxMessageSize);
    assert.ok(Number.isFinite(largest), "a Linux send buffer always has a size");
    await client.writeMessage(new Uint8Array(largest).fill(7));
    assert.equal((await within(conn.readMessage(), "the largest message"))?.length, largest);
    await assert.rejects(
      client.writeMessage(new Uint8Array(largest + 1)),
      (error: Error & { code?: number }) => {
        assert.ok(error instanceof RangeError, String(error));
        assert.match(error.message, new RegExp(`message of ${largest + 1} bytes does not fit`));
        assert.match(error.message, /net\.core\.wmem_max/);
        assert.equal(error.code, 90); // EMSGSIZE
        return true;
      },
    );
    // Nothing of it was sent: the connection carries the next message as if it had not been tried.
    await client.writeMessage(encoder.encode("after"));
    assert.equal(decoder.decode((await within(conn.readMessage(), "the next message"))!), "after");
  },
});

Deno.test({
  name:
    "a maxMessageSize above 4 MiB takes a 3 MiB message (or the largest that fits) without a buffer of that size",
  ignore,
  async fn() {
    const maxMessageSize = 6 * 1024 * 1024;
    await using server = new EchoServer(listen({ name: uniqueName(), maxMessageSize }));
    await using client = await connect({ name: server.listener.path, maxMessageSize });
    // 3 MiB, or the largest message an unprivileged sender may send: either takes the path that
    // learns the size first.
    const big = new Uint8Array(Math.min(3 * 1024 * 1024, largestMessage(maxMessageSize))).map((_, i) =>
      i % 253
    );
    await client.writeMessage(big);
    assert.deepEqual(await within(client.readMessage(), "the large echo"), big);
    await client.writeMessage(new Uint8Array(0));
    assert.deepEqual(await within(client.readMessage(), "the empty echo"), new Uint8Array(0));
  },
});

Deno.test({
  name: "writes wait while the peer reads nothing and complete once it reads",
  ignore,
  async fn() {
    for (const mode of ["message", "byte"] as const) {
      await using listener = listen({ name: uniqueName(), mode });
      await using client = await connect({ name: listener.path, mode });
      await using conn = await within(listener.accept(), "accept");
      const chunk = new Uint8Array(256 * 1024).fill(mode === "message" ? 1 : 2);
      const count = 64; // 16 MiB: far more than any socket buffer holds
      let written = 0;
      const writing = (async () => {
        for (let i = 0; i < count; i++) {
          await client.writeMessage(chunk);
          written++;
        }
      })();
      // Let the writer fill the socket; it must then be waiting, not failing.
      for (let i = 0; i < 50; i++) await new Promise((resolve) => setTimeout(resolve, 1));
      assert.ok(written < count, `${mode}: all ${written} writes completed with nobody reading`);
      let received = 0;
      const buffer = new Uint8Array(64 * 1024);
      while (received < count * chunk.length) {
        const n = mode === "message"
          ? (await within(conn.readMessage(), "a message"))!.length
          : (await within(conn.read(buffer), "bytes"))!;
        received += n;
      }
      await within(writing, "the writes to complete");
      assert.equal(written, count);
    }
  },
});

Deno.test({
  name: "writes made together leave in the order they were made while the socket is full",
  ignore,
  async fn() {
    for (const mode of ["message", "byte"] as const) {
      await using listener = listen({ name: uniqueName(), mode });
      await using client = await connect({ name: listener.path, mode });
      await using conn = await within(listener.accept(), "accept");
      const size = 100 * 1024;
      const count = 100;
      const writes = Array.from(
        { length: count },
        (_, i) => client.writeMessage(new Uint8Array(size).fill(i)),
      );
      const received = new Uint8Array(size * count);
      let offset = 0;
      while (offset < received.length) {
        const n = await within(conn.read(received.subarray(offset, offset + size)), "the data");
        assert.ok(n !== null, "early end of stream");
        offset += n;
      }
      await within(Promise.all(writes), "the writes");
      for (let i = 0; i < count; i++) {
        const block = received.subarray(i * size, (i + 1) * size);
        assert.ok(block.every((byte) => byte === i), `${mode}: block ${i} out of order`);
      }
    }
  },
});

/** Send `payload` with `fds` attached (`SCM_RIGHTS`) over a new seqpacket connection to `path`. */
function sendWithDescriptors(path: string, payloads: Uint8Array[], fds: number[]): () => void {
  const lib = Deno.dlopen("libc.so.6", {
    socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
    connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
    sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
    close: { parameters: ["i32"], result: "i32" },
  });
  const fd = lib.symbols.socket(1, 5, 0); // AF_UNIX, SOCK_SEQPACKET
  const address = new Uint8Array(110);
  address[0] = 1; // AF_UNIX
  address.set(encoder.encode(path), 2);
  assert.equal(lib.symbols.connect(fd, address, 110), 0);
  const pointer = (buffer: Uint8Array) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
  for (const payload of payloads) {
    const data = new Uint8Array(new ArrayBuffer(Math.max(payload.length, 1)));
    data.set(payload);
    const iov = new Uint8Array(new ArrayBuffer(16));
    new DataView(iov.buffer).setBigUint64(0, pointer(data), true);
    new DataView(iov.buffer).setBigUint64(8, BigInt(payload.length), true);
    const control = new Uint8Array(new ArrayBuffer(16 + 8 * Math.ceil(fds.length / 2)));
    const cmsg = new DataView(control.buffer);
    cmsg.setBigUint64(0, BigInt(16 + 4 * fds.length), true); // cmsg_len
    cmsg.setInt32(8, 1, true); // SOL_SOCKET
    cmsg.setInt32(12, 1, true); // SCM_RIGHTS
    fds.forEach((n, i) => cmsg.setInt32(16 + 4 * i, n, true));
    const header = new DataView(new ArrayBuffer(56));
    header.setBigUint64(16, pointer(iov), true); // msg_iov
    header.setBigUint64(24, 1n, true); // msg_iovlen
    header.setBigUint64(32, pointer(control), true); // msg_control
    header.setBigUint64(40, BigInt(control.length), true); // msg_controllen
    assert.equal(Number(lib.symbols.sendmsg(fd, new Uint8Array(header.buffer), 0)), payload.length);
  }
  return () => {
    lib.symbols.close(fd);
    lib.close();
  };
}

Deno.test({
  name: "descriptors a peer passes with SCM_RIGHTS are never installed in this process",
  ignore,
  async fn() {
    await using listener = listen({ name: uniqueName() });
    const passed = [0, 1, 2, 0, 1, 2, 0, 1]; // stdio, eight times: each would be a new descriptor here
    const openFds = () => [...Deno.readDirSync("/proc/self/fd")].length;
    const hangUp = sendWithDescriptors(listener.path, [encoder.encode("hi"), new Uint8Array(0)], passed);
    try {
      const before = openFds();
      await using conn = await within(listener.accept(), "accept");
      assert.equal(decoder.decode((await within(conn.readMessage(), "the message"))!), "hi");
      assert.deepEqual(await within(conn.readMessage(), "the empty message"), new Uint8Array(0));
      assert.equal(openFds(), before + 1, "only the accepted socket is new");
    } finally {
      hangUp();
    }
  },
});

Deno.test({
  name: "read() hands out a message longer than its buffer over several calls",
  ignore,
  async fn() {
    await using listener = listen({ name: uniqueName() });
    await using client = await connect({ name: listener.path });
    await using conn = await within(listener.accept(), "accept");
    await client.writeMessage(encoder.encode("abcdef"));
    await client.writeMessage(new Uint8Array(0));
    const buffer = new Uint8Array(4);
    assert.equal(await conn.read(buffer), 4);
    assert.equal(decoder.decode(buffer), "abcd");
    assert.equal(await conn.read(buffer), 2);
    assert.equal(decoder.decode(buffer.subarray(0, 2)), "ef");
    // An empty message is what closeWrite() sends: read() reports it as end of stream (pipe/types.ts).
    assert.equal(await conn.read(buffer), null, "the empty message reads as end of stream");
    await client.close();
    assert.equal(await conn.read(buffer), null);
  },
});

Deno.test({
  name: "byte mode streams bytes both ways over SOCK_STREAM",
  ignore,
  async fn() {
    await using server = new EchoServer(listen({ name: uniqueName(), mode: "byte" }));
    await using client = await connect({ name: server.listener.path, mode: "byte" });
    const payload = new Uint8Array(300_000).map((_, i) => i % 256);
    const reading = (async () => {
      const received = new Uint8Array(payload.length);
      let offset = 0;
      while (offset < received.length) {
        const n = await client.read(received.subarray(offset));
        if (n === null) throw new Error("early end of stream");
        offset += n;
      }
      return received;
    })();
    await client.writeMessage(payload);
    assert.deepEqual(await within(reading, "the byte echo"), payload);
  },
});

Deno.test({
  name: "connect() in the wrong mode fails clearly, and to a missing name with NotFound",
  ignore,
  async fn() {
    await using listener = listen({ name: uniqueName(), mode: "byte" });
    await assert.rejects(connect({ name: listener.path, mode: "message", timeout: 0 }), /other mode/);
    await assert.rejects(connect({ name: uniqueName(), timeout: 50 }), Deno.errors.NotFound);
  },
});

Deno.test({
  name: "peerPid is this process on both ends",
  ignore,
  async fn() {
    await using listener = listen({ name: uniqueName() });
    await using client = await connect({ name: listener.path });
    await using conn = await within(listener.accept(), "accept");
    assert.equal(client.peerPid, Deno.pid);
    assert.equal(conn.peerPid, Deno.pid);
  },
});

Deno.test({
  name: "16 concurrent clients make 100 round trips each",
  ignore,
  async fn() {
    await using server = new EchoServer(listen({ name: uniqueName() }));
    const clients = Array.from({ length: 16 }, async (_, id) => {
      await using client = await connect({ name: server.listener.path });
      for (let i = 0; i < 100; i++) {
        const text = `client ${id} message ${i}`;
        await client.writeMessage(encoder.encode(text));
        assert.equal(decoder.decode((await client.readMessage())!), text);
      }
    });
    await within(Promise.all(clients), "1,600 round trips");
    assert.deepEqual(server.errors, []);
  },
});

Deno.test({
  name: "1,000 connect and disconnect cycles leave no descriptor behind (OS count: /proc/self/fd)",
  ignore,
  async fn() {
    const baseline = openHandleCount();
    const fdsBefore = descriptorsOf("self");
    {
      await using server = new EchoServer(listen({ name: uniqueName() }));
      const cycles = (async () => {
        for (let i = 0; i < 1000; i++) {
          const client = await connect({ name: server.listener.path });
          await client.close();
        }
      })();
      await within(cycles, "1,000 cycles");
      // The server sees each end of stream and closes its side.
      for (let i = 0; i < 1000 && server.conns.size > 0; i++) await new Promise((r) => setTimeout(r, 5));
      assert.equal(server.conns.size, 0);
    }
    assert.equal(openHandleCount(), baseline);
    assertOsCountBack(
      { source: "/proc/self/fd", count: () => descriptorsOf("self") },
      fdsBefore,
      "1,000 connect and disconnect cycles",
    );
  },
});

Deno.test({
  name: "closing a listener with clients connected and one connecting does not hang",
  ignore,
  async fn() {
    const server = new EchoServer(listen({ name: uniqueName() }));
    const name = server.listener.path;
    const clients = [await connect({ name }), await connect({ name })];
    try {
      await clients[0].writeMessage(encoder.encode("x"));
      await within(clients[0].readMessage(), "the echo");
      const connecting = connect({ name, timeout: 200 }).then(
        (conn) => conn,
        (error) => error as Error,
      );
      await within(server[Symbol.asyncDispose](), "the server to close");
      const late = await within(connecting, "the late client");
      if (late instanceof Error) {
        assert.ok(late instanceof Deno.errors.NotFound, String(late));
      } else {
        clients.push(late);
        assert.equal(await within(late.readMessage(), "the late client's end"), null);
      }
      for (const client of clients.slice(0, 2)) {
        assert.equal(await within(client.readMessage(), "end of stream"), null);
      }
      assert.throws(() => Deno.lstatSync(name), Deno.errors.NotFound);
    } finally {
      for (const client of clients) await client.close();
    }
  },
});

Deno.test({
  name: "a program that closes its listener during a blocked accept exits on its own",
  ignore,
  async fn() {
    const mod = new URL("../mod.ts", import.meta.url).href;
    const config = new URL("../deno.json", import.meta.url).pathname;
    // The accept waits in a blocking epoll_wait on a worker thread (the timer lets it start), and no
    // other socket can end that wait: only the eventfd written by close() can.
    const code = `
      import { listen } from "${mod}";
      const listener = listen({ name: "${uniqueName()}" });
      const accepting = listener.accept().catch((error) => error.name);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await listener.close();
      console.log(await accepting);`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--config", config, code],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // A hang is ended by a kill, and then fails the exit-code assertion below.
    const timer = setTimeout(() => child.kill("SIGKILL"), WAIT_MS);
    try {
      const output = await child.output();
      assert.equal(decoder.decode(output.stdout).trim(), "BadResource", decoder.decode(output.stderr));
      assert.equal(output.code, 0, "the program exited by itself, not killed after a hang");
    } finally {
      clearTimeout(timer);
    }
  },
});

Deno.test({
  name: "a pending accept() and a pending read reject with BadResource when closed",
  ignore,
  async fn() {
    const listener = listen({ name: uniqueName() });
    const accepting = listener.accept();
    await listener.close();
    await assert.rejects(within(accepting, "the accept"), Deno.errors.BadResource);

    await using again = listen({ name: uniqueName() });
    await using client = await connect({ name: again.path });
    const reading = client.readMessage();
    await client.close();
    await assert.rejects(within(reading, "the read"), Deno.errors.BadResource);
  },
});

Deno.test({
  name: "the macOS byte-mode backend (Deno sockets) serves our libc client with the same file rules",
  ignore,
  async fn() {
    const name = uniqueName();
    await using server = new EchoServer(listenDenoUnix({ name, mode: "byte" }));
    const path = server.listener.path;
    assert.equal(path, pipePath(name));
    assert.equal(modeOf(path), 0o600);
    assert.equal(server.listener.describe().fileMode, 0o600);
    assert.throws(() => listenDenoUnix({ name, mode: "byte" }), Deno.errors.AddrInUse);
    await using client = await connect({ name, mode: "byte" });
    await client.writeMessage(encoder.encode("over libc"));
    assert.equal(decoder.decode((await within(client.readMessage(), "the echo"))!), "over libc");
    await using other = await connectDenoUnix({ name, mode: "byte" });
    await other.writeMessage(encoder.encode("over Deno"));
    assert.equal(decoder.decode((await within(other.readMessage(), "the echo"))!), "over Deno");
    await other.close();
    await client.close();
    await server[Symbol.asyncDispose]();
    assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);
    assert.equal(denoUnixHandleCount(), 0);
  },
});

Deno.test({
  name: "the macOS byte-mode backend talks to a libc server and refuses a missing one with NotFound",
  ignore,
  async fn() {
    await using server = new EchoServer(listen({ name: uniqueName(), mode: "byte", security: "everyone" }));
    await using client = await connectDenoUnix({ name: server.listener.path, mode: "byte" });
    assert.equal(client.peerPid, 0);
    await client.writeMessage(encoder.encode("hello"));
    assert.equal(decoder.decode((await within(client.readMessage(), "the echo"))!), "hello");
    await assert.rejects(connectDenoUnix({ name: uniqueName(), timeout: 20 }), Deno.errors.NotFound);
    await client.close();
    await assert.rejects(client.read(new Uint8Array(1)), Deno.errors.BadResource);
  },
});
