/**
 * Processes of `deno task bench`: every server and client runs through `sh -c "exec ..."` with its
 * output in a file (wineserver can inherit a pipe and hold it open after a Wine program exits), so
 * the spawned pid is the program itself — under Wine too, where the Windows process is a Linux
 * process. Every process is tracked, bounded in time and killed with its descendants.
 *
 * @module
 */

/** A program started in the background with its output in `log`. */
export interface Spawned {
  pid: number;
  log: string;
  status: Promise<Deno.CommandStatus>;
}

const live = new Set<Spawned>();
let stopping = false;

function quote(arg: string): string {
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/**
 * Start `argv` with stdout and stderr in `log`, pinned to `cpus` (taskset list) when given.
 * The descriptor limit is raised to the hard limit: 1,000 idle connections need it on both ends.
 */
export function spawnLogged(
  argv: string[],
  log: string,
  options: { env?: Record<string, string>; cpus?: string; cwd?: string } = {},
): Spawned {
  if (stopping) throw new Error("The bench is stopping");
  // Empty the log first: a "ready" left by the previous run must not be taken for this one's.
  Deno.writeTextFileSync(log, "");
  const full = options.cpus ? ["taskset", "-c", options.cpus, ...argv] : argv;
  const script = `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec ${full.map(quote).join(" ")} >${
    quote(log)
  } 2>&1 </dev/null`;
  const child = new Deno.Command("sh", {
    args: ["-c", script],
    env: options.env,
    cwd: options.cwd,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const spawned: Spawned = { pid: child.pid, log, status: child.status };
  live.add(spawned);
  child.status.finally(() => live.delete(spawned));
  return spawned;
}

/** Parent pid of every process, from /proc. */
function parents(): Map<number, number> {
  const map = new Map<number, number>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      // The command name is in parentheses and may contain spaces: the ppid follows the last ")".
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      map.set(Number(entry.name), ppid);
    } catch {
      // The process ended while we looked.
    }
  }
  return map;
}

/** `pid` and all its descendants. */
export function processTree(pid: number): number[] {
  const ppids = parents();
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of ppids) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

/** Resident memory of a process and its descendants in KiB (VmRSS from /proc/PID/status). */
export function treeRssKiB(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      const status = Deno.readTextFileSync(`/proc/${p}/status`);
      total += Number(status.match(/^VmRSS:\s*(\d+)/m)?.[1] ?? 0);
    } catch {
      // Gone meanwhile.
    }
  }
  return total;
}

/** CPU time and context switches of processes (and all their threads), as the kernel counts them. */
export interface CpuSample {
  /** When it was read (`performance.now()`, ms). */
  at: number;
  /** Time on a CPU, ns: the first field of `/proc/PID/task/TID/schedstat`. */
  ns: number;
  /** Voluntary and involuntary context switches (`/proc/PID/task/TID/status`). */
  switches: number;
}

/**
 * {@linkcode CpuSample} of `pids`, every thread of each (with their descendants, give
 * {@linkcode processTree}'s list: found once, it is not searched for at every reading).
 */
export function cpuSample(pids: number[]): CpuSample {
  const sample = { at: performance.now(), ns: 0, switches: 0 };
  for (const pid of new Set(pids)) {
    try {
      for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
        const dir = `/proc/${pid}/task/${task.name}`;
        sample.ns += Number(Deno.readTextFileSync(`${dir}/schedstat`).split(" ")[0]);
        const status = Deno.readTextFileSync(`${dir}/status`);
        for (const match of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s*(\d+)/gm)) {
          sample.switches += Number(match[1]);
        }
      }
    } catch {
      // Gone meanwhile (a thread that ended takes its counts with it).
    }
  }
  return sample;
}

function tail(log: string, lines = 12): string {
  try {
    return Deno.readTextFileSync(log).trim().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no output)";
  }
}

/** Kill a spawned program and its descendants, and wait (bounded) for it to be gone. */
export async function kill(proc: Spawned): Promise<void> {
  for (const pid of processTree(proc.pid).reverse()) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  await Promise.race([proc.status, new Promise((r) => setTimeout(r, 5000))]);
}

/** Kill everything still running and refuse to start more: at the end and on SIGINT/SIGTERM. */
export async function killAll(): Promise<void> {
  stopping = true;
  await Promise.all([...live].map(kill));
}

/** Wait until `log` has a line matching `pattern`; fail when the program exits or time runs out. */
export async function waitForLine(proc: Spawned, pattern: RegExp, timeoutMs: number, what: string) {
  const state: { exited?: Deno.CommandStatus } = {};
  proc.status.then((s) => state.exited = s);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let text = "";
    try {
      text = Deno.readTextFileSync(proc.log);
    } catch {
      // Not created yet.
    }
    if (pattern.test(text)) return;
    const stalled = text.match(/^stalled.*$/m);
    if (stalled) throw new Stalled(`${what}: ${stalled[0]}`);
    if (state.exited) {
      throw new Error(`${what} exited (code ${state.exited.code}) before it was ready:\n${tail(proc.log)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`${what} was not ready within ${timeoutMs / 1000} s:\n${tail(proc.log)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Wait for a program to exit within `timeoutMs`, killing it otherwise; returns its last "ok" line. */
export async function finish(proc: Spawned, timeoutMs: number, what: string): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((r) => timer = setTimeout(() => r(null), timeoutMs));
  const status = await Promise.race([proc.status, timeout]);
  clearTimeout(timer);
  if (!status) {
    await kill(proc);
    throw new Error(`${what} did not finish within ${timeoutMs / 1000} s:\n${tail(proc.log)}`);
  }
  const lines = Deno.readTextFileSync(proc.log).split("\n");
  const stalled = lines.find((l) => l.startsWith("stalled"));
  if (stalled) throw new Stalled(`${what}: ${stalled}`);
  const ok = lines.findLast((l) => l.startsWith("ok "));
  if (!status.success || !ok) throw new Error(`${what} failed (exit ${status.code}):\n${tail(proc.log)}`);
  return ok;
}

/** The load generator gave up on a server that stopped serving (its "stalled" line). */
export class Stalled extends Error {
  override name = "Stalled";
}

/** The pids of the wineserver serving `prefix` (its environment names the prefix). */
export function wineserverPids(prefix: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const comm = Deno.readTextFileSync(`/proc/${entry.name}/comm`).trim();
      if (!comm.startsWith("wineserver")) continue;
      const env = Deno.readTextFileSync(`/proc/${entry.name}/environ`).split("\0");
      if (env.includes(`WINEPREFIX=${prefix}`)) pids.push(Number(entry.name));
    } catch {
      // Gone, or not ours to read.
    }
  }
  return pids;
}

/** Set the CPU affinity of a running process and all its threads (`taskset -a -p`). */
export async function pin(pid: number, cpus: string): Promise<void> {
  await new Deno.Command("taskset", {
    args: ["-a", "-p", "-c", cpus, String(pid)],
    stdout: "null",
    stderr: "null",
  })
    .output();
}
