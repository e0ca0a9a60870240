/**
 * Real interop with another runtime: Node.js's `http` server on a pipe answering a request sent
 * through our client's streams (the way a user calls Docker's engine API), and Node's `net.connect`
 * echoed by our byte-mode server. Under Wine the peer is Node.js for Windows (`node.exe`, fetched by
 * the harness) on `\\.\pipe\NAME`; natively on Linux it is the host's `node` on the Unix socket path.
 * Node writes its progress to a log file, never to a pipe of ours.
 */
import assert from "node:assert/strict";
import { connect, listen, pipePath } from "../mod.ts";
import { uniqueName, within } from "./_pipes.ts";
import { filePath, nodeWinExe } from "./wine/node_win.ts";

const text = (s: string) => new TextEncoder().encode(s);

/** A running Node.js program and its log. */
interface NodeProgram extends AsyncDisposable {
  child: Deno.ChildProcess;
  log: string;
  /** What the program logged so far. */
  output(): string;
}

/** Node.js for Windows fetched by the Wine harness, or else (Linux, or real Windows CI) `node` on the PATH. */
function nodeExecutable(): string {
  if (Deno.build.os !== "windows") return "node";
  const exe = nodeWinExe();
  try {
    Deno.statSync(exe);
    return exe;
  } catch {
    return "node";
  }
}

/** Start `node tests/fixtures/SCRIPT ARGS... LOG`; disposing it kills Node (bounded) and removes its files. */
async function startNode(script: string, args: string[], cleanup: string[] = []): Promise<NodeProgram> {
  const log = await Deno.makeTempFile({ prefix: "np_node_", suffix: ".log" });
  const child = new Deno.Command(nodeExecutable(), {
    args: [filePath(new URL(`./fixtures/${script}`, import.meta.url)), ...args, log],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const output = () => {
    try {
      return Deno.readTextFileSync(log);
    } catch {
      return "";
    }
  };
  return {
    child,
    log,
    output,
    async [Symbol.asyncDispose]() {
      try {
        child.kill();
      } catch {
        // Already exited.
      }
      await within(child.status, 10_000, "node to exit");
      for (const path of [log, ...cleanup]) await Deno.remove(path).catch(() => {});
    },
  };
}

/** Read one HTTP/1.1 response with a `Content-Length` body from a byte stream, without waiting for its end. */
async function readResponse(readable: ReadableStream<Uint8Array>) {
  const reader = readable.getReader();
  let bytes = new Uint8Array(0);
  try {
    while (true) {
      const headerEnd = new TextDecoder().decode(bytes).indexOf("\r\n\r\n");
      if (headerEnd >= 0) {
        const [statusLine, ...fields] = new TextDecoder().decode(bytes.subarray(0, headerEnd)).split("\r\n");
        const headers = new Map(fields.map((f) => {
          const colon = f.indexOf(":");
          return [f.slice(0, colon).trim().toLowerCase(), f.slice(colon + 1).trim()];
        }));
        const length = Number(headers.get("content-length"));
        if (bytes.length >= headerEnd + 4 + length) {
          const body = new TextDecoder().decode(bytes.subarray(headerEnd + 4, headerEnd + 4 + length));
          return { statusLine, headers, body };
        }
      }
      const { value, done } = await reader.read();
      if (done) {
        throw new Error(`End of stream in the response: ${JSON.stringify(new TextDecoder().decode(bytes))}`);
      }
      const grown = new Uint8Array(bytes.length + value.length);
      grown.set(bytes);
      grown.set(value, bytes.length);
      bytes = grown;
    }
  } finally {
    reader.releaseLock();
  }
}

Deno.test("an HTTP/1.1 request through our client's streams gets the answer of Node's http server", async () => {
  const name = uniqueName("http");
  const path = pipePath(name);
  await using node = await startNode(
    "node_http_server.mjs",
    [path],
    Deno.build.os === "windows" ? [] : [path],
  );
  // connect() waits for the pipe to appear: Node takes a moment to start (a few seconds under Wine).
  await using conn = await connect({ name, mode: "byte", timeout: 30_000 }).catch((error) => {
    throw new Error(`Node's server never listened on ${path}; its log: ${node.output()}`, { cause: error });
  });
  const body = "hello from deno";
  const writer = conn.writable.getWriter();
  await writer.write(text(
    `POST /echo?from=deno HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${body.length}\r\n\r\n${body}`,
  ));
  writer.releaseLock();
  const response = await within(readResponse(conn.readable), 30_000, "the HTTP response");
  assert.equal(response.statusLine, "HTTP/1.1 200 OK");
  assert.equal(response.headers.get("content-type"), "application/json");
  const answer = JSON.parse(response.body);
  assert.deepEqual({ ...answer, runtime: undefined }, {
    method: "POST",
    url: "/echo?from=deno",
    body,
    runtime: undefined,
  });
  assert.match(answer.runtime, /^v\d+\./);
  assert.match(node.output(), /served POST \/echo\?from=deno/);
});

Deno.test("the README's Docker-style GET reads Node's whole answer from the readable to its end", async () => {
  const name = uniqueName("http_close");
  const path = pipePath(name);
  await using node = await startNode(
    "node_http_server.mjs",
    [path],
    Deno.build.os === "windows" ? [] : [path],
  );
  // From here on, the README's example: only the pipe name differs from Docker's `docker_engine`.
  await using conn = await connect({ name, mode: "byte", timeout: 30_000 });
  const writer = conn.writable.getWriter();
  await writer.write(
    new TextEncoder().encode("GET /version HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"),
  );
  writer.releaseLock();
  const raw = await within(new Response(conn.readable).text(), 30_000, "the server to answer and hang up");
  const body = JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4));
  assert.match(raw, /^HTTP\/1\.1 200 OK\r\n/);
  assert.equal(body.url, "/version");
  assert.match(node.output(), /served GET \/version/);
});

