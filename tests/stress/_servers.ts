/**
 * The server under stress, either of two:
 * - `library`: `echo_server.ts` on the public API, which reports the engine's own handle count,
 *   its heap and its counters in a stats file (the only handle count there is under Wine, where
 *   `GetProcessHandleCount` is a stub);
 * - `cli`: the shipped command, `main.ts serve --echo`, one process per mode, watched from outside:
 *   descriptors and memory from `/proc`, drops and disconnects counted in its log (which also puts
 *   every random request through the CLI's message formatting).
 *
 * Both serve `NAME` in message mode and `NAME_byte` in byte mode.
 *
 * @module
 */
import type { Limits, ServerStats } from "./_messages.ts";
import {
  type Backend,
  descriptorsOf,
  memoryOf,
  poll,
  type Proc,
  readJson,
  start,
  waitExit,
} from "./_processes.ts";

const HERE = new URL(".", import.meta.url).pathname;
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** What a server looks like when no client is connected. */
export interface Snapshot {
  /** The engine's `openHandleCount()`; only the library server reports it. */
  handles?: number;
  /** Heap plus external memory after a GC; only the library server reports it. */
  heap?: number;
  /** Open descriptors of the server process(es), from `/proc`. */
  fds?: number;
  rss?: number;
  /** Clients dropped for an oversized message, and clients that vanished. */
  dropped: number;
  vanished: number;
  errorSamples: string[];
}

/** A running server: its processes, and how to read it, settle it and stop it. */
export interface ServerUnderTest {
  kind: "library" | "cli";
  procs: Proc[];
  /** The message-mode process, whose memory is reported. */
  main: Proc;
  /** True once it listens; false if it did not within `ms`. */
  ready(ms: number): Promise<boolean>;
  /** Wait (bounded) until no client is connected and, if given, the handles are back to `handles`. */
  settle(handles?: number, fds?: number): Promise<Snapshot | undefined>;
  /** Ask it to stop; a sentence when it did not stop cleanly, else null. */
  stop(): Promise<string | null>;
  alive(): boolean;
}

/** The figures of processes seen from outside, summed. */
function outside(procs: Proc[]): { fds?: number; rss?: number } {
  let fds = 0;
  for (const proc of procs) {
    const n = descriptorsOf(proc.pid);
    if (n === undefined) return { rss: memoryOf(procs[0].pid)?.rss };
    fds += n;
  }
  return { fds, rss: memoryOf(procs[0].pid)?.rss };
}

/** Start `echo_server.ts`; it stops when `dir/stop` appears, or by itself after `maxSeconds`. */
export function startLibraryServer(
  backend: Backend,
  dir: string,
  name: string,
  limits: Limits,
  maxSeconds: number,
  sabotage = "none",
): ServerUnderTest {
  const statsFile = `${dir}/server-stats.json`;
  const stopFile = `${dir}/stop`;
  const proc = start(
    backend,
    "server",
    `${HERE}echo_server.ts`,
    [
      name,
      backend.path(statsFile),
      backend.path(stopFile),
      String(limits.bufferSize),
      String(limits.maxMessageSize),
      String(maxSeconds),
      sabotage,
    ],
    `${dir}/server.log`,
    ["--v8-flags=--expose-gc"],
  );
  const stats = () => readJson<ServerStats>(statsFile);
  return {
    kind: "library",
    procs: [proc],
    main: proc,
    ready: async (ms) => await poll(() => proc.exited ? false : stats() ? true : undefined, ms) === true,
    async settle(handles, fds) {
      const since = Date.now();
      let last: ServerStats | undefined;
      const idle = (s: ServerStats | undefined) => s !== undefined && s.active === 0;
      await poll(() => {
        if (proc.exited) return null;
        last = stats();
        // Two stat writes after we began waiting, so the GC in between has run.
        if (!idle(last) || last!.time < since + 450) return undefined;
        if (handles !== undefined && last!.handles > handles) return undefined;
        if (fds !== undefined && (descriptorsOf(proc.pid) ?? 0) > fds) return undefined;
        return last;
      }, 15_000);
      if (proc.exited || !last || !idle(last)) return undefined;
      return {
        handles: last.handles,
        heap: last.heapUsed + last.external,
        ...outside([proc]),
        dropped: last.dropped,
        vanished: last.vanished,
        errorSamples: last.errorSamples,
      };
    },
    async stop() {
      Deno.writeTextFileSync(stopFile, "stop\n");
      const status = await waitExit(proc, 20_000);
      if (status === null) return "the server did not stop within 20 s of being asked";
      if (status.code !== 0) return `the server exited with code ${status.code} (see ${proc.log})`;
      const last = stats();
      if (last?.stopped && last.handles !== 0) return `the server held ${last.handles} handles after closing`;
      return null;
    },
    alive: () => !proc.exited,
  };
}

