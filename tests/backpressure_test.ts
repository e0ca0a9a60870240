/**
 * Accept backpressure: a listener whose owner does not call `accept()` keeps at most
 * `pendingInstances` connections waiting; further clients see a busy pipe and time out instead of
 * piling up handles and memory in the server. Once accepting resumes, the waiting clients are served.
 */
import assert from "node:assert/strict";
import { connect, listen, openHandleCount, type PipeConn } from "../mod.ts";
import { pattern, uniqueName, within } from "./_pipes.ts";

const PENDING = 4;
const ATTEMPTS = 1000;
const AT_ONCE = 20;

Deno.test("1,000 connects to a listener that does not accept leave at most pendingInstances waiting", async () => {
  const before = openHandleCount();
  await using listener = listen({ name: uniqueName("backpressure"), pendingInstances: PENDING });
  const waiting: PipeConn[] = [];
  let connected = 0;
  let busy = 0;
  const attempt = async () => {
    try {
      const client = await connect({ name: listener.path, timeout: 10 });
      connected++;
      if (waiting.length < PENDING) {
        await client.writeMessage(pattern(3, waiting.length));
        waiting.push(client);
      } else {
        await client.close();
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.TimedOut)) throw error;
      busy++;
    }
  };
  try {
    for (let done = 0; done < ATTEMPTS; done += AT_ONCE) {
      await within(Promise.all(Array.from({ length: AT_ONCE }, attempt)), 30_000, "a round of connects");
    }
    const held = openHandleCount() - before;
    console.log(`${connected} connected, ${busy} saw a busy pipe; the engine holds ${held} handles`);
    // Windows: one server instance per waiting connection plus our clients' ends and the port. Linux:
    // the listening socket, our clients' ends, and what the kernel's backlog took (backlog + 1).
    assert.ok(connected <= PENDING + 1, `${connected} clients got in with nobody accepting`);
    assert.ok(held <= 2 * (PENDING + 1) + 2, `the engine holds ${held} handles`);
    assert.equal(connected + busy, ATTEMPTS);

    // Accepting again: the clients that got in are served, then new ones.
    for (let i = 0; i < waiting.length; i++) {
      await using conn = await within(listener.accept(), 5000, `waiting client ${i}`);
      const message = await within(conn.readMessage(), 5000, `waiting client ${i}'s message`);
      assert.ok(message && message.length === 3);
      await conn.writeMessage(message);
    }
    for (const client of waiting) {
      assert.equal((await within(client.readMessage(), 5000, "a reply"))?.length, 3);
    }
    const late = connect({ name: listener.path, timeout: 5000 });
    await using conn = await within(listener.accept(), 5000, "a new client");
    await using client = await late;
    await client.writeMessage(pattern(2));
    assert.deepEqual(await within(conn.readMessage(), 5000, "the new client's message"), pattern(2));
  } finally {
    for (const client of waiting) await client.close();
  }
});
