/**
 * The `namedpipe` command, run for real: `deno run -A main.ts ...` in a child process, natively and
 * under Wine (where `Deno.execPath()` is Windows `deno.exe`). Every wait is bounded and every server
 * is killed in a `finally`; every test uses its own pipe name.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, listen, pipePath } from "../mod.ts";
import { run } from "../cli/program.ts";
import { serve } from "../cli/serve.ts";
import { ExitCode } from "../cli/exit_codes.ts";
import { defaultResponse, toHex } from "../pipe/hello.ts";
import denoJson from "../deno.json" with { type: "json" };
import { uniqueName, within } from "./_pipes.ts";
import { Cli, namedpipe, WAIT_MS } from "./_cli.ts";
import { asNobody, listensAt } from "./_nobody.ts";

const SEED_REQUEST = 'Receives 56 bytes; Message: "Default request from client"';
const SEED_REPLY = 'Replies 58 bytes; Message: "Default response from server"';
const WAITING = "Waiting for the client's connection...";

/** Start `serve` and wait until it is accepting clients. */
async function startServer(args: string[]): Promise<Cli> {
  const server = new Cli(["serve", ...args]);
  try {
    await server.waitFor(WAITING);
  } catch (error) {
    await server[Symbol.asyncDispose]();
    throw error;
  }
  return server;
}

function assertNoStackTrace(stderr: string) {
  assert.doesNotMatch(stderr, /^\s+at /m, "an expected failure must not print a stack trace");
}

Deno.test("serve --once and send reproduce the seed: its log lines, its reply, exit 0", async () => {
  const name = uniqueName("cli");
  await using server = await startServer(["--once", "--name", name]);
  const client = await namedpipe(["send", "--name", name]);
  assert.equal(client.code, ExitCode.Ok, client.stderr);
  assert.equal(client.stdout, "Default response from server\n");
  assert.equal(client.stderr, "", "send is quiet on success");

  const { code, stderr } = await server.finish();
  assert.equal(code, ExitCode.Ok, stderr);
  const lines = [`The named pipe, ${pipePath(name)}, is created.`, WAITING, SEED_REQUEST, SEED_REPLY];
  let from = 0;
  for (const line of lines) {
    const at = stderr.indexOf(line, from);
    assert.ok(at >= 0, `missing or out of order: ${line}\n${stderr}`);
    from = at + line.length;
  }
  assert.match(stderr, /Served 1 client\(s\), 1 message\(s\), 56 bytes received, 58 bytes sent; uptime/);
  const me = await ourIdentity();
  assert.ok(
    stderr.includes(`Client is connected: pid `) && stderr.includes(`, user ${me.user.name}\n`),
    stderr,
  );
});

Deno.test("serve --log-format json writes one JSON object a line with the seed's messages", async () => {
  const name = uniqueName("cli");
  await using server = await startServer(["--once", "--name", name, "--log-format", "json"]);
  assert.equal((await namedpipe(["send", "--name", name])).code, ExitCode.Ok);
  const { code, stderr } = await server.finish();
  assert.equal(code, ExitCode.Ok, stderr);
  const records = stderr.trimEnd().split("\n").map((line) => JSON.parse(line));
  for (const record of records) {
    assert.equal(typeof record["@timestamp"], "string");
    assert.ok(["DEBUG", "INFO", "WARN", "ERROR", "FATAL"].includes(record.level), record.level);
    assert.match(record.logger, /^namedpipe/);
  }
  const messages = records.map((record) => record.message);
  assert.ok(messages.includes(`The named pipe, ${pipePath(name)}, is created.`), messages.join("\n"));
  assert.ok(messages.includes(SEED_REQUEST));
  assert.ok(messages.includes(SEED_REPLY));
  const request = records.find((record) => record.message === SEED_REQUEST);
  assert.equal(request.properties.bytes, 56);
  assert.equal(request.properties.client, 1);
  // Who connected, as fields: the same user as this test's (the client ran as it).
  const me = await ourIdentity();
  const connected = records.find((record) => record.message.startsWith("Client is connected: pid "));
  assert.ok(connected, messages.join("\n"));
  assert.equal(
    connected.message,
    `Client is connected: pid ${connected.properties.pid}, user ${me.user.name}`,
  );
  assert.ok(connected.properties.pid > 0);
  assert.equal(connected.properties.user, me.user.name);
  assert.equal(connected.properties.sid, me.user.sid);
  assert.equal(connected.properties.uid, me.user.uid);
});

