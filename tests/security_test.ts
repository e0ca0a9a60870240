/**
 * Security through the public API: the security descriptor read back from the pipe (Windows), the
 * socket file mode (Linux), and the flags `CreateNamedPipeW` gets on every option combination.
 * Wine does not enforce ACLs between users, so descriptors are checked by reading them back.
 */
import assert from "node:assert/strict";
import { connect, listen, type ListenOptions, openHandleCount, type PipeSecurity } from "../mod.ts";
import { pattern, uniqueName, within } from "./_pipes.ts";
import { daclOrderProblem } from "../pipe/windows/dacl_order.ts";

const windows = Deno.build.os === "windows";
const PIPE_REJECT_REMOTE_CLIENTS = 0x8;
const PIPE_TYPE_MESSAGE = 0x4;
const PIPE_READMODE_MESSAGE = 0x2;
const FILE_FLAG_FIRST_PIPE_INSTANCE = 0x80000;
const FILE_FLAG_OVERLAPPED = 0x40000000;

Deno.test({
  name: "the default security descriptor gives only the current user and SYSTEM access",
  ignore: !windows,
  async fn() {
    await using listener = listen({ name: uniqueName("sddluser") });
    const { sddl } = listener.describe();
    // Deny entries first: an access check grants at the first allows covering the request, so a deny
    // after them would never be reached and the user's own network logon would be admitted.
    const match = /^O:(S-1-5-[\d-]+)D:P\(D;;GA;;;NU\)\(A;;GA;;;\1\)\(A;;GA;;;SY\)$/.exec(sddl ?? "");
    assert.ok(match, `unexpected descriptor ${sddl}`);
    assert.ok(!sddl!.includes(";WD)") && !sddl!.includes(";AN)"), "no Everyone or Anonymous entry");
    assert.equal(daclOrderProblem(sddl!), undefined);
  },
});

Deno.test({
  name: 'security "everyone" gives the seed\'s NULL DACL',
  ignore: !windows,
  async fn() {
    await using listener = listen({ name: uniqueName("sddleveryone"), security: "everyone" });
    const { sddl } = listener.describe();
    assert.match(sddl ?? "", /D:NO_ACCESS_CONTROL$/);
    const connecting = connect({ name: listener.path });
    const conn = await within(listener.accept(), 5000, "the accept");
    await using client = await connecting;
    await client.writeMessage(pattern(2));
    assert.deepEqual(await conn.readMessage(), pattern(2));
    await conn.close();
  },
});

Deno.test({
  name: "an explicit SDDL is the descriptor the pipe gets",
  ignore: !windows,
  async fn() {
    const user = /^O:(S-[\d-]+)/.exec(await describeDefault())![1];
    // Read/write for the user without FILE_CREATE_PIPE_INSTANCE (0x4): may connect, may not squat.
    const dacl = `D:P(A;;GA;;;${user})(A;;0x12019b;;;SY)`;
    await using listener = listen({
      name: uniqueName("sddlexplicit"),
      security: { sddl: `O:${user}${dacl}` },
    });
    const { sddl } = listener.describe();
    assert.equal(sddl, `O:${user}${dacl}`);
    // The pipe still serves its owner.
    const connecting = connect({ name: listener.path });
    const conn = await within(listener.accept(), 5000, "the accept");
    await using client = await connecting;
    await client.writeMessage(pattern(2));
    assert.deepEqual(await conn.readMessage(), pattern(2));
    await conn.close();
  },
});

Deno.test({
  name: "an invalid SDDL is refused with a TypeError and leaves nothing open",
  ignore: !windows,
  fn() {
    const before = openHandleCount();
    assert.throws(
      () => listen({ name: uniqueName("sddlbad"), security: { sddl: "not a descriptor" } }),
      TypeError,
    );
    assert.equal(openHandleCount(), before);
  },
});

Deno.test({
  name: "a caller's SDDL whose DACL is not in canonical order is refused and leaves nothing open",
  ignore: !windows,
  fn() {
    const before = openHandleCount();
    assert.throws(
      () =>
        listen({
          name: uniqueName("sddlorder"),
          security: { sddl: "D:P(A;;GA;;;SY)(D;;GA;;;NU)(A;;GA;;;BA)" },
        }),
      TypeError,
      "deny entry (D;;GA;;;NU) comes after allow entry (A;;GA;;;SY)",
    );
    assert.equal(openHandleCount(), before);
  },
});

