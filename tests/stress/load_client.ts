/**
 * The load process: many concurrent connections to the echo server through the public API
 * (`connect()`), each checking every reply byte for byte, mixed with hostile clients that the server
 * must survive. It runs one phase described by a JSON plan file and writes a {@linkcode LoadResult}.
 *
 * ```sh
 * deno run -A tests/stress/load_client.ts PLAN.json RESULT.json
 * ```
 *
 * Phases: `check` (every edge length in message mode, byte mode and read in pieces, one over-max
 * client, two floods and a few ordinary clients: run before the baseline and again at the end, to
 * show the server still serves) and `main` (the churn with hostile clients among it, while idle
 * clients and clients that never read stay connected; repeated while soaking).
 *
 * @module
 */
import { connect, openHandleCount } from "../../mod.ts";
import type { PipeConn, PipeMode } from "../../mod.ts";
import { edgeLengths, type Limits, type LoadResult, messageLength, Random, sameBytes } from "./_messages.ts";

/** What `run.ts` asks one load process to do. */
export interface LoadPlan {
  phase: "check" | "main";
  name: string;
  seed: number;
  limits: Limits;
  /** Well-behaved clients that connect, do a few round trips and leave. */
  clients: number;
  /** Clients in flight at once. */
  concurrency: number;
  rounds: [number, number];
  /** Share of well-behaved clients in byte mode. */
  byteShare: number;
  /** Connections opened first and never used until the churn is over. */
  idle: number;
  /** Clients that send without reading until the pipe is full, held until the churn is over. */
  noRead: number;
  /** Hostile clients, spread through the churn. */
  overMax: number;
  halfMessage: number;
  cutMessage: number;
  connectClose: number;
  /** Connections that each send `floodSize` tiny messages back to back. */
  floods: number;
  floodSize: number;
  /** Bound on one client's whole conversation. */
  clientTimeoutMs: number;
  /** Keep repeating the churn (fresh content each pass) until this many seconds have passed. */
  soakSeconds: number;
  /** Bound on the whole phase. */
  maxSeconds: number;
}

const ERROR_SAMPLES = 10;
/** A write that has not completed after this long is taken as "the pipe is full". */
const STALL_MS = 300;

class TimeoutError extends Error {}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs one phase and counts what happens. */
class Load {
  readonly result: LoadResult;
  readonly #plan: LoadPlan;
  readonly #random: Random;

  constructor(plan: LoadPlan) {
    this.#plan = plan;
    this.#random = new Random(plan.seed);
    this.result = {
      phase: plan.phase,
      connections: 0,
      messages: 0,
      bytes: 0,
      wrong: 0,
      unanswered: 0,
      faults: {},
      expectedErrors: 0,
      unexpectedErrors: 0,
      errorSamples: [],
      clientHandles: { idle: NaN, end: NaN },
      durationMs: 0,
    };
  }