/** This process's identity as the library reports it, from a pipe it serves to itself. */
async function ourIdentity() {
  await using listener = listen({ name: uniqueName("me") });
  await using client = await connect({ name: listener.path });
  await using conn = await listener.accept();
  assert.ok(conn.peer && client.peer);
  return conn.peer;
}

Deno.test("send - sends each stdin line as it arrives and prints each reply", async () => {
  const name = uniqueName("cli");
  await using server = await startServer(["--once", "--name", name, "--echo"]);
  await using client = new Cli(["send", "--name", name, "--encoding", "utf8", "-"], { stdin: true });
  // Interactive: the second line is written only after the first reply came back.
  await client.write("one\n");
  await client.waitFor("one\n", "stdout");
  await client.write("two\r\n\nthree");
  const { code, stdout, stderr } = await client.finish();
  assert.equal(code, ExitCode.Ok, stderr);
  assert.equal(stdout, "one\ntwo\n\nthree\n");
  const served = await server.finish();
  assert.match(served.stderr, /Served 1 client\(s\), 4 message\(s\)/);
});

Deno.test("send - in a pipe sends the seed's UTF-16LE and prints each reply", async () => {
  const name = uniqueName("cli");
  await using server = await startServer(["--once", "--name", name]);
  const { code, stdout, stderr } = await namedpipe(["send", "--name", name, "-"], "a\nb\nc\n");
  assert.equal(code, ExitCode.Ok, stderr);
  assert.equal(stdout, "Default response from server\n".repeat(3));
  const served = await server.finish();
  assert.ok(served.stderr.includes('Receives 4 bytes; Message: "a"'), served.stderr);
});

Deno.test("serve answers many clients at once and keeps going; --count repeats on one connection", async () => {
  const name = uniqueName("cli");
  await using server = await startServer(["--name", name, "--response", "Hi"]);
  const clients = await Promise.all(
    [1, 2, 3].map(() => namedpipe(["send", "--name", name, "--count", "4", "--encoding", "hex"])),
  );
  for (const { code, stdout, stderr } of clients) {
    assert.equal(code, ExitCode.Ok, stderr);
    assert.equal(stdout, "48 00 69 00 00 00\n".repeat(4)); // "Hi" + NUL in UTF-16LE
  }
  assert.equal((await namedpipe(["send", "--name", name])).stdout, "Hi\n");
  assert.ok(server.stderr.includes('Replies 6 bytes; Message: "Hi"'), server.stderr);
});

Deno.test("serve logs odd-length, invalid and zero-length requests and still answers them", async () => {
  const name = uniqueName("cli");
  await using server = await startServer(["--name", name]);
  for (const hex of ["41", "00 d8 41 00", ""]) {
    const { code, stdout, stderr } = await namedpipe(["send", "--name", name, "--encoding", "hex", hex]);
    assert.equal(code, ExitCode.Ok, stderr);
    assert.equal(stdout, toHex(defaultResponse()) + "\n");
  }
  await server.waitFor("Receives 0 bytes");
  assert.ok(server.stderr.includes("Receives 1 bytes; Message: <hex: 41>"), server.stderr);
  assert.ok(server.stderr.includes("Receives 4 bytes; Message: <hex: 00 d8 41 00>"), server.stderr);
  assert.ok(server.stderr.includes('Receives 0 bytes; Message: ""'), server.stderr);
});