Deno.test("Node's net.connect gets 1 MiB echoed by our byte-mode server through its streams", async () => {
  const size = 1024 * 1024;
  await using listener = listen({ name: uniqueName("netecho"), mode: "byte" });
  const served = (async () => {
    const conn = await listener.accept();
    try {
      await conn.readable.pipeTo(conn.writable);
    } finally {
      await conn.close();
    }
  })();
  served.catch(() => {}); // awaited below; a failure before that must not go unhandled
  try {
    await using node = await startNode("node_echo_client.mjs", [listener.path, String(size)]);
    const { code } = await within(node.child.status, 60_000, "the Node client to finish");
    const output = node.output();
    assert.equal(code, 0, `node exited ${code}; its log: ${output}`);
    assert.match(output, new RegExp(`^connected\\nechoed ${size}\\n`), output);
    // Node destroyed its socket: our readable ended, so the echo finished and closed its end.
    await within(served, 10_000, "our server's echo to end");
  } finally {
    await listener.close();
    await served.catch(() => {});
  }
});

Deno.test("the HelloWorld server answers Node's net.connect with the seed's reply", async () => {
  const name = uniqueName("hello");
  // On Windows the seed's message-mode pipe (Node opens it in byte read mode); on Linux Node's net
  // speaks SOCK_STREAM only, so the server runs in byte mode there.
  const mode = Deno.build.os === "windows" ? [] : ["--mode", "byte"];
  const main = filePath(new URL("../main.ts", import.meta.url));
  const server = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", main, "serve", "--once", "--name", name, ...mode],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const reading = (async () => {
    for await (const chunk of server.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
  })();
  try {
    await within(
      (async () => {
        while (!log.includes("Waiting for the client's connection...")) {
          await new Promise((r) => setTimeout(r, 20));
        }
      })(),
      30_000,
      "the server to wait for its client",
    );
    await using node = await startNode("node_hello_client.mjs", [pipePath(name)]);
    const { code } = await within(node.child.status, 30_000, "the Node client to finish");
    assert.equal(code, 0, `node exited ${code}; its log: ${node.output()}`);
    const reply = new TextEncoder().encode("Default response from server\0");
    const expected = new Uint8Array(reply.length * 2);
    reply.forEach((c, i) => expected[i * 2] = c); // ASCII in UTF-16LE
    assert.match(node.output(), new RegExp(`^connected\\nreply ${expected.toHex()}\\n`));
    const status = await within(server.status, 30_000, "serve --once to exit");
    await reading;
    assert.equal(status.code, 0, log);
    assert.match(log, /Receives 56 bytes; Message: "Default request from client"/);
    assert.match(log, /Replies 58 bytes; Message: "Default response from server"/);
  } finally {
    try {
      server.kill();
    } catch {
      // Already exited.
    }
    await server.status;
    await reading.catch(() => {});
  }
});
