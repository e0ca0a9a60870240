/**
 * The one I/O completion port of the Windows engine and the overlapped operations issued on it.
 *
 * How an operation runs:
 * 1. {@linkcode submit} issues `ReadFile`/`WriteFile`/`ConnectNamedPipe` on the JS thread with an
 *    OVERLAPPED and reads `GetLastError` right after, on the thread that failed.
 * 2. Every handle is associated with the port with `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS`, so an
 *    operation that finishes at once posts no packet: it completes inline, with no thread hop.
 * 3. `ERROR_IO_PENDING`: the OVERLAPPED (and any buffer) stays in `#pending`, keyed by its address,
 *    until its packet is dequeued — also after `CancelIoEx`. The packet's status is the NTSTATUS in
 *    `OVERLAPPED.Internal`, mapped by `RtlNtStatusToDosError`; `GetLastError` is never read after
 *    the nonblocking wait (it would be the JS thread's value, not the pool thread's).
 *    Each association gets its own completion key, never reused (a generation tag: handle values
 *    and slot addresses are both recycled), and a packet completes an operation only when its key
 *    and its OVERLAPPED both match; any other packet is counted as a stray, never misattributed.
 * 4. Packets are taken in batches: first with a zero-timeout `GetQueuedCompletionStatusEx` on the JS
 *    thread; when nothing is ready, after a `setImmediate`, with a wait of at most
 *    {@linkcode JS_WAIT_MS} on the JS thread itself (a peer that answers within it saves the hand-off
 *    to a pool thread and its wake-up of the JS thread); and only then with ONE `nonblocking` call on
 *    Deno's pool. After a JS-thread wait that timed out, the next ones go straight to the pool for a
 *    while (doubling back-off). The wait runs only while something is pending, so an idle program exits.
 * 5. Cancelling one operation (an `AbortSignal` given to {@linkcode submit}) is
 *    `CancelIoEx(handle, itsOverlapped)`: only that operation ends, with `ERROR_OPERATION_ABORTED`
 *    (or its real result, if it won the race), and its OVERLAPPED and buffer stay in `#pending` until
 *    that packet is dequeued, like any other.
 * 6. `unref`: operations on a handle given to {@linkcode setHandleRef}`(h, false)` do not keep the
 *    process alive. While every pending operation is on such handles, the blocking wait's op is
 *    unref'd (see `keep_alive.ts`): it still runs and completes them, but the process may exit.
 *
 * 7. Fairness: inline completions and a port that always has a packet ready only ever yield microtasks,
 *    so a peer that keeps data ready (one large byte-mode write) would starve timers, signals, other
 *    Deno I/O and every other connection. {@linkcode submit} and the drain loop share one budget: once
 *    a stretch of such work has run {@linkcode SLICE_MS} without the event loop turning, the next
 *    completion is handed out only after a macrotask (a 0 ms timer). This is the engine's one yield.
 *
 * Immediate `ERROR_MORE_DATA` (a message longer than the read buffer already in the pipe): its status
 * is STATUS_BUFFER_OVERFLOW, a warning, not an error. The skip mode skips the packet for any
 * synchronous completion with a non-error status (WDK `FILE_OBJECT.Flags` FO_SKIP_COMPLETION_PORT:
 * "completed synchronously with a non-error status"; Wine `server/async.c` `async_set_result` queues
 * a packet only when `async->pending || !(comp_flags & FILE_SKIP_COMPLETION_PORT_ON_SUCCESS)`; libuv
 * completes WSAEMSGSIZE inline for the same reason). Verified under Wine 8: after an immediate
 * ERROR_MORE_DATA a zero-timeout dequeue finds no packet, while a read that went pending and then met
 * a longer message gets its packet with STATUS_BUFFER_OVERFLOW. So an immediate ERROR_MORE_DATA is
 * completed inline exactly once, and a pending one exactly once by its packet.
 *
 * @module
 */
import {
  ERROR_IO_PENDING,
  ERROR_MORE_DATA,
  FILE_SKIP_COMPLETION_PORT_ON_SUCCESS,
  INFINITE,
  kernel32,
  ntdll,
} from "../../ffi/kernel32.ts";
import { adopt, closeHandle, type Handle, isValid } from "./handles.ts";
import { win32Error } from "../errors.ts";
import { onAbort } from "../abort.ts";
import { setOpRef } from "../keep_alive.ts";
import { setImmediate } from "node:timers";

