/**
 * The command's pure parts, in process: exit codes, encodings, stdin lines, option parsers.
 * `cli_test.ts` runs the real command.
 *
 * @module
 */
import assert from "node:assert/strict";
import { InvalidArgumentError } from "commander";
import { encodeMessage, formatReply, parseHex } from "../cli/encoding.ts";
import { ExitCode, exitCodeFor, isExpected, UsageError } from "../cli/exit_codes.ts";
import { readAll, readLines } from "../cli/lines.ts";
import { integerOption, nonEmptyOption } from "../cli/options.ts";
import { formatDuration } from "../cli/serve.ts";
import { stopSignalNames } from "../cli/signals.ts";
import { errnoError, win32Error } from "../pipe/errors.ts";

Deno.test("exitCodeFor() gives each expected failure its own code", () => {
  assert.equal(exitCodeFor(new UsageError("bad")), ExitCode.Usage);
  assert.equal(exitCodeFor(win32Error(2, "connect to", "\\\\.\\pipe\\x")), ExitCode.NotFound);
  assert.equal(exitCodeFor(win32Error(231, "connect to", "\\\\.\\pipe\\x")), ExitCode.NotFound);
  assert.equal(exitCodeFor(errnoError(111, "connect to", "/x")), ExitCode.NotFound);
  assert.equal(exitCodeFor(win32Error(5, "connect to", "\\\\.\\pipe\\x")), ExitCode.AccessDenied);
  assert.equal(exitCodeFor(errnoError(13, "connect to", "/x")), ExitCode.AccessDenied);
  assert.equal(exitCodeFor(new Deno.errors.NotCapable("Requires ffi access")), ExitCode.AccessDenied);
  assert.equal(exitCodeFor(win32Error(183, "create named pipe", "\\\\.\\pipe\\x")), ExitCode.NameInUse);
  assert.equal(exitCodeFor(errnoError(98, "bind", "/x")), ExitCode.NameInUse);
  assert.equal(exitCodeFor(win32Error(109, "read from", "\\\\.\\pipe\\x")), ExitCode.ConnectionLost);
  assert.equal(exitCodeFor(errnoError(104, "read from", "/x")), ExitCode.ConnectionLost);
  assert.equal(exitCodeFor(win32Error(123, "create named pipe", "\\\\.\\pipe\\a<b")), ExitCode.Usage);
  assert.equal(exitCodeFor(new TypeError('Cannot use pipe "\\\\x": invalid pipe name')), ExitCode.Usage);
  assert.equal(
    exitCodeFor(new TypeError('Cannot use pipe "x" on server "h": remote pipes are Windows-only')),
    2,
  );
  assert.equal(exitCodeFor(new Deno.errors.NotSupported('Cannot listen on "x": Linux only')), ExitCode.Usage);
});

Deno.test("exitCodeFor() treats anything unexpected as an internal error", () => {
  assert.equal(exitCodeFor(new Error("bug")), ExitCode.Internal);
  assert.equal(exitCodeFor(new TypeError("x is undefined")), ExitCode.Internal);
  assert.equal(
    exitCodeFor(new TypeError("Cannot read properties of undefined (reading 'x')")),
    ExitCode.Internal,
  );
  assert.equal(exitCodeFor("a string"), ExitCode.Internal);
  assert.equal(isExpected(new Error("bug")), false);
  assert.equal(isExpected(new Deno.errors.TimedOut("busy")), true);
});

Deno.test("the exit codes are distinct", () => {
  const codes = Object.values(ExitCode);
  assert.equal(new Set(codes).size, codes.length);
});

Deno.test("parseHex() accepts spaced, packed and 0x-prefixed hex", () => {
  assert.deepEqual([...parseHex("48 00 69 00")], [0x48, 0, 0x69, 0]);
  assert.deepEqual([...parseHex("0x4869")], [0x48, 0x69]);
  assert.deepEqual([...parseHex("de:AD-be ef")], [0xde, 0xad, 0xbe, 0xef]);
  assert.deepEqual([...parseHex("")], []);
});

Deno.test("parseHex() rejects odd digits and non-hex with a usage error quoting the input", () => {
  assert.throws(() => parseHex("abc"), (e: Error) => e instanceof UsageError && e.message.includes('"abc"'));
  assert.throws(() => parseHex("zz"), UsageError);
});

