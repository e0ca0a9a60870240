/**
 * The Linux socket name: the lock a listener holds beside it, servers racing for a stale socket,
 * telling a live server from a stale file without becoming its client, names as long as `sun_path`
 * allows, and private directories left by killed processes. Linux-only.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, listen, pipePath } from "../mod.ts";
import { serve, uniqueName, within } from "./_pipes.ts";

const ignore = Deno.build.os !== "linux";
const WAIT_MS = 30_000;
/** Rounds of the 16-server race: before the lock, two winners showed up within 20 to 50 rounds. */
const ROUNDS = 100;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The lock file a listener holds beside the socket at `path`. */
function lockOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.lock`;
}
const MOD = new URL("../mod.ts", import.meta.url).href;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/** Another program's `SOCK_SEQPACKET` socket, bound at `path` and not yet listening. */
function bindForeignSocket(path: string): { listen(backlog: number): number; close(): void } {
  const lib = Deno.dlopen("libc.so.6", {
    socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
    bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
    listen: { parameters: ["i32", "i32"], result: "i32" },
    close: { parameters: ["i32"], result: "i32" },
  });
  const fd = lib.symbols.socket(1, 5, 0); // AF_UNIX, SOCK_SEQPACKET
  const close = () => {
    lib.symbols.close(fd);
    lib.close();
  };
  try {
    const address = new Uint8Array(110);
    address[0] = 1; // AF_UNIX
    address.set(encoder.encode(path), 2);
    assert.equal(lib.symbols.bind(fd, address, 110), 0, `bind ${path}`);
  } catch (error) {
    close();
    throw error;
  }
  return { listen: (backlog) => lib.symbols.listen(fd, backlog), close };
}

/** Leave a stale socket file at `path`: bound (and listened on), then closed without unlinking. */
function leaveStaleSocket(path: string): void {
  const foreign = bindForeignSocket(path);
  try {
    assert.equal(foreign.listen(1), 0);
  } finally {
    foreign.close();
  }
  assert.ok(Deno.lstatSync(path).isSocket);
}

/** A child Deno running `code` (with `listen` and `connect` imported), its output piped. */
function spawnChild(code: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", CONFIG, `import { connect, listen } from "${MOD}";\n${code}`],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Read `child`'s stdout line by line until `done` says enough; returns the lines. */
async function readLines(
  reader: ReadableStreamDefaultReader<string>,
  lines: string[],
  until: (lines: string[]) => boolean,
): Promise<string[]> {
  let buffered = "";
  while (!until(lines)) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    const parts = buffered.split("\n");
    buffered = parts.pop()!;
    lines.push(...parts);
  }
  return lines;
}

Deno.test({
  name: "16 servers started at once on a stale socket: exactly one serves, the others get AddrInUse",
  ignore,
  async fn() {
    // Each child waits on stdin for "go PATH" and answers "PATH listening" or "PATH <error name>";
    // the winners keep serving until stdin closes. Writing "go" to all 16 wakes them together.
    const code = `
      const listeners = [];
      const encoder = new TextEncoder();
      const serveAll = async (listener) => {
        for await (const conn of listener) {
          const message = await conn.readMessage();
          if (message) await conn.writeMessage(encoder.encode("pid " + Deno.pid));
          await conn.close();
        }
      };
      const serving = [];
      let buffered = "";
      for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
        buffered += chunk;
        const lines = buffered.split("\\n");
        buffered = lines.pop();
        for (const line of lines) {
          const path = line.slice(3);
          try {
            const listener = listen({ name: path });
            listeners.push(listener);
            serving.push(serveAll(listener));
            console.log(path + " listening");
          } catch (error) {
            console.log(path + " " + error.name);
          }
        }
      }
      for (const listener of listeners) await listener.close();
      await Promise.all(serving);`;
    const children = Array.from({ length: 16 }, () => spawnChild(code));
    const writers = children.map((child) => child.stdin.getWriter());
    const readers = children.map((child) => child.stdout.pipeThrough(new TextDecoderStream()).getReader());
    const outputs: string[][] = children.map(() => []);
    const paths: string[] = [];
    try {
      // Rounds make the race likely to show if it exists: before the lock, two servers could both
      // replace the stale socket within microseconds of each other.
      for (let round = 0; round < ROUNDS; round++) {
        const path = pipePath(uniqueName("stalerace"));
        paths.push(path);
        leaveStaleSocket(path);
        const go = encoder.encode(`go ${path}\n`);
        await Promise.all(writers.map((writer) => writer.write(go)));
        await within(
          Promise.all(readers.map((reader, i) => readLines(reader, outputs[i], (l) => l.length > round))),
          WAIT_MS,
          "16 listen() results",
        );
        if (outputs.some((lines) => lines.length <= round)) {
          const failed = children[outputs.findIndex((lines) => lines.length <= round)];
          const stderr = await failed.stderr.pipeThrough(new TextDecoderStream()).getReader().read();
          assert.fail(`round ${round}: a child ended early: ${stderr.value}`);
        }
        const results = outputs.map((lines) => lines[round].slice(path.length + 1));
        const winners = results.flatMap((result, i) => result === "listening" ? [i] : []);
        assert.equal(winners.length, 1, `round ${round}: ${results.join(", ")}`);
        assert.deepEqual(results.filter((result) => result !== "listening"), Array(15).fill("AddrInUse"));
        // The one that listens really holds the name.
        await using client = await connect({ name: path, timeout: WAIT_MS });
        await client.writeMessage(encoder.encode("who?"));
        const reply = decoder.decode((await within(client.readMessage(), WAIT_MS, "the reply"))!);
        assert.equal(reply, `pid ${children[winners[0]].pid}`, `round ${round}`);
      }
    } finally {
      for (const writer of writers) await writer.close().catch(() => {});
      for (const [i, child] of children.entries()) {
        const timer = setTimeout(() => child.kill("SIGKILL"), WAIT_MS);
        await child.status;
        clearTimeout(timer);
        await readers[i].cancel().catch(() => {});
        await child.stderr.cancel();
      }
      for (const path of paths) {
        try {
          Deno.removeSync(path);
        } catch { /* removed by the winner */ }
      }
    }
  },
});

Deno.test({
  name: "a second listen() on a live name is refused without the first server seeing a client",
  ignore,
  async fn() {
    await using server = serve({ name: uniqueName("noprobe") });
    for (const mode of ["message", "byte"] as const) {
      assert.throws(() => listen({ name: server.listener.path, mode }), Deno.errors.AddrInUse);
    }
    // A probe connection would have been accepted as a client by now.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(server.accepted, 0);
  },
});

Deno.test({
  name: "listen() refuses a name another program serves, seen in /proc/net/unix without connecting",
  ignore,
  async fn() {
    const path = pipePath(uniqueName("foreign"));
    // A foreign server that counts its clients: socat forks one `echo` per connection.
    const socat = new Deno.Command("socat", {
      args: [`UNIX-LISTEN:${path},socktype=5,fork`, "SYSTEM:echo accepted >&2"],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = socat.stderr.pipeThrough(new TextDecoderStream()).getReader();
    try {
      const deadline = Date.now() + WAIT_MS;
      while (!(await Deno.lstat(path).then((s) => s.isSocket, () => false))) {
        assert.ok(Date.now() < deadline, "socat did not start");
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.throws(() => listen({ name: path }), Deno.errors.AddrInUse);
      assert.ok(Deno.lstatSync(path).isSocket, "the live server's socket is left in place");
      // socat saw no connection: its stderr stays empty until it is killed.
      socat.kill("SIGTERM");
      let said = "";
      while (true) {
        const { value, done } = await within(stderr.read(), WAIT_MS, "socat's stderr");
        if (done) break;
        said += value;
      }
      assert.doesNotMatch(said, /accepted/);
    } finally {
      try {
        socat.kill("SIGKILL");
      } catch { /* gone */ }
      await socat.status;
      await Deno.remove(path).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "listen() refuses a name another program has bound but not yet listened on (its bind-to-listen window)",
  ignore,
  fn() {
    const path = pipePath(uniqueName("binding"));
    // A foreign server between bind() and listen(): a connect() is refused as if the file were
    // stale, yet replacing the file would leave that server listening on a name nobody can reach.
    const foreign = bindForeignSocket(path);
    try {
      assert.throws(() => listen({ name: path }), Deno.errors.AddrInUse);
      assert.ok(Deno.lstatSync(path).isSocket, "the starting server's socket is left in place");
    } finally {
      foreign.close();
      Deno.removeSync(path);
    }
  },
});

Deno.test({
  name: "a 107-byte socket path works, and a longer one is refused naming the user's path",
  ignore,
  async fn() {
    const directory = Deno.makeTempDirSync({ prefix: "np_long_" });
    try {
      // Pad the directory so that the full path is exactly 107 bytes (sun_path's limit).
      const padding = "d".repeat(107 - directory.length - "/".length * 2 - "s".length);
      Deno.mkdirSync(`${directory}/${padding}`);
      const path = `${directory}/${padding}/s`;
      assert.equal(encoder.encode(path).length, 107);
      await using _server = serve({ name: path });
      await using client = await connect({ name: path });
      await client.writeMessage(encoder.encode("long"));
      assert.equal(decoder.decode((await within(client.readMessage(), WAIT_MS, "the echo"))!), "long");
      assert.deepEqual([...Deno.readDirSync(`${directory}/${padding}`)].map((e) => e.name).sort(), [
        ".s.lock",
        "s",
      ]);

      const tooLong = `${directory}/${padding}/s2`;
      assert.throws(() => listen({ name: tooLong }), (error: Error) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.equal(error.message, `Cannot listen on "${tooLong}": socket path too long (108 > 107 bytes)`);
        return true;
      });
    } finally {
      Deno.removeSync(directory, { recursive: true });
    }
  },
});

Deno.test({
  name: "listen() removes private directories a killed server of this user left, and only those",
  ignore,
  async fn() {
    const directory = Deno.makeTempDirSync({ prefix: "np_leftover_" });
    try {
      // What a server killed between mkdtemp and the link leaves: .np-XXXXXX holding its socket.
      const old = `${directory}/.np-Ab12Cd`;
      Deno.mkdirSync(old, { mode: 0o700 });
      leaveStaleSocket(`${old}/s`);
      const anHourAgo = new Date(Date.now() - 3600_000);
      Deno.utimeSync(old, anHourAgo, anHourAgo);
      // One being set up right now by another server, and something else with the prefix.
      const fresh = `${directory}/.np-Ef34Gh`;
      Deno.mkdirSync(fresh, { mode: 0o700 });
      const unrelated = `${directory}/.np-notours`;
      Deno.mkdirSync(unrelated);
      Deno.utimeSync(unrelated, anHourAgo, anHourAgo);

      await using _listener = listen({ name: `${directory}/pipe` });
      const left = [...Deno.readDirSync(directory)].map((entry) => entry.name).sort();
      assert.deepEqual(left, [".np-Ef34Gh", ".np-notours", ".pipe.lock", "pipe"]);
    } finally {
      Deno.removeSync(directory, { recursive: true });
    }
  },
});

Deno.test({
  name: "close() removes the socket and its lock file, and the name can be served again at once",
  ignore,
  async fn() {
    const name = uniqueName("relisten");
    const path = pipePath(name);
    for (let i = 0; i < 3; i++) {
      const listener = listen({ name });
      assert.ok(Deno.lstatSync(lockOf(path)).isFile);
      await listener.close();
      assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);
      assert.throws(() => Deno.lstatSync(lockOf(path)), Deno.errors.NotFound);
    }
  },
});

Deno.test({
  name: "a lock file left by a killed server does not keep the name from being served",
  ignore,
  async fn() {
    const path = pipePath(uniqueName("oldlock"));
    leaveStaleSocket(path);
    Deno.writeTextFileSync(lockOf(path), "");
    await using server = serve({ name: path });
    assert.equal((server.listener.describe() as { replacedStale?: boolean }).replacedStale, true);
    await using client = await connect({ name: path });
    await client.writeMessage(encoder.encode("x"));
    assert.equal(decoder.decode((await within(client.readMessage(), WAIT_MS, "the echo"))!), "x");
  },
});

Deno.test({
  name: "listen() in a directory that does not exist fails with NotFound naming that directory",
  ignore,
  fn() {
    const directory = `/nonexistent_${uniqueName("dir")}`;
    assert.throws(() => listen({ name: `${directory}/pipe` }), (error: Error) => {
      assert.ok(error instanceof Deno.errors.NotFound, String(error));
      assert.equal(
        error.message,
        `Cannot listen on "${directory}/pipe": directory "${directory}" does not exist`,
      );
      return true;
    });
  },
});
