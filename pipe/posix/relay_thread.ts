/**
 * The relay's copy thread (a Worker): copies between pairs of connected Unix sockets in one blocking
 * `epoll_wait` loop, like socat. On the JS thread every readiness costs two thread hand-offs (the
 * `nonblocking` wait's worker thread, then the event loop); here the kernel wakes this thread
 * directly, once per readiness, which is what a relay that forwards one message per wake-up pays for.
 * See `relay_fds.ts` for the other side of the protocol and `pipe/relay.ts` for the rules.
 *
 * Backpressure: a direction holds at most one chunk, and its source is watched for input only while
 * that chunk is empty; a full destination is watched for output instead. Level-triggered interest
 * that always says exactly what is waited for, so nothing spins.
 *
 * @module
 */
import {
  EAGAIN,
  ECONNRESET,
  EINTR,
  ENOTCONN,
  EPIPE,
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLL_DATA_OFFSET,
  EPOLL_EVENT_SIZE,
  EPOLLERR,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  errno,
  libc,
  SHUT_RDWR,
} from "../../ffi/libc.ts";
import { receiveBytes, receiveMessageInto, sendBytes, shutdownWrite } from "./socket.ts";
import type { RelayThreadCommand, RelayThreadReport } from "./relay_fds.ts";

/** Chunks one direction copies per wake-up before the other pairs get their turn. */
const FAIR_SHARE = 16;
/**
 * Bytes read at once from a byte stream (a message destination gets the relay's usual 64 KiB), and
 * the reused buffer a message is received into (a longer one arrives in an array of its own).
 */
const BYTE_CHUNK = 256 * 1024;
const MESSAGE_CHUNK = 64 * 1024;
const WAKE_TOKEN = 0;
const BATCH = 64;

interface Direction {
  /** Source side index (0 or 1); the destination is the other. */
  from: 0 | 1;
  buffer: Uint8Array<ArrayBuffer> | null;
  /** Data read and not yet all sent. An empty array is a zero-length message to send. */
  pending: Uint8Array | null;
  /** reading → (end read) → closing (the half-close to pass on) → done */
  state: "reading" | "closing" | "done";
}

interface Pair {
  id: number;
  fds: [number, number];
  messages: [boolean, boolean];
  maxMessageSize: [number, number];
  eof: "auto" | "half-close" | "close";
  passEmpty: boolean;
  linger?: number;
  lingerAt?: number;
  dirs: [Direction, Direction];
  /** The events each side's fd is registered for now (0: not in the epoll set). */
  interest: [number, number];
  report: RelayThreadReport;
}

/** This worker's global scope (typed here: the project is checked with the window's types). */
const scope = self as unknown as {
  postMessage(message: unknown): void;
  close(): void;
  onmessage: ((event: MessageEvent) => void) | null;
};
const c = libc();
const events = new Uint8Array(BATCH * EPOLL_EVENT_SIZE);
const eventsView = new DataView(events.buffer);
const eventBuffer = new Uint8Array(EPOLL_EVENT_SIZE);
const eventView = new DataView(eventBuffer.buffer);
const counter = new Uint8Array(8);
const pairs = new Map<number, Pair>();
const queue: RelayThreadCommand[] = [];
let received = 0;
let posted: Int32Array;
let epfd = -1;
let wakefd = -1;
let stopping = false;

function control(op: number, fd: number, mask: number, token: number): void {
  eventView.setUint32(0, mask, true);
  eventView.setUint32(EPOLL_DATA_OFFSET, token, true);
  c.epoll_ctl(epfd, op, fd, eventBuffer);
}

/** Make each side's registration say exactly what is waited for. */
function watch(pair: Pair): void {
  for (const side of [0, 1] as const) {
    const read = pair.dirs[side], write = pair.dirs[1 - side];
    let mask = 0;
    if (read.state === "reading" && read.pending === null) mask |= EPOLLIN;
    if (write.pending !== null || write.state === "closing") mask |= EPOLLOUT;
    const was = pair.interest[side];
    if (mask === was) continue;
    const token = pair.id * 2 + side + 1;
    if (mask === 0) control(EPOLL_CTL_DEL, pair.fds[side], 0, token);
    else control(was === 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, pair.fds[side], mask, token);
    pair.interest[side] = mask;
  }
}

/** End the pair: both sockets shut down at once (the JS thread closes the descriptors). */
function finish(pair: Pair, error?: RelayThreadReport["error"]): void {
  if (!pairs.has(pair.id)) return;
  pairs.delete(pair.id);
  for (const side of [0, 1] as const) {
    if (pair.interest[side] !== 0) control(EPOLL_CTL_DEL, pair.fds[side], 0, 0);
    c.shutdown(pair.fds[side], SHUT_RDWR);
  }
  if (error && !pair.report.error) pair.report.error = error;
  scope.postMessage(pair.report);
}

