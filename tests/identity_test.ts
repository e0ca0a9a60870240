/**
 * Who is on the other end: `conn.peer` on both ends of a connection, and the client's check of who
 * serves a name before it sends anything. The same file runs natively on Linux and under Wine.
 */
import assert from "node:assert/strict";
import { connect, listen, type PeerIdentity } from "../mod.ts";
import { pattern, uniqueName, within } from "./_pipes.ts";
import { asNobody, listensAt } from "./_nobody.ts";

const windows = Deno.build.os === "windows";
const linux = Deno.build.os === "linux";
const root = linux && Deno.uid() === 0;
const WAIT_MS = 10_000;

async function text(command: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "null" }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

/** The owner SID in a descriptor read back by describe(). */
function ownerOf(sddl: string | undefined): string {
  return /^O:(S-[\d-]+)/.exec(sddl ?? "")?.[1] ?? "";
}

async function assertOurUser(peer: PeerIdentity, sddl: string | undefined) {
  if (windows) {
    assert.equal(peer.user.sid, ownerOf(sddl), "the SID of the user running the test");
    assert.match(peer.user.name, /^[^\\]+\\[^\\]+$/, "DOMAIN\\name from LookupAccountSidW");
  } else {
    assert.equal(peer.user.uid, Deno.uid());
    assert.equal(peer.user.gid, Deno.gid());
    assert.equal(peer.user.name, await text("id", ["-un"]));
  }
}

Deno.test("conn.peer names this process and its user on both ends, read before any data", async () => {
  await using listener = listen({ name: uniqueName("peer") });
  const connecting = connect({ name: listener.path, timeout: WAIT_MS });
  // Neither end has written anything yet: the identity must not need data.
  await using server = await within(listener.accept(), WAIT_MS, "the accept");
  await using client = await connecting;
  const { sddl } = listener.describe();

  const seen = server.peer;
  assert.ok(seen, "the server knows its client");
  assert.equal(seen.pid, Deno.pid);
  assert.equal(server.peerPid, Deno.pid);
  await assertOurUser(seen, sddl);

  const serving = client.peer;
  assert.ok(serving, "the client knows its server");
  assert.equal(serving.pid, Deno.pid);
  assert.equal(client.peerPid, Deno.pid);
  await assertOurUser(serving, sddl);

  if (windows) {
    assert.equal(typeof seen.sessionId, "number");
    assert.equal(typeof seen.elevated, "boolean");
    assert.ok(
      ["untrusted", "low", "medium", "medium-plus", "high", "system", "protected"].includes(
        seen.integrityLevel!,
      ),
      `integrity level ${seen.integrityLevel}`,
    );
    assert.ok(seen.groups.length > 0 && seen.groups.every((g) => /^S-1-/.test(g.sid ?? "")), "token groups");
    assert.ok(seen.groups.some((g) => g.sid === "S-1-1-0"), "Everyone is among the token's groups");
  } else {
    assert.ok(seen.groups.some((g) => g.gid === Deno.gid()), "the primary group is among the groups");
    const ids = (await text("id", ["-G"])).split(/\s+/).map(Number);
    for (const gid of ids) assert.ok(seen.groups.some((g) => g.gid === gid), `group ${gid} of id -G`);
  }
  // And it is the identity of a working connection.
  await client.writeMessage(pattern(3));
  assert.deepEqual(await server.readMessage(), pattern(3));
});

