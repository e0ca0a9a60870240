/**
 * What the operating system says a process holds, for the leak checks: the engine's own
 * `openHandleCount()` is bookkeeping, and a `close()` that forgets `close(2)` or `CloseHandle` keeps
 * it right while the process leaks. Linux: the entries of `/proc/PID/fd`. Windows:
 * `GetProcessHandleCount`. Under Wine that call is a stub returning 0, so there is no OS count there
 * and the tests say so in their names and keep the engine count.
 *
 * @module
 */

/** An OS-level count of this process's descriptors or handles, or why there is none. */
export type OsCount =
  | { source: string; count: () => number }
  | { source: null; why: string };

/** Open descriptors of a Linux process, from `/proc/PID/fd`. */
export function descriptorsOf(pid: number | "self"): number {
  let n = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
  return n;
}

/** How to count what this process holds at the OS level here. */
export async function osCount(): Promise<OsCount> {
  if (Deno.build.os === "linux") return { source: "/proc/self/fd", count: () => descriptorsOf("self") };
  if (Deno.build.os === "windows") {
    const { CURRENT_PROCESS, kernel32 } = await import("../ffi/kernel32.ts");
    const out = new Uint32Array(1);
    const count = () => kernel32().GetProcessHandleCount(CURRENT_PROCESS, out) ? out[0] : 0;
    if (count() > 0) return { source: "GetProcessHandleCount", count };
    return { source: null, why: "no OS count: GetProcessHandleCount is a stub returning 0 under Wine" };
  }
  return { source: null, why: `no OS count on ${Deno.build.os}` };
}

/** A suffix for a test name saying which count its leak check trusts. */
export function countLabel(os: OsCount): string {
  return os.source === null ? `(engine count only, ${os.why})` : `(OS count: ${os.source})`;
}

/**
 * Growth an OS count may show without a leak: the runtime opens a few descriptors (Windows: handles
 * for threads and events) of its own on demand. A leak in a cycle test is one or two per cycle.
 */
export const OS_SLACK = Deno.build.os === "windows" ? 50 : 8;

/** Fail when the OS count grew by more than {@linkcode OS_SLACK} from `before`. */
export function assertOsCountBack(os: OsCount, before: number | undefined, what: string): void {
  if (!os.source || before === undefined) return;
  const after = os.count();
  if (after - before > OS_SLACK) {
    throw new Error(`${what}: ${os.source} grew from ${before} to ${after} (a leak at the OS level)`);
  }
}