/** One end of stream read: pass it on by the rules. Returns false when the pair ended. */
function ended(pair: Pair, dir: Direction): boolean {
  pair.report.ended[dir.from] = true;
  const rule = pair.eof === "auto" ? "half-close" : pair.eof;
  if (rule === "close") {
    finish(pair);
    return false;
  }
  dir.state = "closing";
  dir.pending = null;
  return true;
}

/**
 * Send the half-close: false while the destination is full (a zero-length message waits), true once
 * sent, `"gone"` when the pair ended (an error, or both directions are now done).
 */
function halfClose(pair: Pair, dir: Direction): boolean | "gone" {
  const to = pair.fds[1 - dir.from];
  if (pair.messages[1 - dir.from]) {
    const n = sendBytes(to, new Uint8Array(0));
    if (n === -EAGAIN || n === -EINTR) return false;
    if (n < 0) {
      finish(pair, { errno: -n, side: 1 - dir.from, action: "close writing to" });
      return "gone";
    }
  } else {
    const code = shutdownWrite(to);
    if (code !== 0 && code !== ENOTCONN) {
      finish(pair, { errno: code, side: 1 - dir.from, action: "close writing to" });
      return "gone";
    }
  }
  dir.state = "done";
  const other = pair.dirs[1 - dir.from];
  if (other.state === "done") {
    finish(pair);
    return "gone";
  }
  if (pair.linger !== undefined && pair.lingerAt === undefined && other.state === "reading") {
    pair.lingerAt = performance.now() + pair.linger;
  }
  return true;
}

/** Copy what one direction can now, up to its fair share. Returns false when the pair ended. */
function pump(pair: Pair, dir: Direction): boolean {
  const from = pair.fds[dir.from], to = pair.fds[1 - dir.from];
  const toMessages = pair.messages[1 - dir.from];
  const messages = pair.messages[dir.from];
  for (let turn = 0; turn < FAIR_SHARE; turn++) {
    if (dir.state === "done") return true;
    if (dir.state === "closing") {
      return halfClose(pair, dir) !== "gone";
    }
    if (dir.pending === null) {
      if (pair.messages[dir.from]) {
        const max = pair.maxMessageSize[dir.from];
        dir.buffer ??= new Uint8Array(new ArrayBuffer(Math.max(1, Math.min(max, MESSAGE_CHUNK))));
        const got = receiveMessageInto(from, max, dir.buffer);
        if (got.kind === "again") return true;
        if (got.kind === "error") {
          if (got.errno === EINTR) continue;
          if (got.errno === ECONNRESET) {
            if (!ended(pair, dir)) return false;
            continue;
          }
          finish(pair, { errno: got.errno, side: dir.from, action: "read from" });
          return false;
        }
        if (got.kind === "too large") {
          finish(pair, { size: got.size, side: dir.from, action: "read from" });
          return false;
        }
        if (got.kind === "end" || (got.data.length === 0 && !pair.passEmpty)) {
          if (!ended(pair, dir)) return false;
          continue;
        }
        if (got.data.length === 0 && !toMessages) continue; // nothing to send on a byte stream
        dir.pending = got.data;
      } else {
        dir.buffer ??= new Uint8Array(new ArrayBuffer(toMessages ? MESSAGE_CHUNK : BYTE_CHUNK));
        const n = receiveBytes(from, dir.buffer);
        if (n === -EAGAIN) return true;
        if (n === -EINTR) continue;
        if (n === 0 || n === -ECONNRESET) {
          if (!ended(pair, dir)) return false;
          continue;
        }
        if (n < 0) {
          finish(pair, { errno: -n, side: dir.from, action: "read from" });
          return false;
        }
        dir.pending = dir.buffer.subarray(0, n);
      }
    }
    const chunk = dir.pending;
    const n = sendBytes(to, chunk);
    if (n === -EAGAIN || n === -EINTR) return true;
    if ((n === -EPIPE || n === -ECONNRESET) && pair.report.ended[1 - dir.from]) {
      pair.report.undelivered[dir.from] += chunk.length; // its destination ended, then left
      finish(pair);
      return false;
    }
    if (n < 0) {
      finish(pair, { errno: -n, side: 1 - dir.from, action: "write to" });
      return false;
    }
    if (toMessages && n !== chunk.length) {
      finish(pair, { partial: [n, chunk.length], side: 1 - dir.from, action: "write to" });
      return false;
    }
    pair.report.bytes[dir.from] += n;
    if (n < chunk.length) {
      dir.pending = chunk.subarray(n);
      continue;
    }
    pair.report.chunks[dir.from]++;
    dir.pending = null;
    // Read again only when more is surely waiting (a byte read filled the buffer); otherwise the
    // level-triggered set says so. A message source, or a short byte read, would most often meet
    // EAGAIN: one system call per chunk that socat does not make either.
    if (messages || chunk.length < dir.buffer!.length) return true;
  }
  return true;
}