  #fault(kind: string) {
    this.result.faults[kind] = (this.result.faults[kind] ?? 0) + 1;
  }

  #unexpected(what: string, error: unknown) {
    this.result.unexpectedErrors++;
    if (this.result.errorSamples.length < ERROR_SAMPLES) {
      const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      this.result.errorSamples.push(`${what}: ${text}`);
    }
  }

  async #connect(mode: PipeMode, maxMessageSize?: number): Promise<PipeConn> {
    const conn = await connect({
      name: this.#plan.name + (mode === "byte" ? "_byte" : ""),
      mode,
      timeout: Math.min(20_000, this.#plan.clientTimeoutMs),
      maxMessageSize: maxMessageSize ?? 2 * this.#plan.limits.maxMessageSize,
    });
    this.result.connections++;
    return conn;
  }

  /** Read back exactly `length` bytes of a byte-mode echo; null if the stream ended first. */
  async #readBytes(conn: PipeConn, length: number): Promise<Uint8Array | null> {
    const out = new Uint8Array(length);
    let have = 0;
    while (have < length) {
      const chunk = await conn.readMessage();
      if (chunk === null) return null;
      const n = Math.min(chunk.length, length - have);
      out.set(chunk.subarray(0, n), have);
      have += n;
      if (n < chunk.length) return null; // more than was sent: cannot be an echo
    }
    return out;
  }

  /**
   * Message mode, replies read with `read()` into small buffers: a message longer than the buffer
   * comes in pieces (`ERROR_MORE_DATA` on Windows), which must add up to the message exactly. An
   * empty message must read as `null` (the documented `closeWrite()` signal), and the conversation
   * goes on after it.
   */
  async #readPieces(conn: PipeConn, length: number): Promise<Uint8Array | null> {
    // `read()` reports a zero-length message as end of stream (it is what `closeWrite()` sends).
    if (length === 0) {
      return await conn.read(new Uint8Array(this.#random.int(1, 64))) === null ? new Uint8Array(0) : null;
    }
    const out = new Uint8Array(length);
    let have = 0;
    do {
      const piece = new Uint8Array(this.#random.int(1, 3000));
      const n = await conn.read(piece);
      if (n === null) return null;
      if (have + n > length) return new Uint8Array(length + 1); // ran into the next message: wrong
      out.set(piece.subarray(0, n), have);
      have += n;
      if (n === 0) break; // never for a non-empty message: the compare catches it
    } while (have < length);
    return have === length ? out : out.subarray(0, have);
  }

  /**
   * One well-behaved conversation; every reply is compared with its request. `pieces` is message
   * mode read with small `read()` buffers.
   */
  async wellBehaved(kind: PipeMode | "pieces", lengths?: number[]) {
    const mode: PipeMode = kind === "byte" ? "byte" : "message";
    const random = this.#random;
    const count = lengths?.length ?? random.int(...this.#plan.rounds);
    let answered = 0;
    let conn: PipeConn | undefined;
    try {
      conn = await this.#connect(mode);
      const c = conn;
      await within(
        (async () => {
          for (let i = 0; i < count; i++) {
            const length = lengths?.[i] ?? messageLength(random, this.#plan.limits);
            const request = random.bytes(length);
            // Write and read at once: a byte-mode echo comes back while we are still writing.
            const written = c.writeMessage(request);
            const reply = kind === "message"
              ? await c.readMessage()
              : kind === "byte"
              ? await this.#readBytes(c, length)
              : await this.#readPieces(c, length);
            answered++;
            if (reply === null) {
              written.catch(() => {});
              this.result.unanswered++;
              this.#unexpected(
                `${kind} client`,
                new Error(`end of stream instead of a ${length}-byte reply`),
              );
              return;
            }
            await written;
            if (!sameBytes(reply, request)) this.result.wrong++;
            else {
              this.result.messages++;
              this.result.bytes += length;
            }
          }
        })(),
        this.#plan.clientTimeoutMs,
        `a ${kind} client's ${count} round trips`,
      );
    } catch (error) {
      this.result.unanswered += count - answered;
      this.#unexpected(`${kind} client`, error);
    } finally {
      await conn?.close().catch((error) => this.#unexpected("close", error));
    }
  }

  /**
   * Many tiny messages back to back on one connection, read concurrently and checked in order.
   * `pipelined`: every write is issued at once, none awaited before the next.
   */
  async flood(pipelined = false) {
    const random = this.#random;
    const size = this.#plan.floodSize;
    const requests = Array.from({ length: size }, () => random.bytes(random.int(0, 8)));
    let answered = 0;
    let conn: PipeConn | undefined;
    try {
      conn = await this.#connect("message");
      const c = conn;
      this.#fault(pipelined ? "flood (pipelined)" : "flood");
      const reader = (async () => {
        for (const request of requests) {
          const reply = await c.readMessage();
          if (reply === null) throw new Error(`end of stream after ${answered} of ${size} flood replies`);
          answered++;
          if (sameBytes(reply, request)) {
            this.result.messages++;
            this.result.bytes += request.length;
          } else this.result.wrong++;
        }
      })();
      const writer = pipelined
        ? Promise.all(requests.map((request) => c.writeMessage(request)))
        : (async () => {
          for (const request of requests) await c.writeMessage(request);
        })();
      await within(Promise.all([reader, writer]), this.#plan.clientTimeoutMs, `a flood of ${size} messages`);
    } catch (error) {
      this.result.unanswered += size - answered;
      this.#unexpected("flood", error);
    } finally {
      await conn?.close().catch((error) => this.#unexpected("close", error));
    }
  }

  /** A message over the server's maximum: the server must drop this client, and only it. */
  async overMax(size: number) {
    let conn: PipeConn | undefined;
    try {
      // Our own maximum is bigger, so that the send is allowed (Linux sizes SO_SNDBUF from it).
      conn = await this.#connect("message", 2 * size);
      const c = conn;
      this.#fault("over max");
      const written = c.writeMessage(this.#random.bytes(size)).catch(() => "failed" as const);
      const reply = await within(
        c.readMessage().catch(() => null),
        this.#plan.clientTimeoutMs,
        "the server to drop a client over the maximum",
      );
      if (reply !== null) this.result.wrong++; // answered: the limit was not enforced
      else this.result.expectedErrors++;
      await within(written, this.#plan.clientTimeoutMs, "the over-max write to end");
    } catch (error) {
      this.#unexpected("over-max client", error);
    } finally {
      await conn?.close().catch(() => {});
    }
  }

  /** Byte mode: half of a message, then a clean close without reading the echo. */
  async halfMessage() {
    let conn: PipeConn | undefined;
    try {
      conn = await this.#connect("byte");
      this.#fault("half message");
      const whole = this.#random.bytes(this.#random.int(2, 3 * this.#plan.limits.bufferSize));
      await within(
        conn.write(whole.subarray(0, whole.length >> 1)),
        this.#plan.clientTimeoutMs,
        "half a message",
      );
    } catch (error) {
      this.#unexpected("half-message client", error);
    } finally {
      await conn?.close().catch(() => {});
    }
  }

  /** Message mode: close while a large write is still going (Windows cancels it part way). */
  async cutMessage() {
    let conn: PipeConn | undefined;
    try {
      conn = await this.#connect("message");
      this.#fault("cut message");
      const size = this.#random.int(this.#plan.limits.bufferSize * 4, this.#plan.limits.maxMessageSize);
      const written = conn.writeMessage(this.#random.bytes(size)).then(() => "sent", () => "cut");
      await sleep(this.#random.int(0, 2));
      await conn.close();
      if (await within(written, this.#plan.clientTimeoutMs, "a cut write to end") === "cut") {
        this.result.expectedErrors++;
      }
    } catch (error) {
      this.#unexpected("cut-message client", error);
    } finally {
      await conn?.close().catch(() => {});
    }
  }

  /** Connect and leave at once, before the server may have accepted (`ERROR_NO_DATA`). */
  async connectClose() {
    try {
      const conn = await this.#connect(this.#random.chance(0.2) ? "byte" : "message");
      this.#fault("connect and close");
      await conn.close();
    } catch (error) {
      this.#unexpected("connect-and-close client", error);
    }
  }

  /** Write without reading until a write stalls: the pipe (and the server's reply) is full. */
  async noRead(): Promise<PipeConn | undefined> {
    try {
      const conn = await this.#connect("message");
      this.#fault("never reads");
      const chunk = this.#random.bytes(4 * this.#plan.limits.bufferSize);
      for (let sent = 0; sent < 64 * 1024 * 1024; sent += chunk.length) {
        const written = conn.writeMessage(chunk);
        const stalled = await Promise.race([written.then(() => false), sleep(STALL_MS).then(() => true)]);
        if (stalled) {
          written.catch(() => {}); // ends when we close
          return conn;
        }
      }
      this.#unexpected("never-reading client", new Error("wrote 64 MiB without the pipe filling up"));
      return conn;
    } catch (error) {
      this.#unexpected("never-reading client", error);
    }
  }
}

/** Run `tasks` with at most `concurrency` at once. */
async function pool(tasks: (() => Promise<void>)[], concurrency: number) {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]();
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tasks.length) }, worker));
}

/** Shuffle in place with the run's own random source, so hostile clients land among the others. */
function shuffle<T>(items: T[], random: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

async function runPhase(plan: LoadPlan, load: Load) {
  const edges = edgeLengths(plan.limits);
  if (plan.phase === "check") {
    await load.wellBehaved("message", edges);
    await load.wellBehaved("byte", edges.filter((n) => n <= 3 * plan.limits.bufferSize));
    await load.wellBehaved("pieces", edges);
    await load.overMax(plan.limits.maxMessageSize + 1);
    await load.flood();
    await load.flood(true);
    await pool(
      Array.from({ length: plan.clients }, () => () => load.wellBehaved("message")),
      plan.concurrency,
    );
    return;
  }
  const random = new Random(plan.seed ^ 0x5eed);
  const idle: PipeConn[] = [];
  for (let i = 0; i < plan.idle; i++) {
    try {
      idle.push(await connect({ name: plan.name, timeout: 20_000 }));
      load.result.connections++;
    } catch (error) {
      load.result.unexpectedErrors++;
      load.result.errorSamples.push(`idle client: ${(error as Error).message}`);
    }
  }
  load.result.faults["idle"] = idle.length;
  const stuck = (await Promise.all(Array.from({ length: plan.noRead }, () => load.noRead())))
    .filter((conn): conn is PipeConn => conn !== undefined);

  const soakEnd = performance.now() + plan.soakSeconds * 1000;
  do {
    await pool(shuffle(churn(plan, load, random), random), plan.concurrency);
    load.result.passes = (load.result.passes ?? 0) + 1;
  } while (performance.now() < soakEnd);

  // The idle and stuck clients were there all along; only now do they leave.
  for (const conn of [...idle, ...stuck]) {
    await conn.close().catch((error) => load.result.errorSamples.push(String(error)));
  }
}

/** One pass of the churn: well-behaved clients with the hostile ones among them. */
function churn(plan: LoadPlan, load: Load, random: Random): (() => Promise<void>)[] {
  const tasks: (() => Promise<void>)[] = [];
  for (let i = 0; i < plan.clients; i++) {
    const kind = random.chance(plan.byteShare) ? "byte" : random.chance(0.1) ? "pieces" : "message";
    tasks.push(() => load.wellBehaved(kind));
  }
  for (let i = 0; i < plan.overMax; i++) {
    // Just over the limit, and far over it.
    const size = i % 2 || !plan.limits.farOverMax ? plan.limits.maxMessageSize + 1 : plan.limits.farOverMax;
    tasks.push(() => load.overMax(size));
  }
  for (let i = 0; i < plan.halfMessage; i++) tasks.push(() => load.halfMessage());
  for (let i = 0; i < plan.cutMessage; i++) tasks.push(() => load.cutMessage());
  for (let i = 0; i < plan.connectClose; i++) tasks.push(() => load.connectClose());
  for (let i = 0; i < plan.floods; i++) tasks.push(() => load.flood(i % 2 === 1));
  return tasks;
}

async function main(args: string[]): Promise<number> {
  const [planFile, resultFile] = args;
  const plan: LoadPlan = JSON.parse(Deno.readTextFileSync(planFile));
  const load = new Load(plan);
  const started = performance.now();
  const write = () => {
    load.result.durationMs = Math.round(performance.now() - started);
    Deno.writeTextFileSync(`${resultFile}.tmp`, JSON.stringify(load.result));
    Deno.renameSync(`${resultFile}.tmp`, resultFile);
  };
  // Bounded whatever happens: report what we have and leave.
  const limit = setTimeout(() => {
    load.result.unexpectedErrors++;
    load.result.errorSamples.push(`the ${plan.phase} phase did not finish in ${plan.maxSeconds} s`);
    write();
    Deno.exit(2);
  }, plan.maxSeconds * 1000);
  // The engine opens its port (Windows) or epoll (Linux) on first use: count from there.
  await (await connect({ name: plan.name, timeout: 20_000 })).close();
  load.result.clientHandles.idle = openHandleCount();
  await runPhase(plan, load);
  // The Windows engine closes its port when its wait loop ends, a moment after the last close.
  for (let i = 0; i < 20 && openHandleCount() > load.result.clientHandles.idle; i++) await sleep(100);
  load.result.clientHandles.end = openHandleCount();
  clearTimeout(limit);
  write();
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