Deno.test("a client killed mid-session is logged and dropped, and the server goes on", async () => {
  const name = uniqueName("cli");
  await using server = await startServer(["--name", name]);
  {
    await using doomed = new Cli(["send", "--name", name, "-"], { stdin: true });
    await doomed.write("first\n");
    await doomed.waitFor("Default response from server\n", "stdout");
    doomed.child.kill("SIGKILL");
    await doomed.child.status;
  }
  await server.waitFor(/client#1: Client (is disconnected|vanished)/);
  const { code, stdout } = await namedpipe(["send", "--name", name]);
  assert.equal(code, ExitCode.Ok);
  assert.equal(stdout, "Default response from server\n");
});

Deno.test("send --encoding raw sends stdin's bytes and writes the reply's bytes", async () => {
  const name = uniqueName("cli");
  await using server = await startServer(["--once", "--name", name, "--echo"]);
  const { code, stdout, stderr } = await namedpipe(
    ["send", "--name", name, "--encoding", "raw"],
    "line 1\nline 2\n",
  );
  assert.equal(code, ExitCode.Ok, stderr);
  assert.equal(stdout, "line 1\nline 2\n");
  assert.equal((await server.finish()).code, ExitCode.Ok);
});

Deno.test("a client sending more than --max-message-size is dropped and send exits 6", async () => {
  const name = uniqueName("cli");
  await using server = await startServer(["--name", name, "--max-message-size", "100"]);
  const { code, stderr } = await namedpipe(["send", "--name", name, "--encoding", "utf8", "x".repeat(101)]);
  assert.equal(code, ExitCode.ConnectionLost, stderr);
  assertNoStackTrace(stderr);
  await server.waitFor("Client dropped");
  // The server goes on serving.
  assert.equal((await namedpipe(["send", "--name", name])).stdout, "Default response from server\n");
});

Deno.test("send exits 6 when the server hangs up without replying", async () => {
  const name = uniqueName("cli");
  await using listener = listen({ name });
  const serverSide = (async () => {
    const conn = await listener.accept();
    await conn.readMessage();
    await conn.close();
  })();
  const { code, stderr } = await namedpipe(["send", "--name", name]);
  await within(serverSide, WAIT_MS, "the test server");
  assert.equal(code, ExitCode.ConnectionLost, stderr);
  assert.match(stderr, /the server closed the pipe/);
  assertNoStackTrace(stderr);
});

Deno.test("send to a missing pipe times out with exit 3 and says which pipe", async () => {
  const name = uniqueName("cli");
  const started = Date.now();
  const { code, stdout, stderr } = await namedpipe(["send", "--name", name, "--timeout", "300"]);
  assert.equal(code, ExitCode.NotFound, stderr);
  assert.equal(stdout, "");
  assert.ok(stderr.includes(`Cannot connect to "${pipePath(name)}"`), stderr);
  assert.match(stderr, /Is the server running\?/);
  assertNoStackTrace(stderr);
  assert.ok(Date.now() - started < WAIT_MS);
});

Deno.test("a second serve on a live name exits 5", async () => {
  const name = uniqueName("cli");
  await using _server = await startServer(["--name", name]);
  const { code, stderr } = await namedpipe(["serve", "--name", name]);
  assert.equal(code, ExitCode.NameInUse, stderr);
  assert.match(stderr, /already/);
  assertNoStackTrace(stderr);
});

Deno.test("a second serve on a live serve --once exits 5 and the first still answers the real client", async () => {
  const name = uniqueName("cli");
  await using first = await startServer(["--once", "--name", name]);
  const second = await namedpipe(["serve", "--name", name]);
  assert.equal(second.code, ExitCode.NameInUse, second.stderr);
  assertNoStackTrace(second.stderr);
  // The second server must not have used up the first one's only client.
  const client = await namedpipe(["send", "--name", name]);
  assert.equal(client.code, ExitCode.Ok, client.stderr);
  assert.equal(client.stdout, "Default response from server\n");
  const { code, stderr } = await first.finish();
  assert.equal(code, ExitCode.Ok, stderr);
  assert.match(stderr, /Served 1 client\(s\), 1 message\(s\)/);
});

Deno.test("send without Deno's FFI permission exits 4 (access denied) with a hint", async () => {
  const name = uniqueName("cli");
  await using cli = new Cli(["send", "--name", name, "--timeout", "100"], {
    denoFlags: ["--allow-read", "--allow-env"],
  });
  const { code, stderr } = await cli.finish();
  assert.equal(code, ExitCode.AccessDenied, stderr);
  assert.match(stderr, /--allow-ffi/);
  assert.match(stderr, /Deno refused a permission/);
  assertNoStackTrace(stderr);
});

Deno.test("serve and send work with only the permissions deno task compile bakes in", async () => {
  // The compiled namedpipe(.exe) has exactly these flags: a library that reads one more
  // environment variable or file would break the release binary, so catch it here.
  const steps: string[] = denoJson.tasks.compile.split("&&");
  const step = steps.find((s) => s.includes("x86_64-pc-windows-msvc") === (Deno.build.os === "windows"))!;
  const denoFlags = step.split(/\s+/).filter((flag) => flag.startsWith("--allow-"));
  const name = uniqueName("cli");
  await using server = new Cli(["serve", "--once", "--name", name], { denoFlags });
  await server.waitFor(WAITING);
  await using client = new Cli(["send", "--name", name], { denoFlags });
  const sent = await client.finish();
  assert.equal(sent.code, ExitCode.Ok, `${denoFlags.join(" ")}: ${sent.stderr}`);
  assert.equal(sent.stdout, "Default response from server\n");
  assert.equal((await server.finish()).code, ExitCode.Ok);
});

Deno.test("usage errors exit 2 with a message and no stack trace", async () => {
  const cases: [string[], RegExp][] = [
    [["serve", "--bogus"], /unknown option '--bogus'/],
    [["serve", "--echo", "--response", "x"], /cannot be used with/],
    [["serve", "--mode", "stream"], /Allowed choices are message, byte/],
    [["serve", "--max-instances", "256"], /from 1 to 255/],
    [["serve", "--allow-everyone", "--sddl", "D:P"], /cannot be used with/],
    [["send", "--count", "0"], /from 1 to/],
    [["send", "--encoding", "hex", "xyz"], /Invalid hex message "xyz"/],
    [["send", "-", "more"], /"-" \(read stdin\) must be the only message/],
    [["send", "--encoding", "raw", "text"], /give no message/],
    [["frobnicate"], /unknown command 'frobnicate'/],
    [["send", "--name", Deno.build.os === "windows" ? "\\\\bad" : "a/b"], /invalid pipe name/],
    Deno.build.os === "windows"
      ? [["serve", "--sddl", "not an SDDL"], /Cannot .*"not an SDDL"|invalid/]
      : [["serve", "--sddl", "D:P(A;;GA;;;SY)"], /SDDL is Windows-only/],
  ];
  const results = await Promise.all(cases.map(([args]) => namedpipe(args)));
  results.forEach(({ code, stderr }, i) => {
    assert.equal(code, ExitCode.Usage, `${cases[i][0].join(" ")}: ${stderr}`);
    assert.match(stderr, cases[i][1]);
    assertNoStackTrace(stderr);
  });
});

Deno.test("--help teaches by example and lists the exit codes; --version prints deno.json's", async () => {
  for (const args of [["--help"], ["serve", "--help"], ["send", "--help"]]) {
    const { code, stdout } = await namedpipe(args);
    assert.equal(code, ExitCode.Ok);
    assert.match(stdout, /Examples:/);
    assert.match(stdout, /Exit codes:\n\s+0 {2}success/);
    assert.match(stdout, /3 {2}pipe not found, or timed out/);
  }
  const { code, stdout } = await namedpipe(["--version"]);
  assert.equal(code, ExitCode.Ok);
  assert.equal(stdout.trim(), denoJson.version);
});

Deno.test("--allow-everyone is logged as a loud warning", async () => {
  const name = uniqueName("cli");
  await using server = await startServer(["--once", "--name", name, "--allow-everyone"]);
  assert.match(
    server.stderr,
    /WRN --allow-everyone: like the seed's pipe, every user and process on this machine may connect/,
  );
  assert.equal((await namedpipe(["send", "--name", name])).code, ExitCode.Ok);
  assert.equal((await server.finish()).code, ExitCode.Ok);
});

Deno.test("--quiet logs nothing on success; --verbose logs each message of send", async () => {
  const name = uniqueName("cli");
  // Quiet, the server prints no "Waiting" line: send's own wait for the pipe is the synchronisation.
  await using server = new Cli(["serve", "--once", "--name", name, "--quiet"]);
  const verbose = await namedpipe(["send", "--name", name, "--verbose", "--timeout", String(WAIT_MS)]);
  assert.equal(verbose.code, ExitCode.Ok, verbose.stderr);
  assert.match(verbose.stderr, /DBG Sends 56 bytes; Message: "Default request from client"/);
  assert.match(verbose.stderr, /DBG Receives 58 bytes; Message: "Default response from server"/);
  assert.deepEqual(await server.finish(), { code: ExitCode.Ok, stdout: "", stderr: "" });
});

Deno.test({
  name: "serve stops on SIGTERM and SIGINT, closing idle clients, logging a summary, exit 0",
  ignore: Deno.build.os === "windows", // Deno cannot send Ctrl+C to a child on Windows
  async fn() {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      const name = uniqueName("cli");
      await using server = await startServer(["--name", name]);
      // An idle client (it waits for stdin) must not hold the server up.
      await using idle = new Cli(["send", "--name", name, "-"], { stdin: true });
      await server.waitFor("Client is connected:");
      server.child.kill(signal);
      const { code, stderr } = await server.finish();
      assert.equal(code, ExitCode.Ok, stderr);
      assert.ok(stderr.includes(`Stopping on ${signal}...`), stderr);
      assert.match(stderr, /Served 1 client\(s\), 0 message\(s\), 0 bytes received, 0 bytes sent; uptime/);
      await idle.closeStdin();
    }
  },
});

