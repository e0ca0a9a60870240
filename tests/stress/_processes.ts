/**
 * Starting, watching and killing the stress processes on either backend: Linux Deno natively, or
 * Windows Deno under Wine in the test harness's prefix (`../wine/windows_deno.ts`). Output always
 * goes to a log file: a Wine program can leave a pipe held open by wineserver.
 *
 * @module
 */
import { CACHE, prepareWindowsDeno, type WindowsDeno, WINE, winePath } from "../wine/windows_deno.ts";

/** Where the stress processes run. */
export interface Backend {
  name: "linux" | "wine";
  /** The command that runs `deno run -A FLAGS SCRIPT ARGS` on this backend. */
  command(script: string, args: string[], denoFlags?: string[]): { program: string; args: string[] };
  env: Record<string, string>;
  /** A host path as the backend's Deno sees it. */
  path(hostPath: string): string;
}

/** Linux Deno: this very executable. */
export function linuxBackend(): Backend {
  return {
    name: "linux",
    command: (script, args, denoFlags = []) => ({
      program: Deno.execPath(),
      args: ["run", "-A", ...denoFlags, script, ...args],
    }),
    env: { NO_COLOR: "1" },
    path: (hostPath) => hostPath,
  };
}

/** Windows Deno under Wine, prepared (and if need be installed) by the harness. */
export async function wineBackend(): Promise<Backend> {
  const deno: WindowsDeno = await prepareWindowsDeno();
  return {
    name: "wine",
    command: (script, args, denoFlags = []) => ({
      program: WINE,
      args: [deno.exe, "run", "-A", ...denoFlags, winePath(script), ...args],
    }),
    env: deno.env,
    path: winePath,
  };
}

/**
 * The same backend with a DENO_DIR of its own for short-lived processes (Wine only). wineserver keeps
 * the descriptor of a closed file open while another process still has that file open (to keep
 * POSIX locks, `server/fd.c`), and every Windows Deno keeps its SQLite caches in DENO_DIR open: with
 * one long-lived Windows Deno, each short-lived one left 9 descriptors behind in wineserver, and
 * about 2,200 fault processes took it to its limit of 20,000 (then every Wine program fails with
 * "Too many open files"). Own cache databases, with the npm packages and the rest shared by links.
 */
export function withOwnCache(backend: Backend, dir: string): Backend {
  if (backend.name !== "wine") return backend;
  const shared = `${CACHE}/deno_dir`;
  Deno.mkdirSync(dir, { recursive: true });
  for (const entry of Deno.readDirSync(shared)) {
    if (!entry.isDirectory) continue; // the SQLite caches (and their -wal, -shm) are files
    try {
      Deno.symlinkSync(`${shared}/${entry.name}`, `${dir}/${entry.name}`);
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
  }
  return { ...backend, env: { ...backend.env, DENO_DIR: winePath(dir) } };
}

/** A started process. Its pid is the program's own (the shell `exec`s it), so kill -9 hits it. */
export interface Proc {
  readonly label: string;
  readonly pid: number;
  readonly log: string;
  /** Resolves when the process has ended; never rejects. */
  readonly status: Promise<Deno.CommandStatus>;
  exited: boolean;
  kill(): void;
}

/** Start `script` on `backend` with stdin empty and stdout and stderr in `log`. */
export function start(
  backend: Backend,
  label: string,
  script: string,
  args: string[],
  log: string,
  denoFlags?: string[],
): Proc {
  const { program, args: programArgs } = backend.command(script, args, denoFlags);
  const child = new Deno.Command("sh", {
    args: ["-c", 'exec "$@" >"$STRESS_LOG" 2>&1 </dev/null', "sh", program, ...programArgs],
    env: { ...backend.env, STRESS_LOG: log },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const proc: Proc = {
    label,
    pid: child.pid,
    log,
    exited: false,
    status: child.status.then((status) => {
      proc.exited = true;
      return status;
    }),
    kill() {
      if (proc.exited) return;
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    },
  };
  return proc;
}

/** The process's status, or null if it is still running after `ms`. */
export async function waitExit(proc: Proc, ms: number): Promise<Deno.CommandStatus | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), ms));
  try {
    return await Promise.race([proc.status, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Kill and reap: after this the process is gone, or reported as unkillable. */
export async function killAndReap(proc: Proc): Promise<void> {
  proc.kill();
  if (await waitExit(proc, 5000) === null) {
    console.error(`[stress] ${proc.label} (pid ${proc.pid}) survived SIGKILL`);
  }
}

/** Poll `probe` every `everyMs` until it returns a value (not undefined) or `ms` pass. */
export async function poll<T>(probe: () => T | undefined, ms: number, everyMs = 100): Promise<T | undefined> {
  const end = Date.now() + ms;
  while (true) {
    const value = probe();
    if (value !== undefined || Date.now() >= end) return value;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** VmRSS and VmHWM (peak) of a Linux process, in bytes; Wine programs are Linux processes too. */
export function memoryOf(pid: number): { rss: number; peak: number } | undefined {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kib = (field: string) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"))?.[1] ?? 0);
    return { rss: kib("VmRSS") * 1024, peak: kib("VmHWM") * 1024 };
  } catch {
    return undefined;
  }
}

/** Open descriptors of a Linux process (`/proc/PID/fd`). */
export function descriptorsOf(pid: number): number | undefined {
  try {
    let n = 0;
    for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
    return n;
  } catch {
    return undefined;
  }
}

/** Read a JSON file another process writes by rename; undefined while it is missing. */
export function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(path)) as T;
  } catch {
    return undefined;
  }
}