/** How an overlapped operation ended: a Win32 error (0 = success) and the bytes transferred. */
export interface Completion {
  error: number;
  bytes: number;
}

/** `sizeof(OVERLAPPED)` and `sizeof(OVERLAPPED_ENTRY)` on x64. */
const OVERLAPPED_SIZE = 32;
const ENTRY_SIZE = 32;
/** Packets taken per dequeue. */
const BATCH = 64;
/** Slots carved from one ArrayBuffer: off the V8 heap, so their addresses never move. */
const SLAB = 64;

/** One reusable OVERLAPPED with its address. */
class Slot {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly address: number;
  constructor(buffer: ArrayBuffer, offset: number) {
    this.bytes = new Uint8Array(buffer, offset, OVERLAPPED_SIZE);
    this.view = new DataView(buffer, offset, OVERLAPPED_SIZE);
    this.address = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.bytes)));
  }
}

interface Pending {
  slot: Slot;
  handle: Handle;
  /** The completion key of the handle's association: a packet must carry it. */
  key: number;
  /** The buffer the kernel writes into or reads from: kept alive until the packet. */
  keep: unknown;
  resolve(completion: Completion): void;
  /** Stops listening to the operation's AbortSignal. */
  unlisten(): void;
}

const free: Slot[] = [];

function takeSlot(): Slot {
  let slot = free.pop();
  if (!slot) {
    const slab = new ArrayBuffer(OVERLAPPED_SIZE * SLAB);
    for (let i = 1; i < SLAB; i++) free.push(new Slot(slab, i * OVERLAPPED_SIZE));
    slot = new Slot(slab, 0);
  }
  slot.bytes.fill(0);
  return slot;
}

let portHandle: Handle | undefined;
/** Handles associated with the port and not yet closed: the port lives while any does. */
let associated = 0;
/** Each associated handle's completion key. Keys start at 1 and are never reused; 0 is no handle's. */
const keys = new Map<Handle, number>();
let lastKey = 0;
const pending = new Map<number, Pending>();
/** Per handle: operations pending and who waits for them to drain. */
const perHandle = new Map<Handle, { count: number; drained: (() => void)[] }>();
let running = false;
/** Handles whose operations do not keep the process alive (`unref()`). */
const unrefd = new Set<Handle>();
/** Pending operations on handles not in `unrefd`: the wait keeps the process alive while any. */
let refPending = 0;
/** The blocking wait's op while it runs, and whether it keeps the process alive. */
let waitOp: Promise<number> | null = null;
let waitRefd = true;

const syncEntries = new Uint8Array(new ArrayBuffer(ENTRY_SIZE * BATCH));
const syncView = new DataView(syncEntries.buffer);
const syncRemoved = new Uint32Array(new ArrayBuffer(8));
// The blocking wait writes these from a pool thread: separate from the JS thread's, never reused
// while that call runs.
const asyncEntries = new Uint8Array(new ArrayBuffer(ENTRY_SIZE * BATCH));
const asyncView = new DataView(asyncEntries.buffer);
const asyncRemoved = new Uint32Array(new ArrayBuffer(8));

function port(): Handle {
  if (portHandle === undefined) {
    const h = kernel32().CreateIoCompletionPort(
      0xffff_ffff_ffff_ffffn, // INVALID_HANDLE_VALUE: a new port
      0n,
      0n,
      1, // one thread consumes it: ours
    );
    if (!isValid(h)) throw win32Error(kernel32().GetLastError(), "create", "I/O completion port");
    portHandle = adopt(h);
  }
  return portHandle;
}

/**
 * Attach a freshly opened overlapped handle to the port, with synchronous successes completing
 * inline. Pair with {@linkcode closeAssociated}.
 * @throws the Win32 error as a typed error, once `handle` is closed: the caller owns it no more
 */
export function associate(handle: Handle, name: string): void {
  const k = kernel32();
  let p: Handle;
  try {
    p = port();
  } catch (error) {
    closeHandle(handle);
    throw error;
  }
  const key = ++lastKey;
  if (!isValid(k.CreateIoCompletionPort(handle, testOnlyFailAssociate() ? handle : p, BigInt(key), 0))) {
    const error = k.GetLastError();
    closeHandle(handle);
    maybeClosePort();
    throw win32Error(error, "watch", name);
  }
  keys.set(handle, key);
  associated++;
  if (!k.SetFileCompletionNotificationModes(handle, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS)) {
    // Without the mode every operation also posts a packet; completing inline too would complete
    // twice. Refuse the handle rather than run in a mode this engine does not handle.
    const error = k.GetLastError();
    closeAssociated(handle);
    throw win32Error(error, "set completion mode of", name);
  }
}