Deno.test("an unexpected failure exits 1 and shows the stack trace", async () => {
  const name = uniqueName("cli");
  await using listener = listen({ name });
  const serverSide = (async () => {
    await using conn = await listener.accept();
    await conn.readMessage();
    await conn.writeMessage(new Uint8Array([0x41, 0]));
  })();
  // Make printing the reply fail in a way no code path expects.
  const stdout = Object.getOwnPropertyDescriptor(Deno.stdout, "write");
  const stderrWrite = Deno.stderr.writeSync;
  let logged = "";
  Object.defineProperty(Deno.stdout, "write", {
    value: () => Promise.reject(new Error("Simulated bug")),
    configurable: true,
  });
  Deno.stderr.writeSync = (p: Uint8Array) => {
    logged += new TextDecoder().decode(p);
    return p.length;
  };
  try {
    assert.equal(await run(["send", "--name", name]), ExitCode.Internal);
  } finally {
    if (stdout) Object.defineProperty(Deno.stdout, "write", stdout);
    else delete (Deno.stdout as { write?: unknown }).write;
    Deno.stderr.writeSync = stderrWrite;
  }
  await within(serverSide, WAIT_MS, "the test server");
  assert.match(logged, /Internal error: Error: Simulated bug\n\s+at [\s\S]*cli\/send\.ts/);
});

