/**
 * `listPipes()` / `namedpipe list` and `waitForPipe()` / `namedpipe wait`: what exists is found
 * without connecting to it (the server must never see a client), and waiting ends as soon as a
 * server appears. The same file natively and under Wine.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, listen, listPipes, type PipeInfo, pipePath, waitForPipe } from "../mod.ts";
import { ExitCode } from "../cli/exit_codes.ts";
import denoJson from "../deno.json" with { type: "json" };
import { ntdll } from "../ffi/kernel32.ts";
import { Cli, namedpipe, WAIT_MS } from "./_cli.ts";
import { uniqueName, within } from "./_pipes.ts";

/** Wine 8 cannot list `\\.\pipe\` (STATUS_BAD_DEVICE_TYPE); Windows can. */
const underWine = Deno.build.os === "windows" && ntdll().wine_get_version !== null;
const windows = Deno.build.os === "windows";

/** Resolves to "pending" if `promise` has not settled within `ms`. */
function stillPending<T>(promise: Promise<T>, ms: number): Promise<T | "pending"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const pending = new Promise<"pending">((resolve) => timer = setTimeout(() => resolve("pending"), ms));
  return Promise.race([promise, pending]).finally(() => clearTimeout(timer));
}

/** The fields every platform documents for a served pipe. */
function assertDescribes(pipe: PipeInfo | undefined, name: string, maxInstances: number) {
  assert.ok(pipe, `${name} not listed`);
  assert.equal(pipe.name, name);
  assert.equal(pipe.path, pipePath(name));
  if (windows && !underWine) {
    assert.ok(pipe.instances! >= 1, `instances ${pipe.instances}`);
    assert.equal(pipe.maxInstances, maxInstances);
  }
  if (!windows) {
    assert.equal(pipe.mode, "byte");
    assert.equal(pipe.uid, Deno.uid());
    assert.equal(pipe.fileMode, 0o600);
    assert.equal(pipe.instances, 0, "no client waits in the backlog");
    assert.equal(typeof pipe.maxInstances, "number");
  }
}

Deno.test("listPipes() finds a served pipe by its exact name, connects to nothing, and forgets it once closed", async () => {
  const name = uniqueName("list");
  const listener = listen({ name, mode: "byte", maxInstances: 7 });
  try {
    const accepting = listener.accept();
    const [pipe] = await listPipes({ pattern: name });
    assertDescribes(pipe, name, 7);
    assert.deepEqual(await listPipes({ pattern: `${name}_not` }), []);
    // Had listing connected, that client would be accepted now.
    assert.equal(await stillPending(accepting, 300), "pending", "the server saw a client");
    await using _client = await connect({ name, mode: "byte" });
    const conn = await within(accepting, WAIT_MS, "the real client");
    assert.equal(conn.peerPid, Deno.pid, "the first client accepted is the real one");
    await conn.close();
  } finally {
    await listener.close();
  }
  assert.deepEqual(await listPipes({ pattern: name }), []);
});

Deno.test({
  name:
    "listPipes() with a wildcard lists every matching pipe with its fields (not under Wine: it cannot list \\\\.\\pipe\\)",
  ignore: underWine,
  async fn() {
    const prefix = uniqueName("glob");
    await using a = listen({ name: `${prefix}_a`, mode: "byte", maxInstances: 3 });
    await using b = listen({ name: `${prefix}_b`, mode: "byte", maxInstances: 3 });
    await using _other = listen({ name: `${prefix}x`, mode: "byte" });
    const found = await listPipes({ pattern: `${prefix}_?` });
    assert.deepEqual(found.map((p) => p.name), [`${prefix}_a`, `${prefix}_b`]);
    assertDescribes(found[0], `${prefix}_a`, 3);
    assertDescribes(found[1], `${prefix}_b`, 3);
    const all = await listPipes();
    assert.ok(all.some((p) => p.path === a.path) && all.length >= 3);
    await b.close();
    assert.deepEqual((await listPipes({ pattern: `${prefix}_*` })).map((p) => p.name), [`${prefix}_a`]);
  },
});