/** `CloseHandle` for a handle given to {@linkcode associate}; nothing may be pending on it. */
export function closeAssociated(handle: Handle): void {
  // Nothing is pending on it: forget its ref state before the value can be reused.
  unrefd.delete(handle);
  keys.delete(handle);
  closeHandle(handle);
  associated--;
  maybeClosePort();
}

function maybeClosePort() {
  if (associated === 0 && !running && pending.size === 0 && portHandle !== undefined) {
    closeHandle(portHandle);
    portHandle = undefined;
  }
}

/**
 * Issue one overlapped operation. `issue` makes the Win32 call with the OVERLAPPED it is given and
 * returns its BOOL. Returns the completion at once when the call finished inline, or a promise of it
 * when the call is pending; `keep` (the data buffer) stays referenced until then. While it is
 * pending, `signal` aborting cancels this operation alone (`CancelIoEx` on its OVERLAPPED); the
 * promise still resolves only with its packet, usually `ERROR_OPERATION_ABORTED`.
 */
export function submit(
  handle: Handle,
  issue: (overlapped: Uint8Array) => number,
  keep?: unknown,
  signal?: AbortSignal,
): Completion | Promise<Completion> {
  const k = kernel32();
  const slot = takeSlot();
  const ok = issue(slot.bytes);
  if (ok) {
    const bytes = Number(slot.view.getBigUint64(8, true)); // InternalHigh
    free.push(slot);
    return inline({ error: 0, bytes });
  }
  const error = k.GetLastError();
  if (error !== ERROR_IO_PENDING) {
    // A synchronous failure, ERROR_PIPE_CONNECTED or an immediate ERROR_MORE_DATA: no packet follows
    // (see the module doc), so the slot is free again now.
    const bytes = error === ERROR_MORE_DATA ? Number(slot.view.getBigUint64(8, true)) : 0;
    free.push(slot);
    if (error === ERROR_MORE_DATA) inlineMoreData++;
    return inline({ error, bytes });
  }
  return new Promise<Completion>((resolve) => {
    // The slot is ours until its packet: CancelIoEx names exactly this operation.
    const unlisten = onAbort(signal, () => kernel32().CancelIoEx(handle, slot.bytes));
    pending.set(slot.address, { slot, handle, key: keys.get(handle) ?? 0, keep, resolve, unlisten });
    const entry = perHandle.get(handle);
    if (entry) entry.count++;
    else perHandle.set(handle, { count: 1, drained: [] });
    if (!unrefd.has(handle)) refPending++;
    updateWaitRef();
    if (!running) run();
  });
}

/** `ref()`/`unref()` of a handle: whether its pending operations keep the process alive. */
export function setHandleRef(handle: Handle, ref: boolean): void {
  if (unrefd.has(handle) === !ref) return;
  const count = perHandle.get(handle)?.count ?? 0;
  if (ref) {
    unrefd.delete(handle);
    refPending += count;
  } else {
    unrefd.add(handle);
    refPending -= count;
  }
  updateWaitRef();
}

function updateWaitRef() {
  const ref = refPending > 0;
  if (waitOp && ref !== waitRefd) setOpRef(waitOp, ref);
  waitRefd = ref;
}

/** An inline completion, handed out at once or, once the stretch is over budget, after a macrotask. */
function inline(completion: Completion): Completion | Promise<Completion> {
  return mustYield() ? turn!.then(() => completion) : completion;
}

/**
 * `CancelIoEx(handle, NULL)`: every pending operation on `handle` completes with
 * `ERROR_OPERATION_ABORTED` (or its real result, if it won the race). `ERROR_NOT_FOUND` (nothing
 * left to cancel) is benign.
 */
export function cancel(handle: Handle): void {
  if (!perHandle.has(handle)) return;
  // The caller waits for these packets (close drains them): they keep the process alive again.
  setHandleRef(handle, true);
  kernel32().CancelIoEx(handle, null);
}

/** Resolves once no operation on `handle` is pending (its packets all dequeued). */
export function drained(handle: Handle): Promise<void> {
  const entry = perHandle.get(handle);
  if (!entry) return Promise.resolve();
  return new Promise((resolve) => entry.drained.push(resolve));
}

