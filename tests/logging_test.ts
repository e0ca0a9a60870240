/**
 * The library's log records go through LogTape, which the library must not load itself: an `npm:`
 * import starts Deno's npm resolver and Node compatibility layer (about 7 MiB resident in every
 * process that imports namedpipe, measured on Linux). An application that configures LogTape gets
 * every record, whether it configured LogTape before or after importing namedpipe. Each case runs in
 * a child Deno, since LogTape's state is process-wide.
 *
 * @module
 */
import assert from "node:assert/strict";
import { uniqueName, within } from "./_pipes.ts";

const WAIT_MS = 30_000;
const MOD = new URL("../mod.ts", import.meta.url).href;
/** deno.json for the child's `npm:` resolution; `Z:/...` rather than `/Z:/...` under Windows. */
const CONFIG = decodeURIComponent(new URL("../deno.json", import.meta.url).pathname).replace(
  /^\/([A-Za-z]:)/,
  "$1",
);

/** Run `code` in a child Deno; its stdout, or an error with its stderr. */
async function child(code: string): Promise<string> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", CONFIG, code],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const { code: status, stdout, stderr } = await within(command.output(), WAIT_MS, "the child Deno");
  const out = new TextDecoder().decode(stdout);
  assert.equal(status, 0, `the child exited ${status}:\n${out}\n${new TextDecoder().decode(stderr)}`);
  return out;
}

Deno.test("serving does not load LogTape when the application does not use it", async () => {
  const name = uniqueName("no-logtape");
  const out = await child(`
    import { connect, listen } from "${MOD}";
    const listener = listen({ name: "${name}", security: "everyone" });
    const served = (async () => {
      for await (const conn of listener) {
        await conn.writeMessage((await conn.readMessage())!);
        await conn.close();
        break;
      }
    })();
    const client = await connect({ name: "${name}" });
    await client.writeMessage(new Uint8Array([1]));
    await client.readMessage();
    await client.close();
    await served;
    await listener.close();
    console.log(JSON.stringify({ logtape: Symbol.for("logtape.rootLogger") in globalThis }));`);
  assert.deepEqual(JSON.parse(out), { logtape: false });
});

Deno.test("an application that configures LogTape after importing namedpipe gets its records", async () => {
  const name = uniqueName("logtape");
  const out = await child(`
    import { listen } from "${MOD}";
    const { configure } = await import("npm:@logtape/logtape@^2.4.2");
    const records = [];
    await configure({
      sinks: { memory: (record) => records.push(record) },
      loggers: [
        { category: ["namedpipe"], sinks: ["memory"], lowestLevel: "warning" },
        { category: ["logtape", "meta"], sinks: [], lowestLevel: "fatal" },
      ],
    });
    const listener = listen({ name: "${name}", security: "everyone" });
    // Synchronously: the record is in the sink when listen() returns.
    const seen = records.map((r) => ({ category: r.category, level: r.level, text: r.message.join("") }));
    await listener.close();
    console.log(JSON.stringify(seen));`);
  const seen = JSON.parse(out) as { category: string[]; level: string; text: string }[];
  assert.equal(seen.length, 1, out);
  assert.deepEqual(seen[0].category, ["namedpipe", Deno.build.os === "windows" ? "windows" : "posix"]);
  assert.equal(seen[0].level, "warning");
  assert.match(seen[0].text, /is open to every/);
});
