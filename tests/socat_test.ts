/**
 * Our sockets against a tool nobody here wrote: `socat` (from apt), in seqpacket mode
 * (`socktype=5`) for message mode and as a plain stream for byte mode. Linux-only. socat is never
 * optional: `deno task test` installs it (`setup.ts`), and without it these tests fail saying so.
 * Every wait is bounded and every child is killed in a `finally`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, listen, pipePath } from "../mod.ts";
import { uniqueName as sharedName, within as withinMs } from "./_pipes.ts";
import { spawnTool } from "./setup.ts";

const WAIT_MS = 20_000;

/** A pipe name no other test (or run) uses. */
const uniqueName = () => sharedName("socat");
/** `promise`, or a rejection naming `what` if it has not settled within `ms`. */
const within = <T>(promise: Promise<T>, what: string, ms = WAIT_MS) => withinMs(promise, ms, what);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const ignore = Deno.build.os !== "linux";

/** socat with piped stdio; `result` collects its output and exit status. */
function socat(args: string[]): { child: Deno.ChildProcess; result: Promise<Deno.CommandOutput> } {
  const child = spawnTool("socat", { args, stdin: "piped", stdout: "piped", stderr: "piped" });
  return { child, result: child.output() };
}

async function kill(child: Deno.ChildProcess, result: Promise<unknown>): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already exited.
  }
  await within(result.catch(() => {}), "socat to exit");
}

Deno.test({
  name: "socat in seqpacket mode sends one message to our server and reads our reply",
  ignore,
  async fn() {
    await using listener = listen({ name: uniqueName() });
    const { child, result } = socat(["-t", "10", "-", `UNIX-CONNECT:${listener.path},socktype=5`]);
    try {
      const writer = child.stdin.getWriter();
      await writer.write(encoder.encode("hello from socat"));
      await writer.close();

      await using conn = await within(listener.accept(), "socat to connect");
      assert.equal(conn.peerPid, child.pid, "SO_PEERCRED names the socat process");
      assert.equal(
        decoder.decode((await within(conn.readMessage(), "socat's message"))!),
        "hello from socat",
      );
      await conn.writeMessage(encoder.encode("hello from namedpipe"));
      // socat passes the end of its input on as a shutdown: our end of stream.
      assert.equal(await within(conn.readMessage(), "socat's end of stream"), null);
      await conn.close();

      const output = await within(result, "socat to exit");
      assert.equal(output.code, 0, decoder.decode(output.stderr));
      assert.equal(decoder.decode(output.stdout), "hello from namedpipe");
    } finally {
      await kill(child, result);
    }
  },
});

Deno.test({
  name: "our client exchanges a message with a socat seqpacket server",
  ignore,
  async fn() {
    const path = pipePath(uniqueName());
    const { child, result } = socat([`UNIX-LISTEN:${path},socktype=5`, "SYSTEM:cat"]);
    try {
      await child.stdin.close();
      // connect() retries while socat is still between bind and listen.
      await using client = await within(connect({ name: path, timeout: WAIT_MS }), "connect to socat");
      await client.writeMessage(encoder.encode("ping"));
      assert.equal(decoder.decode((await within(client.readMessage(), "the echo from cat"))!), "ping");
    } finally {
      await kill(child, result);
      await Deno.remove(path).catch(() => {});
    }
  },
});

Deno.test({
  name: "socat as a stream client talks to our byte-mode server",
  ignore,
  async fn() {
    await using listener = listen({ name: uniqueName(), mode: "byte" });
    const { child, result } = socat(["-t", "10", "-", `UNIX-CONNECT:${listener.path}`]);
    try {
      const writer = child.stdin.getWriter();
      await writer.write(encoder.encode("bytes from socat"));
      await writer.close();

      await using conn = await within(listener.accept(), "socat to connect");
      let received = "";
      const buffer = new Uint8Array(1024);
      while (true) {
        const n = await within(conn.read(buffer), "socat's bytes");
        if (n === null) break;
        received += decoder.decode(buffer.subarray(0, n));
      }
      assert.equal(received, "bytes from socat");
      await conn.writeMessage(encoder.encode("bytes from namedpipe"));
      await conn.close();

      const output = await within(result, "socat to exit");
      assert.equal(output.code, 0, decoder.decode(output.stderr));
      assert.equal(decoder.decode(output.stdout), "bytes from namedpipe");
    } finally {
      await kill(child, result);
    }
  },
});