let strays = 0;
let inlineMoreData = 0;

/**
 * TEST ONLY, never set in use: with `NAMEDPIPE_TEST_ONLY_FAIL_ASSOCIATE=1` in the environment (read
 * at each association, and only when env access was granted at load) {@linkcode associate} names the
 * handle itself as the port, which the OS refuses: the leak test's way to make association fail.
 */
const TEST_HOOKS = Deno.permissions.querySync({ name: "env", variable: "NAMEDPIPE_TEST_ONLY_FAIL_ASSOCIATE" })
  .state === "granted";
function testOnlyFailAssociate(): boolean {
  return TEST_HOOKS && Deno.env.get("NAMEDPIPE_TEST_ONLY_FAIL_ASSOCIATE") === "1";
}

/**
 * TEST ONLY: post, for every operation now pending, a packet naming its OVERLAPPED under completion
 * key 0, which no association ever has (a stale packet). Returns how many were posted.
 */
export function testOnlyPostStalePackets(): number {
  if (portHandle === undefined) return 0;
  let n = 0;
  for (const address of pending.keys()) {
    if (kernel32().PostQueuedCompletionStatus(portHandle, 5, 0n, BigInt(address))) n++;
  }
  return n;
}

/** What {@linkcode portStats} reports. */
export interface PortStats {
  /** Operations still waiting for their packet. */
  pending: number;
  /**
   * Packets that matched no pending operation by both completion key and OVERLAPPED: counted and
   * dropped (always 0 unless something posts a packet for an operation no longer pending).
   */
  strayPackets: number;
  /** Whether the completion port is open. */
  open: boolean;
  /** Operations that met ERROR_MORE_DATA at once and were completed inline (no packet). */
  inlineMoreData: number;
  /** Times the engine made a completion wait for a macrotask (see {@linkcode SLICE_MS}). */
  yields: number;
}

/** What the port has seen, for tests. */
export function portStats(): PortStats {
  return {
    pending: pending.size,
    strayPackets: strays,
    open: portHandle !== undefined,
    inlineMoreData,
    yields,
  };
}

function dispatch(view: DataView, count: number) {
  const rtl = ntdll().RtlNtStatusToDosError;
  for (let i = 0; i < count; i++) {
    const at = i * ENTRY_SIZE;
    const address = Number(view.getBigUint64(at + 8, true)); // lpOverlapped
    const op = pending.get(address);
    if (!op || op.key !== Number(view.getBigUint64(at, true))) { // lpCompletionKey
      // Only a NULL wake-up post may lack an operation; anything else is a packet for an operation
      // no longer pending (a second packet, or one of a closed handle whose slot was reused).
      // The limit: a late packet for the same handle (same key) and an OVERLAPPED slot that handle
      // reuses is indistinguishable from the new operation's and completes it. Only a packet
      // dequeued after its operation ended could be one, and the slot is freed only on dequeue, so
      // this relies on Windows posting one packet per operation and on nothing forging one with
      // PostQueuedCompletionStatus.
      if (address !== 0) strays++;
      continue;
    }
    pending.delete(address);
    op.unlisten();
    if (!unrefd.has(op.handle)) refPending--;
    const status = op.slot.view.getUint32(0, true); // OVERLAPPED.Internal: the NTSTATUS
    const bytes = view.getUint32(at + 24, true); // dwNumberOfBytesTransferred
    const error = status === 0 ? 0 : rtl(status);
    free.push(op.slot);
    const entry = perHandle.get(op.handle)!;
    if (--entry.count === 0) {
      perHandle.delete(op.handle);
      for (const wake of entry.drained) wake();
    }
    op.resolve({ error, bytes });
  }
  updateWaitRef();
}

/**
 * Let the continuations of just-completed operations run and issue their next I/O before the next
 * zero-timeout dequeue. Measured under Wine with a 1,000-round-trip ping-pong in one process: with 3
 * or more ticks 2,003 batches came from the zero-timeout dequeue and 3 from the blocking wait; with 0
 * or 1 tick all 2,003 went through the blocking wait (a thread hop each). 8 leaves room for deeper
 * call chains at a cost of microseconds.
 */
async function settle() {
  for (let i = 0; i < 8; i++) await null;
}

