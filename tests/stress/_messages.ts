/**
 * What the stress processes share: a seeded random source (a run can be repeated from its seed),
 * the message sizes that probe the engines' edges, byte comparison, and the JSON shapes the
 * processes write for the orchestrator (`run.ts`).
 *
 * @module
 */

/** A small, fast, seeded generator (mulberry32): the same seed gives the same run. */
export class Random {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A 32-bit unsigned integer. */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in `[min, max]`. */
  int(min: number, max: number): number {
    return min + (this.next() % (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  /** `length` random bytes, in a buffer of their own (never a view into a shared one). */
  bytes(length: number): Uint8Array {
    const words = new Uint32Array(Math.ceil(length / 4));
    for (let i = 0; i < words.length; i++) words[i] = this.next();
    return new Uint8Array(words.buffer, 0, length).slice();
  }
}

/** Sizes of the server the stress run starts: small enough that the edges are cheap to hit. */
export interface Limits {
  /** The pipe's in/out buffer (`bufferSize`). */
  bufferSize: number;
  /** The server's `maxMessageSize`: one byte more drops the client. */
  maxMessageSize: number;
  /** The far-over-the-limit message a hostile client sends; 0 when this host cannot send one. */
  farOverMax: number;
}

/** Read buffer of the Windows engine: messages around it take the `ERROR_MORE_DATA` path. */
const ENGINE_READ_SIZE = 64 * 1024;

/**
 * The length of the next well-behaved message: mostly small odd lengths, some empty, and now and
 * then one of the sizes where an engine changes path (buffer size, its 64 KiB read buffer, the
 * maximum message size itself).
 */
export function messageLength(random: Random, limits: Limits): number {
  const roll = random.int(0, 99);
  if (roll < 55) return random.int(1, 300);
  if (roll < 65) return 0;
  if (roll < 85) return random.int(301, 9000) | 1; // odd lengths
  if (roll < 90) return random.int(9001, 3 * limits.bufferSize + ENGINE_READ_SIZE);
  return edgeLengths(limits)[random.int(0, edgeLengths(limits).length - 1)];
}

/** The lengths where an engine changes path, each of which must round-trip intact. */
export function edgeLengths(limits: Limits): number[] {
  const { bufferSize: b, maxMessageSize: max } = limits;
  return [0, 1, b - 1, b, b + 1, ENGINE_READ_SIZE - 1, ENGINE_READ_SIZE, ENGINE_READ_SIZE + 1, max - 1, max];
}

/** True when `a` and `b` hold the same bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** What the server writes to its stats file, a few times a second and when it stops. */
export interface ServerStats {
  pid: number;
  /** `openHandleCount()`: the engine's own count of handles (Windows) or descriptors (Linux). */
  handles: number;
  /** `Deno.memoryUsage()` at the time of writing. */
  rss: number;
  heapUsed: number;
  accepted: number;
  /** Connections open now. */
  active: number;
  messages: number;
  bytes: number;
  /** Clients dropped for a message over `maxMessageSize` (a `RangeError` from `readMessage`). */
  dropped: number;
  /** Clients whose connection failed another way (killed mid-write, reset). */
  vanished: number;
  /** `Deno.memoryUsage().external`: array buffers live outside the heap. */
  external: number;
  /** The first few failures, for the log. */
  errorSamples: string[];
  /** True in the last file written, once the server has stopped. */
  stopped: boolean;
  time: number;
}

/** What a load process reports when it is done. */
export interface LoadResult {
  phase: string;
  /** Connections opened, of every kind. */
  connections: number;
  /** Well-behaved round trips whose reply was checked. */
  messages: number;
  bytes: number;
  /** Replies that differed from the request (or came to a client the server should have dropped). */
  wrong: number;
  /** Well-behaved requests that got no reply (the connection failed). */
  unanswered: number;
  /** Faults injected from inside this process, by kind. */
  faults: Record<string, number>;
  /** Errors the faults were expected to cause, as seen by the clients. */
  expectedErrors: number;
  /** Errors nobody expected; their first few messages are in `errorSamples`. */
  unexpectedErrors: number;
  errorSamples: string[];
  /**
   * The client engine's own `openHandleCount()` once the engine is up but idle (after one
   * connection came and went), and at the end, after every connection of the phase was closed.
   */
  clientHandles: { idle: number; end: number };
  /** Passes of the churn made (the main phase repeats it while soaking). */
  passes?: number;
  durationMs: number;
}