Deno.test("serve() stops on its abort signal, closes idle clients and returns the summary", async () => {
  // The in-process twin of the SIGINT test, so the shutdown path also runs on Windows.
  const name = uniqueName("cli");
  const stop = new AbortController();
  const serving = serve({ name, signal: stop.signal });
  await using idle = await connect({ name, timeout: WAIT_MS });
  await using busy = await connect({ name, timeout: WAIT_MS });
  await busy.writeMessage(new Uint8Array([0x41, 0]));
  assert.deepEqual(await busy.readMessage(), defaultResponse());
  stop.abort("SIGINT");
  const summary = await within(serving, WAIT_MS, "serve() to stop");
  assert.equal(summary.clients, 2);
  assert.equal(summary.messages, 1);
  assert.equal(summary.bytesReceived, 2);
  assert.equal(summary.bytesSent, 58);
  // The server hung up: end of stream, or (Windows, after DisconnectNamedPipe) a broken pipe.
  const end = await within(idle.readMessage().catch((error) => error), WAIT_MS, "the idle client's end");
  assert.ok(end === null || end instanceof Deno.errors.BrokenPipe, String(end));
});

Deno.test("send --max-message-size below the reply's size exits 7 with one sentence", async () => {
  const name = uniqueName("cli");
  // 1,500 characters: a 3,002-byte UTF-16LE reply with its NUL.
  await using server = await startServer(["--once", "--name", name, "--response", "r".repeat(1500)]);
  const { code, stdout, stderr } = await namedpipe(["send", "--name", name, "--max-message-size", "100"]);
  assert.equal(code, ExitCode.MessageTooLarge, stderr);
  assert.equal(stdout, "");
  assert.match(stderr, /message of (at least )?\d+ bytes exceeds maxMessageSize 100/);
  assert.match(stderr, /Raise --max-message-size/);
  assertNoStackTrace(stderr);
  assert.doesNotMatch(stderr, /Internal error/);
  assert.equal((await server.finish()).code, ExitCode.Ok);
});