/**
 * Longest stretch of inline work (in ms) before the engine lets the event loop turn. A 10 ms timer
 * then runs at most about this late; measured under Wine with 256 MiB through one byte-mode
 * connection (4 x 1 MiB writes in flight, a ping-pong on a second connection), the timer fired once in
 * 9.7 s before and at worst 168 ms late after, on a loaded 2-core machine.
 */
export const SLICE_MS = 8;
/** When the current stretch of work began, its event loop turn not yet seen. */
let sliceStart = 0;
/** Resolves at the next macrotask: the 0 ms timer armed when the stretch began. */
let turn: Promise<void> | undefined;
let yields = 0;

/**
 * True when the work since the event loop last turned has run longer than {@linkcode SLICE_MS}; the
 * caller then waits for {@linkcode nextTurn}. The first call of a stretch arms the timer that tells
 * when the loop turns (at most one timer at a time, whatever the number of operations).
 */
function mustYield(): boolean {
  const now = performance.now();
  if (turn === undefined) {
    sliceStart = now;
    turn = new Promise((resolve) =>
      setTimeout(() => {
        turn = undefined;
        resolve();
      }, 0)
    );
    return false;
  }
  if (now - sliceStart < SLICE_MS) return false;
  yields++;
  return true;
}

/**
 * How long the JS thread waits for packets itself before the wait moves to Deno's pool. On Windows a
 * wait that times out may last up to a timer tick (15.6 ms by default); the back-off makes that rare
 * for a connection whose peer is slow to answer.
 */
const JS_WAIT_MS = 1;
/** After a JS-thread wait that timed out, at most this many waits in a row go straight to the pool. */
const MAX_JS_WAIT_BACKOFF = 64;
let jsWaitSkip = 0;
let jsWaitBackoff = 1;

/**
 * The JS thread's own bounded wait, after a `setImmediate` (so timers and other tasks run between two
 * of them): a peer in a request/response exchange usually answers within it, which saves the hand-off
 * to a pool thread and that thread's wake-up of the JS thread. True when it dequeued packets
 * (dispatched); false when the pool should wait (timed out: back off, doubling).
 */
async function jsWait(p: Handle): Promise<boolean> {
  if (refPending === 0) return false;
  if (jsWaitSkip > 0) {
    jsWaitSkip--;
    return false;
  }
  await new Promise((resolve) => setImmediate(resolve));
  if (kernel32().GetQueuedCompletionStatusEx(p, syncEntries, BATCH, syncRemoved, JS_WAIT_MS, 0)) {
    jsWaitBackoff = 1;
    dispatch(syncView, syncRemoved[0]);
    return true;
  }
  jsWaitSkip = jsWaitBackoff;
  jsWaitBackoff = Math.min(jsWaitBackoff * 2, MAX_JS_WAIT_BACKOFF);
  return false;
}

async function run() {
  running = true;
  const k = kernel32();
  try {
    while (pending.size > 0) {
      const p = portHandle!;
      if (k.GetQueuedCompletionStatusEx(p, syncEntries, BATCH, syncRemoved, 0, 0)) {
        dispatch(syncView, syncRemoved[0]);
        // Nothing left to wait for: end now (the port closes once unused); the next submit() restarts.
        if (pending.size === 0) break;
        // Packets ready on every dequeue (a peer that always has data) must not starve the event loop.
        if (mustYield()) await turn;
        else await settle();
        continue;
      }
      if (await jsWait(p)) {
        if (pending.size === 0) break;
        await settle();
        continue;
      }
      const op = k.GetQueuedCompletionStatusExBlocking(p, asyncEntries, BATCH, asyncRemoved, INFINITE, 0);
      waitOp = op;
      // A new op is ref'd: unref it at once when only unref'd handles wait.
      if (!waitRefd) setOpRef(op, false);
      let ok: number;
      try {
        ok = await op;
      } finally {
        waitOp = null;
      }
      if (ok) {
        dispatch(asyncView, asyncRemoved[0]);
        await settle();
      } else {
        // With INFINITE this only fails when the port itself is broken; keep the OVERLAPPEDs (the
        // kernel may still own them) but fail the operations rather than hang.
        for (const [address, op] of pending) {
          pending.delete(address);
          op.unlisten();
          op.resolve({ error: 6, bytes: 0 });
        }
        refPending = 0;
        for (const [handle, entry] of perHandle) {
          perHandle.delete(handle);
          for (const wake of entry.drained) wake();
        }
      }
    }
  } finally {
    running = false;
    maybeClosePort();
  }
}