Deno.test({
  name:
    "listPipes() reports a message-mode socket and a listening socket named by path (Linux only: socket paths)",
  ignore: windows,
  async fn() {
    const directory = Deno.makeTempDirSync({ prefix: "np-list-" });
    try {
      const path = `${directory}/app.sock`;
      await using _listener = listen({ name: path, security: "everyone" });
      Deno.writeTextFileSync(`${directory}/plain.txt`, "not a socket");
      const found = await listPipes({ pattern: "no such pipe", paths: [path, `${directory}/plain.txt`] });
      assert.equal(found.length, 1);
      assert.equal(found[0].path, path);
      assert.equal(found[0].mode, "message");
      assert.equal(found[0].fileMode, 0o666);
    } finally {
      Deno.removeSync(directory, { recursive: true });
    }
  },
});

Deno.test("namedpipe list NAME prints the pipe (table and --json) and serve logs no client; a missing one exits 3", async () => {
  const name = uniqueName("listcli");
  await using server = new Cli(["serve", "--name", name, "--mode", "byte", "--max-instances", "5"]);
  await server.waitFor("Waiting for the client's connection...");
  const table = await namedpipe(["list", name]);
  assert.equal(table.code, ExitCode.Ok, table.stderr);
  const [header, row, ...rest] = table.stdout.trimEnd().split("\n");
  assert.deepEqual(rest, []);
  assert.match(header, /^NAME +.*PATH$/);
  assert.ok(row.startsWith(name) && row.endsWith(pipePath(name)), row);
  const json = await namedpipe(["list", "--json", name]);
  assert.equal(json.code, ExitCode.Ok, json.stderr);
  const [pipe] = JSON.parse(json.stdout) as PipeInfo[];
  assertDescribes(pipe, name, 5);
  const missing = await namedpipe(["list", `${name}_missing`]);
  assert.equal(missing.code, ExitCode.NotFound, missing.stderr);
  assert.equal(missing.stdout, "");
  assert.doesNotMatch(server.stderr, /Client is connected/);
});

Deno.test("waitForPipe() resolves for a live pipe, rejects with NotFound after its timeout for a missing one", async () => {
  const name = uniqueName("wait");
  {
    await using listener = listen({ name });
    const accepting = listener.accept();
    await within(waitForPipe({ name, timeout: 0 }), WAIT_MS, "the wait on a live pipe");
    assert.equal(await stillPending(accepting, 200), "pending", "waiting connected to the server");
    await using _client = await connect({ name });
    await (await accepting).close();
  }
  const started = performance.now();
  await assert.rejects(waitForPipe({ name, timeout: 300 }), Deno.errors.NotFound);
  const waited = performance.now() - started;
  assert.ok(waited >= 290 && waited < WAIT_MS, `waited ${waited} ms`);
});

Deno.test("namedpipe wait: 0 for a live pipe, 3 after --timeout for a missing one, 0 as soon as a server appears", async () => {
  const name = uniqueName("waitcli");
  const missing = await namedpipe(["wait", name, "--timeout", "300"]);
  assert.equal(missing.code, ExitCode.NotFound, missing.stderr);
  assert.match(missing.stderr, /no server appeared within 300 ms/);

  await using waiting = new Cli(["wait", name, "--timeout", String(10 * WAIT_MS)]);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await using listener = listen({ name });
  const accepting = listener.accept();
  const appeared = performance.now();
  const { code, stderr } = await waiting.finish();
  assert.equal(code, ExitCode.Ok, stderr);
  // Bounded well below the 5-minute timeout: a loaded machine (or Wine's start) may take seconds.
  assert.ok(performance.now() - appeared < WAIT_MS, "wait noticed the server late");
  const live = await namedpipe(["wait", name, "--timeout", "0"]);
  assert.equal(live.code, ExitCode.Ok, live.stderr);
  assert.equal(await stillPending(accepting, 200), "pending", "wait connected to the server");
  await using _client = await connect({ name });
  await (await accepting).close();
});

Deno.test("list and wait work with only the permissions deno task compile bakes in", async () => {
  const steps: string[] = denoJson.tasks.compile.split("&&");
  const step = steps.find((s) => s.includes("x86_64-pc-windows-msvc") === windows)!;
  const denoFlags = step.split(/\s+/).filter((flag) => flag.startsWith("--allow-"));
  const name = uniqueName("listperm");
  await using _listener = listen({ name });
  for (const args of [["list", name], ["wait", name, "--timeout", "0"]]) {
    await using cli = new Cli(args, { denoFlags });
    const { code, stderr } = await cli.finish();
    assert.equal(code, ExitCode.Ok, `${args[0]} with ${denoFlags.join(" ")}: ${stderr}`);
  }
});
