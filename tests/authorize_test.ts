/**
 * Authorization: `listen({ authorize })` and `allowOnly()` admit or refuse a client by its identity
 * before `accept()` sees it; a refused client reads end of stream and never a byte of reply.
 */
import assert from "node:assert/strict";
import { allowOnly, connect, listen, type PeerIdentity, type PipeConn } from "../mod.ts";
import { pattern, uniqueName, within } from "./_pipes.ts";

const windows = Deno.build.os === "windows";
const WAIT_MS = 10_000;

/**
 * Connect a client the server will refuse. On Windows the server may disconnect it before
 * `connect()` returns, which then rejects with `BrokenPipe` ("the server closed the pipe at once").
 */
async function connectRefused(path: string): Promise<void> {
  let client: PipeConn;
  try {
    client = await connect({ name: path, timeout: WAIT_MS });
  } catch (error) {
    assert.ok(error instanceof Deno.errors.BrokenPipe, String(error));
    assert.match(error.message, /the server closed the pipe at once/);
    return;
  }
  await assertRefused(client);
}

/** What a refused client sees: its write may already fail, its read must be end of stream. */
async function assertRefused(client: PipeConn) {
  await client.writeMessage(pattern(4)).catch((error) => {
    assert.ok(error instanceof Deno.errors.BrokenPipe, String(error));
  });
  const reply = await within(client.readMessage().catch((e) => e), WAIT_MS, "the refused client's read");
  assert.equal(reply, null, "end of stream, no reply");
  await client.close();
}

/** The accepted connection's first message, to tell which client it is. */
async function firstMessage(conn: PipeConn): Promise<Uint8Array | null> {
  return await within(conn.readMessage(), WAIT_MS, "the accepted client's message");
}

Deno.test("authorize refuses a client before accept(): it reads end of stream and no reply", async () => {
  const seen: PeerIdentity[] = [];
  await using listener = listen({
    name: uniqueName("authorize"),
    authorize(peer) {
      seen.push(peer);
      return seen.length > 1; // the first client is refused, the second admitted
    },
  });
  const accepting = listener.accept();
  await connectRefused(listener.path);
  const admitted = await connect({ name: listener.path, timeout: WAIT_MS });
  await using conn = await within(accepting, WAIT_MS, "the admitted client");
  await admitted.writeMessage(pattern(5, 7));
  assert.deepEqual(await firstMessage(conn), pattern(5, 7), "accept() returned the second client");
  await conn.writeMessage(pattern(1));
  assert.deepEqual(await admitted.readMessage(), pattern(1));
  await admitted.close();
  assert.equal(seen.length, 2);
  assert.equal(seen[0].pid, Deno.pid, "authorize saw the client's identity");
});

Deno.test("authorize may answer asynchronously; a throw or rejection refuses", async () => {
  const answers: (() => Promise<boolean>)[] = [
    () => Promise.resolve(false),
    () => Promise.reject(new Error("database down")),
    () => {
      throw new Error("bug");
    },
    () => new Promise((resolve) => setTimeout(() => resolve(true), 50)),
  ];
  let calls = 0;
  await using listener = listen({ name: uniqueName("authasync"), authorize: () => answers[calls++]() });
  const accepting = listener.accept();
  for (let i = 0; i < 3; i++) await connectRefused(listener.path);
  await using client = await connect({ name: listener.path, timeout: WAIT_MS });
  await using conn = await within(accepting, WAIT_MS, "the admitted client");
  await client.writeMessage(pattern(3));
  assert.deepEqual(await firstMessage(conn), pattern(3));
  assert.equal(calls, 4);
});

Deno.test("close() during a pending authorize closes that client, which was never accepted", async () => {
  let release!: (value: boolean) => void;
  let asked!: () => void;
  const wasAsked = new Promise<void>((resolve) => asked = resolve);
  const listener = listen({
    name: uniqueName("authclose"),
    authorize: () => {
      asked();
      return new Promise<boolean>((resolve) => release = resolve);
    },
  });
  const accepting = listener.accept().then(() => "accepted", (error) => error);
  const client = await connect({ name: listener.path, timeout: WAIT_MS });
  await within(wasAsked, WAIT_MS, "authorize to be called");
  await within(listener.close(), WAIT_MS, "the close");
  release(true);
  const outcome = await within(accepting, WAIT_MS, "accept() to settle");
  assert.ok(outcome instanceof Deno.errors.BadResource, String(outcome));
  assert.equal(await within(client.readMessage().catch(() => null), WAIT_MS, "the client's read"), null);
  await client.close();
});

/** This process's identity as the library reports it. */
async function ourselves(): Promise<PeerIdentity> {
  await using listener = listen({ name: uniqueName("me") });
  await using client = await connect({ name: listener.path, timeout: WAIT_MS });
  await using conn = await listener.accept();
  assert.ok(conn.peer && client.peer);
  return conn.peer;
}

Deno.test("allowOnly() admits a listed user or group and refuses the rest, the owner included", async () => {
  const me = await ourselves();
  // Windows: Everyone is among our token's groups, Guests (S-1-5-32-546) and SYSTEM are not us.
  // Linux: our primary group; uid 65534 (nobody) is someone else unless the test runs as nobody.
  const cases = [
    { list: { users: [me.user.name] }, admitted: true },
    { list: { users: [windows ? me.user.sid! : String(me.user.uid)] }, admitted: true },
    { list: { groups: [windows ? "S-1-1-0" : String(Deno.gid())] }, admitted: true },
    { list: { groups: [windows ? "S-1-5-32-546" : String(Deno.gid())], users: [] }, admitted: !windows },
    { list: { users: [windows ? "S-1-5-18" : "65534"] }, admitted: false },
  ];
  for (const { list, admitted } of cases) {
    await using listener = listen({ name: uniqueName("allowonly"), ...allowOnly(list) });
    const accepting = listener.accept();
    accepting.catch(() => {}); // a refused client is never accepted: close() rejects it
    if (admitted) {
      const client = await connect({ name: listener.path, timeout: WAIT_MS });
      await using conn = await within(accepting, WAIT_MS, `admission for ${JSON.stringify(list)}`);
      await client.writeMessage(pattern(2));
      assert.deepEqual(await firstMessage(conn), pattern(2));
      await client.close();
    } else {
      await connectRefused(listener.path);
    }
    if (windows) {
      // The listed principals are in the DACL, after the deny entries; the owner keeps GA.
      const { sddl } = listener.describe();
      assert.match(sddl ?? "", /^O:S-[\d-]+D:P\(D;;GA;;;NU\)\(A;;GA;;;S-[\d-]+\)/, sddl);
    }
  }
});

Deno.test("allowOnly() with an unknown name is NotFound", () => {
  assert.throws(() => allowOnly({ users: ["np-no-such-user-h14"] }), Deno.errors.NotFound);
  assert.throws(() => allowOnly({ groups: ["np-no-such-group-h14"] }), Deno.errors.NotFound);
  assert.throws(() => allowOnly({}), TypeError);
});
