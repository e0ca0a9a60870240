/**
 * The libc symbol table (`ffi/libc.ts`) loads on every glibc Deno runs on: each symbol must be
 * exported at `GLIBC_2.28` or older, or `Deno.dlopen` fails the whole table on Ubuntu 20.04,
 * Debian 11 or RHEL 8. The symbol list comes from the table itself, the versions from the running
 * libc's dynamic symbol table (`objdump -T`, from binutils). Linux-only.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LIBC_SYMBOLS } from "../ffi/libc.ts";

/** The oldest glibc the Linux backend supports. */
const OLDEST = [2, 28];

/** The path of the libc this process runs on, from its memory map. */
function runningLibc(): string {
  const maps = Deno.readTextFileSync("/proc/self/maps");
  const path = maps.split("\n").map((line) => line.split(/\s+/)[5]).find((p) =>
    /\/libc\.so\.6$/.test(p ?? "")
  );
  assert.ok(path, "libc.so.6 is not mapped into this process");
  return path;
}

/** Every version each defined symbol of `library` is exported at: `lstat` → `["GLIBC_2.33"]`. */
function exportedVersions(library: string): Map<string, string[]> {
  let output: Deno.CommandOutput;
  try {
    output = new Deno.Command("objdump", { args: ["-T", library], stdout: "piped", stderr: "piped" })
      .outputSync();
  } catch (error) {
    throw new Error(`Cannot run objdump (install binutils): ${error}`);
  }
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const versions = new Map<string, string[]>();
  // 00000000000f7840  w   DF .text	0000000000000015  GLIBC_2.33  lstat
  // 0000000000150070 g    DF .text	0000000000000021 (GLIBC_2.2.5) realpath
  for (const line of new TextDecoder().decode(output.stdout).split("\n")) {
    const match = /\s(\*UND\*|\.\S+)\s+[0-9a-f]+\s+\(?(GLIBC_[0-9.]+)\)?\s+(\S+)$/.exec(line);
    if (!match || match[1] === "*UND*") continue;
    const [, , version, name] = match;
    versions.set(name, [...versions.get(name) ?? [], version]);
  }
  return versions;
}

/** `GLIBC_2.3.2` → `[2, 3, 2]`, compared part by part. */
function olderOrEqual(version: string, oldest: number[]): boolean {
  const parts = version.replace("GLIBC_", "").split(".").map(Number);
  for (let i = 0; i < Math.max(parts.length, oldest.length); i++) {
    const a = parts[i] ?? 0;
    const b = oldest[i] ?? 0;
    if (a !== b) return a < b;
  }
  return true;
}

Deno.test({
  name: "every libc symbol the Linux backend binds exists at GLIBC_2.28 or older",
  ignore: Deno.build.os !== "linux",
  fn() {
    const versions = exportedVersions(runningLibc());
    assert.ok(versions.size > 1000, `objdump listed only ${versions.size} glibc symbols`);
    const names = Object.entries(LIBC_SYMBOLS).map(([key, definition]) =>
      "name" in definition ? definition.name : key
    );
    const tooNew = names.filter((name) => !(versions.get(name) ?? []).some((v) => olderOrEqual(v, OLDEST)))
      .map((name) => `${name} (${(versions.get(name) ?? ["not exported"]).join(", ")})`);
    assert.deepEqual(tooNew, [], `symbols missing from glibc ${OLDEST.join(".")}: ${tooNew.join("; ")}`);
  },
});