// The order checker every descriptor namedpipe builds goes through: plain text, so it runs everywhere.
Deno.test("the DACL order check finds deny entries after allows and explicit entries after inherited", () => {
  const cases: [string, string | undefined][] = [
    ["O:S-1-5-21-1-2-3-1000D:P(D;;GA;;;NU)(A;;GA;;;S-1-5-21-1-2-3-1000)(A;;GA;;;SY)", undefined],
    ["O:S-1-5-21-1-2-3-1000D:P(A;;GA;;;S-1-5-21-1-2-3-1000)(A;;GA;;;SY)(D;;GA;;;NU)", "(D;;GA;;;NU)"],
    ["D:NO_ACCESS_CONTROL", undefined],
    ["D:P", undefined],
    ["O:DAD:(A;;GA;;;SY)(OD;;RP;;;WD)", "(OD;;RP;;;WD)"],
    ["O:SYG:SYD:PAI(D;;GA;;;NU)(A;;GA;;;SY)(D;ID;GA;;;AN)(A;ID;GR;;;WD)S:(AU;SA;GA;;;WD)", undefined],
    ["D:(A;ID;GA;;;SY)(D;;GA;;;NU)", "explicit entry (D;;GA;;;NU) comes after inherited entry"],
    ['D:(XA;;FX;;;WD;(@User.Title=="PM"))(XD;;FX;;;AN;(Member_of {SID(BA)}))', "(XD;;FX;;;AN;"],
    ["D:(D;OICI;GA;;;NU)(A;OICI;GA;;;SY)S:(AU;;GA;;;WD)(D;;GA;;;NU)", undefined],
  ];
  for (const [sddl, expected] of cases) {
    const problem = daclOrderProblem(sddl);
    if (expected === undefined) assert.equal(problem, undefined, sddl);
    else assert.ok(problem?.includes(expected), `${sddl}: ${problem}`);
  }
});

Deno.test({
  name: "PIPE_REJECT_REMOTE_CLIENTS is passed on every option combination unless turned off",
  ignore: !windows,
  async fn() {
    const securities: PipeSecurity[] = ["user", "everyone"];
    for (const mode of ["message", "byte"] as const) {
      for (const security of securities) {
        for (const firstInstance of [undefined, true, false]) {
          for (const rejectRemoteClients of [undefined, true, false]) {
            for (const maxInstances of [undefined, 1, 10]) {
              const options: ListenOptions = {
                name: uniqueName("flags"),
                mode,
                security,
                firstInstance,
                rejectRemoteClients,
                maxInstances,
                bufferSize: 1024,
              };
              await using listener = listen(options);
              const { pipeMode, openMode } = listener.describe();
              const label = JSON.stringify(options);
              assert.equal(
                (pipeMode! & PIPE_REJECT_REMOTE_CLIENTS) !== 0,
                rejectRemoteClients !== false,
                `reject-remote flag for ${label}`,
              );
              const message = PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE;
              assert.equal(pipeMode! & message, mode === "message" ? message : 0, `type for ${label}`);
              assert.equal(
                (openMode! & FILE_FLAG_FIRST_PIPE_INSTANCE) !== 0,
                firstInstance !== false,
                `first-instance flag for ${label}`,
              );
              assert.ok(openMode! & FILE_FLAG_OVERLAPPED, `overlapped for ${label}`);
            }
          }
        }
      }
    }
  },
});

Deno.test({
  name: "the socket gets mode 0600 by default and 0666 for everyone",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await using user = listen({ name: uniqueName("modeuser") });
    assert.equal(user.describe().fileMode, 0o600);
    await using everyone = listen({ name: uniqueName("modeeveryone"), security: "everyone" });
    assert.equal(everyone.describe().fileMode, 0o666);
  },
});

/** The default descriptor, read from a short-lived listener. */
async function describeDefault(): Promise<string> {
  await using listener = listen({ name: uniqueName("sddlprobe") });
  return listener.describe().sddl ?? "";
}

const asRoot = Deno.build.os === "linux" && Deno.uid() === 0;

/**
 * Connect to `name` from a child process that drops to the user `nobody` (uid and gid 65534) first,
 * send "hi" and read the echo; returns what it printed: `served <reply>`, or the error's name.
 */
async function connectAsNobody(name: string): Promise<string> {
  const code = `
    import { connect } from "${new URL("../mod.ts", import.meta.url).href}";
    const lib = Deno.dlopen("libc.so.6", {
      setgroups: { parameters: ["usize", "pointer"], result: "i32" },
      setresgid: { parameters: ["u32", "u32", "u32"], result: "i32" },
      setresuid: { parameters: ["u32", "u32", "u32"], result: "i32" },
    });
    const s = lib.symbols;
    if (s.setgroups(0n, null) || s.setresgid(65534, 65534, 65534) || s.setresuid(65534, 65534, 65534)) {
      throw new Error("cannot become nobody");
    }
    try {
      const conn = await connect({ name: ${JSON.stringify(name)}, timeout: 5000 });
      await conn.writeMessage(new TextEncoder().encode("hi"));
      console.log("served " + new TextDecoder().decode(await conn.readMessage()));
      await conn.close();
    } catch (error) {
      console.log(error.name + ": " + error.message);
    }`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", new URL("../deno.json", import.meta.url).pathname, code],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stdout).trim();
}

