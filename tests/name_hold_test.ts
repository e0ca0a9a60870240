/**
 * A listener holds its name for its whole life: between `listen()` and `close()` some instance of the
 * name always exists, so no other user can create the pipe in a gap and receive our clients. Checked
 * from a second process that probes the name without touching it.
 */
import assert from "node:assert/strict";
import { connect, type PipeConn } from "../mod.ts";
import { spawnFixture } from "./_fixtures.ts";
import { pattern, serve, uniqueName, within } from "./_pipes.ts";

const CYCLES = 500;

async function exists(file: string): Promise<boolean> {
  try {
    await Deno.stat(file);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name:
    "a maxInstances 1 server cycling 500 clients never lets its name go (Windows: a Unix socket's path stays)",
  ignore: Deno.build.os !== "windows",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "np_namehold" });
    const ready = `${dir}/ready`, stop = `${dir}/stop`, result = `${dir}/result`;
    await using server = serve({ name: uniqueName("namehold"), maxInstances: 1 });
    const probe = spawnFixture("name_probe.ts", [server.listener.path, ready, stop, result]);
    let notFound = 0;
    let served = 0;
    try {
      await within(
        (async () => {
          while (!await exists(ready)) await new Promise((r) => setTimeout(r, 20));
        })(),
        60_000,
        "the probing process to start",
      );
      for (let i = 0; i < CYCLES; i++) {
        let client: PipeConn | undefined;
        while (!client) {
          try {
            // One attempt at a time, so a missing name is seen rather than retried away.
            client = await connect({ name: server.listener.path, timeout: 0 });
          } catch (error) {
            if (error instanceof Deno.errors.NotFound) notFound++;
            else if (!(error instanceof Deno.errors.TimedOut)) throw error; // busy: the last one closing
            await new Promise((r) => setTimeout(r, 0));
          }
        }
        await client.writeMessage(pattern(4, i));
        assert.deepEqual(await within(client.readMessage(), 5000, `client ${i}'s echo`), pattern(4, i));
        served++;
        await client.close();
      }
    } finally {
      await Deno.writeTextFile(stop, "stop");
      await within(probe.status, 60_000, "the probing process to stop");
    }
    // 0: an instance was free; 121: all busy. 2 (no such pipe) or, under Wine, 676 (the last instance
    // closed during the wait) mean the name was gone for a moment.
    const counts: Record<string, number> = JSON.parse(await Deno.readTextFile(result));
    await Deno.remove(dir, { recursive: true });
    console.log(
      `${served} clients served; probe results ${
        JSON.stringify(counts)
      }; clients told not found: ${notFound}`,
    );
    const probes = Object.values(counts).reduce((a, b) => a + b, 0);
    assert.ok(probes >= 1000, `only ${probes} probes: the name was hardly watched`);
    assert.equal(notFound, 0, "clients were told the pipe does not exist");
    assert.equal(
      (counts["2"] ?? 0) + (counts["676"] ?? 0),
      0,
      `the name was gone: ${JSON.stringify(counts)}`,
    );
    assert.equal(served, CYCLES);
    assert.equal(server.accepted, CYCLES);
  },
});