Deno.test({
  name: "send of a message larger than the socket's send buffer exits 7 (Linux: EMSGSIZE)",
  ignore: Deno.build.os === "windows", // a Windows message pipe takes a message of any size
  async fn() {
    const name = uniqueName("cli");
    await using _server = await startServer(["--once", "--name", name]);
    // 5 MiB: more than the send buffer sized for the default 1 MiB limit, root or not.
    const { code, stderr } = await namedpipe(
      ["send", "--name", name, "--encoding", "raw"],
      "x".repeat(5 * 1024 * 1024),
    );
    assert.equal(code, ExitCode.MessageTooLarge, stderr);
    assert.match(stderr, /message of 5242880 bytes does not fit the socket's send buffer/);
    assertNoStackTrace(stderr);
    assert.doesNotMatch(stderr, /Internal error/);
  },
});

Deno.test({
  name: "serve logs its own reply too large for the send buffer as that, not as a dropped client",
  ignore: Deno.build.os === "windows", // a Windows message pipe takes a message of any size
  async fn() {
    const name = uniqueName("cli");
    // 120,000 characters: a 240,002-byte reply, over the 212,992-byte send buffer that a 1,000-byte
    // --max-message-size leaves at the kernel's default (net.core.wmem_default).
    const response = "r".repeat(120_000);
    await using server = await startServer([
      "--name",
      name,
      "--max-message-size",
      "1000",
      "--response",
      response,
    ]);
    const { code, stderr } = await namedpipe(["send", "--name", name]);
    assert.equal(code, ExitCode.ConnectionLost, stderr);
    await server.waitFor(
      /Cannot reply with 240002 bytes, the client is closed: .*does not fit the socket's send buffer/,
    );
    assert.doesNotMatch(server.stderr, /Client dropped/);
    assertNoStackTrace(server.stderr);
  },
});

Deno.test("serve --allow-user/--allow-group admits exactly those and logs whom it refused", async () => {
  const me = await ourIdentity();
  {
    const name = uniqueName("cliallow");
    await using server = await startServer(["--name", name, "--allow-user", me.user.name]);
    const client = await namedpipe(["send", "--name", name, "--timeout", String(WAIT_MS)]);
    assert.equal(client.code, ExitCode.Ok, client.stderr);
    assert.equal(client.stdout, "Default response from server\n");
    assert.ok(server.stderr.includes(`Only these may connect: user ${me.user.name}`), server.stderr);
  }
  // Somebody else only (SYSTEM / nobody): this user is refused at connect, the owner included.
  const other = Deno.build.os === "windows" ? ["--allow-group", "S-1-5-18"] : ["--allow-user", "65534"];
  const name = uniqueName("clirefuse");
  await using server = await startServer(["--name", name, ...other]);
  const client = await namedpipe(["send", "--name", name, "--timeout", String(WAIT_MS)]);
  assert.equal(client.code, ExitCode.ConnectionLost, client.stderr);
  assert.equal(client.stdout, "", "no reply");
  assert.match(client.stderr, /the server closed the pipe/);
  assert.match(client.stderr, /it may not serve this user/);
  await server.waitFor(`Refused a client of ${pipePath(name)}: pid `);
  assert.ok(server.stderr.includes(`, user ${me.user.name} (not authorized)`), server.stderr);
  assert.ok(!server.stderr.includes("Client is connected"), "the refused client never reached the server");
});

/** `socat` as `nobody`: send `request` as one message, return what came back and the exit code. */
async function sendAsNobody(path: string, request: string) {
  const child = asNobody("socat", ["-t", "5", "-", `UNIX-CONNECT:${path},type=5`], {
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(request));
  await writer.close();
  const { code, stdout, stderr } = await within(child.output(), WAIT_MS, "socat as nobody");
  return { code, reply: stdout, stderr: new TextDecoder().decode(stderr) };
}

Deno.test({
  name: "serve --allow-user nobody serves nobody and refuses root; without it nobody is kept out " +
    "(Linux; needs root to be nobody)",
  ignore: Deno.build.os !== "linux" || Deno.uid() !== 0,
  async fn() {
    {
      const name = uniqueName("clinobody");
      await using server = await startServer(["--name", name, "--allow-user", "nobody"]);
      const nobody = await sendAsNobody(pipePath(name), "hi");
      assert.equal(nobody.code, 0, nobody.stderr);
      assert.deepEqual(nobody.reply, defaultResponse(), "nobody got the reply");
      await server.waitFor(/Client is connected: pid \d+, user nobody/);
      const root = await namedpipe(["send", "--name", name, "--timeout", String(WAIT_MS)]);
      assert.equal(root.code, ExitCode.ConnectionLost, root.stderr);
      await server.waitFor(/Refused a client of .*: pid \d+, user root \(not authorized\)/);
    }
    for (const args of [[], ["--allow-user", "root"]]) {
      const name = uniqueName("clinobodyout");
      await using _server = await startServer(["--name", name, ...args]);
      const nobody = await sendAsNobody(pipePath(name), "hi");
      assert.notEqual(nobody.code, 0, "the socket's mode keeps nobody out");
      assert.equal(nobody.reply.length, 0);
      assert.match(nobody.stderr, /Permission denied/);
      assert.equal((await namedpipe(["send", "--name", name])).code, ExitCode.Ok, JSON.stringify(args));
    }
  },
});

Deno.test({
  name: "send refuses a socket another user holds before sending: exit 4 naming it, unless trusted " +
    "(Linux; needs root to be nobody)",
  ignore: Deno.build.os !== "linux" || Deno.uid() !== 0,
  async fn() {
    const directory = await Deno.makeTempDir({ prefix: "np-h14-cli-" });
    await Deno.chmod(directory, 0o777);
    const path = `${directory}/squat.sock`;
    // socat as nobody answers every message with "ok" (a squatter posing as the server). It reads
    // the message first: an `echo` that exits unread lets socat meet EPIPE passing the message on
    // and hang up without the reply (seen on a loaded machine).
    const reply = "SYSTEM:dd bs=65536 count=1 status=none of=/dev/null; echo ok";
    const squatter = asNobody("socat", [`UNIX-LISTEN:${path},type=5,fork`, reply], {
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      const deadline = Date.now() + WAIT_MS;
      while (!(await Deno.stat(path).then(() => true, () => false))) {
        if (Date.now() > deadline) throw new Error("socat did not start");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const refused = await namedpipe(["send", "--name", path, "--encoding", "utf8", "secret"]);
      assert.equal(refused.code, ExitCode.AccessDenied, refused.stderr);
      assert.equal(refused.stdout, "");
      assert.match(refused.stderr, /served by "nobody" \(uid 65534\).*nothing was sent/);
      assert.match(refused.stderr, /--server-user USER/);
      assertNoStackTrace(refused.stderr);
      for (const trust of [["--server-user", "nobody"], ["--trust-any-server"]]) {
        const sent = await namedpipe(["send", "--name", path, "--encoding", "utf8", ...trust, "hi"]);
        assert.equal(sent.code, ExitCode.Ok, sent.stderr);
        assert.equal(sent.stdout, "ok\n\n");
      }
    } finally {
      squatter.kill("SIGKILL");
      await squatter.status;
      await Deno.remove(directory, { recursive: true });
    }
    assert.ok(!listensAt(path), "the squatter is gone once killed");
  },
});