Deno.test({
  name: "another user (nobody) is refused with PermissionDenied by default and served with everyone" +
    (Deno.build.os === "linux" && !asRoot ? " (skipped: needs root to run a client as nobody)" : ""),
  ignore: !asRoot,
  async fn() {
    for (const security of ["user", "everyone"] as const) {
      const listener = listen({ name: uniqueName(`nobody${security}`), security });
      const serving = (async () => {
        for await (const conn of listener) {
          const message = await conn.readMessage();
          if (message) await conn.writeMessage(message);
          await conn.close();
        }
      })();
      try {
        const result = await within(connectAsNobody(listener.path), 30_000, "the client run as nobody");
        if (security === "user") assert.match(result, /^PermissionDenied: .*access denied \(13\)/);
        else assert.equal(result, "served hi");
      } finally {
        await listener.close();
        await serving;
      }
    }
  },
});

Deno.test({
  name: "a security preset builds a protected DACL in canonical order, deny first (Windows)",
  ignore: !windows,
  async fn() {
    const user = /^O:(S-[\d-]+)/.exec(await describeDefault())![1];
    const cases: [PipeSecurity, string][] = [
      [
        { allow: ["user", "system", "administrators", "authenticated-users"], deny: ["S-1-5-7"] },
        `O:${user}D:P(D;;GA;;;NU)(D;;GA;;;AN)(A;;GA;;;${user})(A;;GA;;;SY)(A;;0x12019b;;;BA)(A;;0x12019b;;;AU)`,
      ],
      // Names resolve with LookupAccountNameW; the owner keeps its entry even when not listed.
      [{ allow: ["Everyone"] }, `O:${user}D:P(D;;GA;;;NU)(A;;GA;;;${user})(A;;0x12019b;;;WD)`],
      [
        { allow: ["everyone"], deny: ["S-1-5-32-546", "network"] },
        `O:${user}D:P(D;;GA;;;NU)(D;;GA;;;BG)(A;;GA;;;${user})(A;;0x12019b;;;WD)`,
      ],
    ];
    for (const [security, expected] of cases) {
      await using listener = listen({ name: uniqueName("preset"), security });
      const { sddl } = listener.describe();
      assert.equal(sddl, expected, JSON.stringify(security));
      assert.equal(daclOrderProblem(sddl!), undefined, `canonical order of ${sddl}`);
    }
  },
});

Deno.test("a security preset naming an unknown account is NotFound, and leaves nothing open", () => {
  const before = openHandleCount();
  for (
    const security of [{ allow: ["user", "np-no-such-account-h14"] }, {
      allow: ["user"],
      deny: ["np-nobody-h14"],
    }]
  ) {
    if (!windows && security.deny) continue; // Linux refuses deny entries before resolving them
    const error = (() => {
      try {
        listen({ name: uniqueName("presetunknown"), security });
      } catch (error) {
        return error;
      }
    })();
    assert.ok(error instanceof Deno.errors.NotFound, String(error));
    assert.match((error as Error).message, /np-no/);
  }
  assert.equal(openHandleCount(), before);
});

Deno.test({
  name: "a security preset maps to the socket's mode and group, and refuses what a mode cannot say (Linux)",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const group = Deno.gid()!;
    const modes: [PipeSecurity, number, number | undefined][] = [
      [{ allow: ["user"] }, 0o600, undefined],
      [{ allow: ["user", "system", "administrators"], deny: ["network"] }, 0o600, undefined],
      [{ allow: ["everyone"] }, 0o666, undefined],
      [{ allow: ["authenticated-users"] }, 0o666, undefined],
      [{ allow: ["user", String(group)] }, 0o660, group],
      [{ allow: [String(group)] }, 0o060, group],
    ];
    for (const [security, fileMode, fileGroup] of modes) {
      await using listener = listen({ name: uniqueName("presetmode"), security });
      const description = listener.describe();
      assert.equal(description.fileMode, fileMode, JSON.stringify(security));
      assert.equal(description.fileGroup, fileGroup, JSON.stringify(security));
      if (fileGroup !== undefined) assert.equal((await Deno.stat(listener.path)).gid, fileGroup);
    }
    const unsupported: PipeSecurity[] = [
      { allow: ["user"], deny: ["everyone"] },
      { allow: ["S-1-5-11"] },
      { allow: ["BUILTIN\\Users"] },
      { allow: ["nobody"] }, // another user alone: a mode cannot single out a user who does not own it
    ];
    for (const security of unsupported) {
      assert.throws(
        () => listen({ name: uniqueName("presetno"), security }),
        Deno.errors.NotSupported,
        JSON.stringify(security),
      );
    }
  },
});