/**
 * Counts lines containing each needle in a log that only grows, reading only what was added since
 * the last call: the CLI logs every request in full, so its log reaches hundreds of MB.
 */
class LogCounter {
  readonly counts: Record<string, number>;
  #path: string;
  #offset = 0;
  #carry = "";
  #decoder = new TextDecoder();

  constructor(path: string, needles: string[]) {
    this.#path = path;
    this.counts = Object.fromEntries(needles.map((needle) => [needle, 0]));
  }

  update(): Record<string, number> {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(this.#path);
    } catch {
      return this.counts;
    }
    try {
      file.seekSync(this.#offset, Deno.SeekMode.Start);
      const chunk = new Uint8Array(1 << 20);
      while (true) {
        const n = file.readSync(chunk);
        if (n === null || n === 0) break;
        this.#offset += n;
        const lines = (this.#carry + this.#decoder.decode(chunk.subarray(0, n), { stream: true })).split(
          "\n",
        );
        this.#carry = lines.pop()!;
        // Only the start of a line matters: the message text after it can be huge.
        for (const line of lines) {
          const head = line.slice(0, 200);
          for (const needle in this.counts) if (head.includes(needle)) this.counts[needle]++;
        }
      }
    } finally {
      file.close();
    }
    return this.counts;
  }
}

/** Cut a log to its first `bytes` bytes, so that a run does not leave hundreds of MB behind. */
export function truncateLog(path: string, bytes = 16 * 1024 * 1024): void {
  try {
    if (Deno.statSync(path).size > bytes) Deno.truncateSync(path, bytes);
  } catch {
    // no log
  }
}

/** Start `main.ts serve --echo` twice: message mode on `name`, byte mode on `name_byte`. */
export function startCliServer(backend: Backend, dir: string, name: string, limits: Limits): ServerUnderTest {
  const serve = (mode: "message" | "byte") =>
    start(
      backend,
      `cli-${mode}`,
      MAIN,
      [
        "serve",
        "--echo",
        "--name",
        mode === "byte" ? `${name}_byte` : name,
        "--mode",
        mode,
        "--buffer-size",
        String(limits.bufferSize),
        "--max-message-size",
        String(limits.maxMessageSize),
      ],
      `${dir}/server-${mode}.log`,
    );
  const procs = [serve("message"), serve("byte")];
  const LISTENING = "Waiting for the client's connection";
  const needles = [
    LISTENING,
    "Client is connected",
    "Client is disconnected",
    "Client dropped",
    "Client vanished",
  ];
  const logs = procs.map((proc) => new LogCounter(proc.log, needles));
  const count = () => {
    const sum: Record<string, number> = {};
    for (const log of logs) {
      const counts = log.update();
      for (const needle of needles) sum[needle] = (sum[needle] ?? 0) + counts[needle];
    }
    return {
      listening: logs.filter((log) => log.counts[LISTENING] > 0).length,
      connected: sum["Client is connected"],
      ended: sum["Client is disconnected"] + sum["Client dropped"] + sum["Client vanished"],
      dropped: sum["Client dropped"],
      vanished: sum["Client vanished"],
    };
  };
  const died = () => procs.some((proc) => proc.exited);
  return {
    kind: "cli",
    procs,
    main: procs[0],
    ready: async (ms) =>
      await poll(() => died() ? false : count().listening === procs.length ? true : undefined, ms) === true,
    async settle(_handles, fds) {
      // Idle: every "Client is connected" line has its ending line.
      const idle = await poll(
        () => {
          if (died()) return null;
          const c = count();
          if (c.connected !== c.ended) return undefined;
          if (fds !== undefined && (outside(procs).fds ?? 0) > fds) return undefined;
          return true;
        },
        15_000,
        250,
      );
      if (!idle) return undefined;
      const c = count();
      return { ...outside(procs), dropped: c.dropped, vanished: c.vanished, errorSamples: [] };
    },
    async stop() {
      // SIGTERM is the CLI's graceful stop on Linux; under Wine a signal cannot reach it as one.
      for (const proc of procs) {
        try {
          Deno.kill(proc.pid, backend.name === "linux" ? "SIGTERM" : "SIGKILL");
        } catch {
          // gone already
        }
      }
      let problem: string | null = null;
      for (const proc of procs) {
        const status = await waitExit(proc, 10_000);
        truncateLog(proc.log);
        if (status === null) problem ??= `${proc.label} did not stop within 10 s of SIGTERM`;
        else if (backend.name === "linux" && status.code !== 0) {
          problem ??= `${proc.label} exited with code ${status.code} on SIGTERM (see ${proc.log})`;
        }
      }
      return problem;
    },
    alive: () => !died(),
  };
}