Deno.test({
  name: "connect() refuses a pipe owned by another account before sending, unless trusted (Windows)",
  ignore: !windows,
  async fn() {
    // Wine enforces no ACLs between users, but a pipe's owner can be any SID: Everyone (S-1-1-0)
    // stands for "another user" here.
    await using listener = listen({
      name: uniqueName("squatted"),
      security: { sddl: "O:WDD:P(A;;GA;;;WD)" },
    });
    assert.match(listener.describe().sddl ?? "", /^O:(WD|S-1-1-0)D:/);
    const error = await connect({ name: listener.path, timeout: WAIT_MS }).catch((e) => e);
    assert.ok(error instanceof Deno.errors.PermissionDenied, String(error));
    assert.match(error.message, /held by .*Everyone.*S-1-1-0.*server pid \d+/);
    // The refused client came and went without a byte: the server reads end of stream.
    const refused = await within(listener.accept(), WAIT_MS, "the refused client");
    assert.equal(await within(refused.readMessage().catch(() => null), WAIT_MS, "its read"), null);
    await refused.close();

    for (const trust of [{ trustAnyServer: true }, { serverUser: "S-1-1-0" }, { serverUser: "Everyone" }]) {
      const connecting = connect({ name: listener.path, timeout: WAIT_MS, ...trust });
      await using server = await within(listener.accept(), WAIT_MS, "the trusting client");
      await using client = await connecting;
      assert.equal(client.peer?.user.sid, "S-1-1-0", JSON.stringify(trust));
      await client.writeMessage(pattern(2));
      assert.deepEqual(await server.readMessage(), pattern(2));
    }
  },
});

Deno.test("connect() with an unknown serverUser fails with NotFound", async () => {
  await using listener = listen({ name: uniqueName("unknownuser") });
  const accepting = listener.accept().then((conn) => conn.close(), () => {});
  const error = await connect({ name: listener.path, timeout: WAIT_MS, serverUser: "np-no-such-user-h14" })
    .catch((e) => e);
  assert.ok(error instanceof Deno.errors.NotFound, String(error));
  assert.match(error.message, /np-no-such-user-h14/);
  await listener.close();
  await accepting;
});

/** A socket served by `nobody` (socat), writing whatever it receives to a file nobody owns. */
async function nobodyServer(label: string) {
  const directory = await Deno.makeTempDir({ prefix: "np-h14-" });
  await Deno.chmod(directory, 0o777);
  const path = `${directory}/${label}.sock`;
  const received = `${directory}/received`;
  const child = asNobody(
    "socat",
    ["-u", `UNIX-LISTEN:${path},type=5,fork`, `OPEN:${received},creat,append`],
    {
      stdout: "null",
      stderr: "null",
    },
  ).spawn();
  const deadline = Date.now() + WAIT_MS;
  while (true) {
    try {
      await Deno.stat(path);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error("socat did not create its socket");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  const read = async () => {
    try {
      return await Deno.readFile(received);
    } catch {
      return new Uint8Array(0);
    }
  };
  return {
    path,
    read,
    async [Symbol.asyncDispose]() {
      child.kill("SIGKILL");
      await child.status;
      await Deno.remove(directory, { recursive: true });
      assert.ok(!listensAt(path), "the nobody server is gone once killed");
    },
  };
}

Deno.test({
  name: "connect() refuses a socket bound by another user before sending, unless trusted " +
    "(Linux; needs root to be nobody)",
  ignore: !root,
  async fn() {
    await using squatter = await nobodyServer("squat");
    const error = await connect({ name: squatter.path, timeout: WAIT_MS }).catch((e) => e);
    assert.ok(error instanceof Deno.errors.PermissionDenied, String(error));
    assert.match(error.message, /served by "nobody" \(uid 65534\), server pid \d+, not by this user or root/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal((await squatter.read()).length, 0, "nothing reached the squatter");

    for (const trust of [{ trustAnyServer: true }, { serverUser: "nobody" }, { serverUser: "65534" }]) {
      const client = await connect({ name: squatter.path, timeout: WAIT_MS, ...trust });
      assert.equal(client.peer?.user.name, "nobody");
      assert.equal(client.peer?.user.uid, 65534);
      await client.writeMessage(new TextEncoder().encode("hi"));
      await client.close();
    }
    const deadline = Date.now() + WAIT_MS;
    while ((await squatter.read()).length < 6 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(new TextDecoder().decode(await squatter.read()), "hihihi");
  },
});