Deno.test("encodeMessage() sends utf16 with the seed's NUL, utf8 and raw as they are", () => {
  assert.deepEqual([...encodeMessage("Hi", "utf16")], [0x48, 0, 0x69, 0, 0, 0]);
  assert.deepEqual([...encodeMessage("Hé", "utf8")], [0x48, 0xc3, 0xa9]);
  assert.deepEqual([...encodeMessage("0a0b", "hex")], [0x0a, 0x0b]);
});

Deno.test("formatReply() prints one line per reply, or the raw bytes untouched", () => {
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  assert.equal(text(formatReply(encodeMessage("Hi", "utf16"), "utf16")), "Hi\n");
  assert.equal(text(formatReply(new Uint8Array([0x41]), "utf16")), "41\n");
  assert.equal(text(formatReply(new Uint8Array([0x48, 0x69]), "utf8")), "Hi\n");
  assert.equal(text(formatReply(new Uint8Array([0, 255]), "hex")), "00 ff\n");
  assert.deepEqual([...formatReply(new Uint8Array([0, 10, 255]), "raw")], [0, 10, 255]);
});

function streamOf(...chunks: (string | number[])[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return ReadableStream.from(
    chunks.map((c) => typeof c === "string" ? encoder.encode(c) : new Uint8Array(c)),
  );
}

Deno.test("readLines() splits across chunks, drops CR LF, and keeps a last line without newline", async () => {
  const lines = await Array.fromAsync(readLines(streamOf("one\r\ntw", "o\n\nthr", "ee")));
  assert.deepEqual(lines, ["one", "two", "", "three"]);
  assert.deepEqual(await Array.fromAsync(readLines(streamOf())), []);
});

Deno.test("readLines() joins a UTF-8 character split between two chunks", async () => {
  const lines = await Array.fromAsync(readLines(streamOf([0x68, 0xc3], [0xa9, 0x0a])));
  assert.deepEqual(lines, ["hé"]);
});

Deno.test("readAll() returns every byte of the stream", async () => {
  assert.deepEqual([...await readAll(streamOf([1, 2], [], [3]))], [1, 2, 3]);
});

Deno.test("integerOption() accepts whole numbers in range and rejects the rest", () => {
  const parse = integerOption(1, 255);
  assert.equal(parse("1"), 1);
  assert.equal(parse("0xff"), 255);
  for (const bad of ["0", "256", "-1", "1.5", "", "ten", "1e2"]) {
    assert.throws(() => parse(bad), InvalidArgumentError, bad);
  }
  assert.throws(() => nonEmptyOption("pipe name")(""), /pipe name must not be empty/);
});

Deno.test("formatDuration() reads naturally from seconds to hours", () => {
  assert.equal(formatDuration(1234), "1.2 s");
  assert.equal(formatDuration(125_000), "2 min 5 s");
  assert.equal(formatDuration(7_380_000), "2 h 3 min");
});

Deno.test("the server stops on SIGINT everywhere, SIGBREAK on Windows, SIGTERM elsewhere", () => {
  const names = stopSignalNames();
  assert.ok(names.includes("SIGINT"));
  assert.ok(names.includes(Deno.build.os === "windows" ? "SIGBREAK" : "SIGTERM"));
});

Deno.test("the workflows run only deno tasks that exist, and compile builds the Windows .exe with --allow-ffi and --allow-net only", async () => {
  const root = new URL("../", import.meta.url);
  const { tasks } = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
  for await (const entry of Deno.readDir(new URL(".github/workflows/", root))) {
    const text = await Deno.readTextFile(new URL(`.github/workflows/${entry.name}`, root));
    for (const [, task] of text.matchAll(/deno task ([\w:-]+)/g)) {
      assert.ok(task in tasks, `${entry.name} runs "deno task ${task}", which deno.json lacks`);
    }
  }
  const windows = tasks.compile.split("&&").find((step: string) => step.includes("x86_64-pc-windows-msvc"));
  assert.match(windows, /--output dist\/namedpipe\.exe main\.ts/);
  // ffi: the engine; net: relay's tcp: and tcp-listen: endpoints (the Docker example). Nothing else.
  assert.doesNotMatch(windows, /--allow-all|-A\b|--allow-(read|write|run|env|sys)/);
  assert.match(windows, /--allow-ffi/);
  assert.match(windows, /--allow-net/);
});
