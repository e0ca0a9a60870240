/**
 * The server under stress: an echo server on the public API (`listen()`), one message-mode and one
 * byte-mode listener, that writes its own figures (the engine's `openHandleCount()`, memory,
 * counters) to a stats file a few times a second, so the orchestrator can read them on both
 * backends — a Linux process cannot open a pipe that lives in Wine.
 *
 * ```sh
 * deno run -A --v8-flags=--expose-gc tests/stress/echo_server.ts NAME STATS_FILE STOP_FILE \
 *   BUFFER_SIZE MAX_MESSAGE_SIZE MAX_SECONDS [SABOTAGE]
 * ```
 * It stops when `STOP_FILE` appears, or by itself after `MAX_SECONDS`. `SABOTAGE` makes it misbehave
 * in one way per check of `run.ts`, to show that the check catches it (see {@linkcode SABOTAGE}).
 *
 * @module
 */
import { listen, openHandleCount } from "../../mod.ts";
import type { PipeConn, PipeListener } from "../../mod.ts";
import type { ServerStats } from "./_messages.ts";

/**
 * `--sabotage KIND`: a server fault for each check of the run, and the check that must catch it.
 * `leak-fd` is the POSIX backend's test-only hook (`NAMEDPIPE_TEST_ONLY_LEAK_FDS`), which the
 * orchestrator sets in this process's environment: only the OS count can see it.
 */
export const SABOTAGE = {
  /** Corrupt one reply in 500. */
  wrong: "wrong replies",
  /** Forget one connection in 100: never closed. */
  leak: "engine handles",
  /** Every close skips close(2) (the engine's count stays right). */
  "leak-fd": "descriptors",
  /** Hang up on one request in 500 instead of answering it. */
  unanswered: "unanswered requests",
  /** Exit at the 1,500th message, in the main phase (the warm-up sends about 500). */
  die: "server alive",
  /** Drop one well-behaved client in 300 as if its message were over the limit. */
  drop: "drop count",
} as const;

const STATS_EVERY_MS = 200;
const ERROR_SAMPLES = 8;

/** `gc()` when run with `--v8-flags=--expose-gc`: "memory back near the start" means after a GC. */
const gc = (globalThis as { gc?: () => void }).gc;

async function main(args: string[]): Promise<number> {
  const [name, statsFile, stopFile, bufferText, maxText, secondsText, sabotage = "none"] = args;
  const bufferSize = Number(bufferText);
  const maxMessageSize = Number(maxText);
  const deadline = Date.now() + Number(secondsText) * 1000;
  const stats: ServerStats = {
    pid: Deno.pid,
    handles: 0,
    rss: 0,
    heapUsed: 0,
    accepted: 0,
    active: 0,
    messages: 0,
    bytes: 0,
    dropped: 0,
    vanished: 0,
    external: 0,
    errorSamples: [],
    stopped: false,
    time: 0,
  };
  const listeners: PipeListener[] = [
    listen({ name, mode: "message", bufferSize, maxMessageSize }),
    listen({ name: `${name}_byte`, mode: "byte", bufferSize, maxMessageSize }),
  ];
  const active = new Set<PipeConn>();
  const handlers = new Set<Promise<void>>();

  const serveClient = async (conn: PipeConn) => {
    try {
      while (true) {
        const message = await conn.readMessage();
        if (message === null) break;
        stats.messages++;
        stats.bytes += message.length;
        if (sabotage === "wrong" && message.length > 0 && stats.messages % 500 === 0) message[0] ^= 1;
        if (sabotage === "unanswered" && stats.messages % 500 === 0) break;
        if (sabotage === "die" && stats.messages === 1500) Deno.exit(1);
        if (sabotage === "drop" && stats.messages % 300 === 0) {
          stats.dropped++;
          break;
        }
        await conn.writeMessage(message);
      }
    } catch (error) {
      // RangeError: over maxMessageSize, and the engine has already dropped the client.
      if (error instanceof RangeError) stats.dropped++;
      else stats.vanished++;
      if (stats.errorSamples.length < ERROR_SAMPLES) {
        stats.errorSamples.push(`${(error as Error).name}: ${(error as Error).message}`);
      }
    } finally {
      if (sabotage !== "leak" || stats.accepted % 100 !== 0) await conn.close().catch(() => {});
      active.delete(conn);
      stats.active = active.size;
    }
  };
  const acceptLoops = listeners.map(async (listener) => {
    for await (const conn of listener) {
      stats.accepted++;
      active.add(conn);
      stats.active = active.size;
      const task: Promise<void> = serveClient(conn).finally(() => handlers.delete(task));
      handlers.add(task);
    }
  });

  let lastGcMessages = -1;
  const writeStats = () => {
    // Idle and something happened since the last collection: collect, so memory figures compare.
    if (gc && active.size === 0 && stats.messages !== lastGcMessages) {
      gc();
      lastGcMessages = stats.messages;
    }
    const memory = Deno.memoryUsage();
    stats.handles = openHandleCount();
    stats.rss = memory.rss;
    stats.heapUsed = memory.heapUsed;
    stats.external = memory.external;
    stats.time = Date.now();
    // Written beside and renamed, so the reader never sees half a file. A failed write (out of
    // descriptors, say) must not take the server down: the next one will do.
    try {
      Deno.writeTextFileSync(`${statsFile}.tmp`, JSON.stringify(stats));
      Deno.renameSync(`${statsFile}.tmp`, statsFile);
    } catch (error) {
      console.error(`Cannot write the stats file: ${(error as Error).message}`);
    }
  };

  let stopRequested = false;
  try {
    writeStats();
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, STATS_EVERY_MS));
      writeStats();
      try {
        Deno.statSync(stopFile);
        stopRequested = true;
        break;
      } catch {
        // not yet
      }
    }
  } finally {
    await Promise.all(listeners.map((listener) => listener.close()));
    await Promise.allSettled(acceptLoops);
    for (const conn of active) await conn.close().catch(() => {});
    await Promise.allSettled([...handlers]);
    stats.stopped = true;
    writeStats();
  }
  // Exit 3 when the time limit stopped us: the orchestrator should always stop us first.
  return stopRequested ? 0 : 3;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