/** Input, an end or an error on a side: the direction reading from it may go on. */
const INPUT = EPOLLIN | EPOLLHUP | EPOLLERR;
/** Room, an end or an error on a side: the direction sending to it may go on. */
const ROOM = EPOLLOUT | EPOLLHUP | EPOLLERR;

/**
 * Copy what the readiness `events` of side `side` allow (both directions when not given, as when a
 * pair is added). A direction the event does not concern is not tried: it would only meet EAGAIN.
 */
function run(pair: Pair, side?: 0 | 1, events = INPUT | ROOM): void {
  for (const dir of pair.dirs) {
    const concerned = side === undefined || (events & (dir.from === side ? INPUT : ROOM)) !== 0;
    if (concerned && !pump(pair, dir)) return;
  }
  if (pairs.has(pair.id)) watch(pair);
}

function apply(command: RelayThreadCommand): void {
  switch (command.type) {
    case "add": {
      const direction = (from: 0 | 1): Direction => ({ from, buffer: null, pending: null, state: "reading" });
      const pair: Pair = {
        id: command.id,
        fds: command.fds,
        messages: command.messages,
        maxMessageSize: command.maxMessageSize,
        eof: command.eof,
        passEmpty: command.emptyMessage === "pass",
        linger: command.linger,
        dirs: [direction(0), direction(1)],
        interest: [0, 0],
        report: {
          id: command.id,
          bytes: [0, 0],
          chunks: [0, 0],
          ended: [false, false],
          undelivered: [0, 0],
        },
      };
      pairs.set(pair.id, pair);
      run(pair);
      return;
    }
    case "close": {
      const pair = pairs.get(command.id);
      if (pair) {
        pair.report.closed = true;
        finish(pair);
      }
      return;
    }
    case "stop":
      stopping = true;
  }
}

async function loop(): Promise<void> {
  while (true) {
    // Commands arrive as messages, which only a turn of this worker's event loop delivers: the
    // shared counter says how many were posted, so none is left behind.
    while (received < Atomics.load(posted, 0)) await new Promise((resolve) => setTimeout(resolve, 0));
    for (const command of queue.splice(0)) apply(command);
    if (stopping && pairs.size === 0) break;
    let timeout = -1;
    const now = performance.now();
    for (const pair of pairs.values()) {
      if (pair.lingerAt !== undefined) {
        timeout = Math.max(0, Math.min(timeout < 0 ? Infinity : timeout, Math.ceil(pair.lingerAt - now)));
      }
    }
    const count = c.epoll_wait(epfd, events, BATCH, timeout);
    if (count < 0 && errno() !== EINTR) throw new Error(`epoll_wait failed: errno ${errno()}`);
    for (let i = 0; i < count; i++) {
      const mask = eventsView.getUint32(i * EPOLL_EVENT_SIZE, true);
      const token = eventsView.getUint32(i * EPOLL_EVENT_SIZE + EPOLL_DATA_OFFSET, true);
      if (token === WAKE_TOKEN) {
        c.read(wakefd, counter, 8n);
        continue;
      }
      const pair = pairs.get((token - 1) >> 1);
      if (pair) run(pair, ((token - 1) & 1) as 0 | 1, mask);
    }
    const later = performance.now();
    for (const pair of [...pairs.values()]) {
      if (pair.lingerAt !== undefined && later >= pair.lingerAt) finish(pair);
    }
  }
  c.close(epfd);
  scope.postMessage({ type: "stopped" });
  scope.close();
}

scope.onmessage = (event: MessageEvent) => {
  const data = event.data;
  if (data.type === "start") {
    posted = new Int32Array(data.counter as SharedArrayBuffer);
    wakefd = data.wakefd;
    epfd = c.epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
      scope.postMessage({ type: "failed", errno: errno() });
      scope.close();
      return;
    }
    control(EPOLL_CTL_ADD, wakefd, EPOLLIN, WAKE_TOKEN);
    scope.postMessage({ type: "ready" });
    loop().catch((error) => {
      scope.postMessage({ type: "crashed", message: String(error?.stack ?? error) });
      scope.close();
    });
    return;
  }
  received++;
  queue.push(data as RelayThreadCommand);
};
