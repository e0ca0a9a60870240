/**
 * The epoll loop: one epoll instance for every socket of the process, waited on by at most one
 * `nonblocking` `epoll_wait` call at a time (the same shape as the completion port on Windows).
 *
 * Operations try the system call first and only wait after `EAGAIN`. Sockets are registered
 * edge-triggered once, so a wait is woken by the next change after the `EAGAIN`, which cannot be
 * missed: the call and the registration of the waiter happen in one synchronous step on the JS thread.
 *
 * Before blocking, ready events are drained by a zero-timeout `epoll_wait` on the JS thread, which
 * is much cheaper than a round trip through a worker thread. When nothing is ready, the JS thread
 * itself waits a little (`epoll_pwait2`, at most {@linkcode JS_WAIT_US} µs) before the wait moves to
 * a worker thread: a peer in a request/response exchange usually answers within that time, and the
 * hand-off to the worker and its wake-up of the JS thread (two more context switches, often across
 * CPUs) are what one round trip cost above Node's. That wait comes only after a `setImmediate`, so
 * timers and every other task of the event loop run between two of them (`tests/fairness_test.ts`);
 * after a wait that timed out, the next ones go straight to the worker for a while (doubling back-off).
 * It is skipped while only unref'd sockets wait, and once `epoll_pwait2` failed (Linux before 5.11,
 * or a seccomp filter that predates it). The blocking wait runs only while some
 * operation waits; when the last waiter goes away (its socket was closed), an eventfd in the set wakes
 * the blocked call, so an idle program exits and a finished test leaves no pending operation. When
 * the last socket is gone, the epoll instance and the eventfd are closed too.
 *
 * Cancellation: a waiter given an `AbortSignal` leaves its queue when the signal aborts and rejects
 * with the reason; nothing was consumed, since it only waited. `unref`: the blocking wait's op stops
 * keeping the process alive while every waiter belongs to an unref'd socket (see `keep_alive.ts`).
 *
 * @module
 */
import {
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EINTR,
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLL_DATA_OFFSET,
  EPOLL_EVENT_SIZE,
  EPOLLERR,
  EPOLLET,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  EPOLLRDHUP,
  errno,
  libc,
  SYS_EPOLL_PWAIT2,
} from "../../ffi/libc.ts";
import { setImmediate } from "node:timers";
import { errnoError } from "../errors.ts";
import { onAbort } from "../abort.ts";
import { setOpRef } from "../keep_alive.ts";

/** Events taken per `epoll_wait`. */
const BATCH = 128;
/** Zero-timeout drains in a row before going through the event loop, so timers are not starved. */
const MAX_SPINS = 32;
/**
 * Microtask turns the pump lets pass after it woke operations, so that they run first (a server
 * sends its reply) and its zero-timeout drain and `setImmediate` come after, off the path of that
 * reply; the first new waiter (the woken reader waiting again) ends this early. Draining at once
 * put 9 µs before every reply of an unpinned one-client ping-pong (README, idea table).
 */
const DEFER_TURNS = 16;
/**
 * How long the JS thread waits for readiness itself before the wait moves to a worker thread. 1 ms,
 * as the Windows engine: with 200 µs an unpinned one-client ping-pong on a quiet 2-vCPU machine ran
 * at 0.64x of C, with 1 ms at 0.84-0.87x (README, idea table); a wait that times out blocks the event
 * loop for at most this long, and the back-off makes that rare for an idle peer.
 */
const JS_WAIT_US = 1000;
/** After a JS-thread wait that timed out, at most this many waits in a row go straight to the worker. */
const MAX_JS_WAIT_BACKOFF = 64;
/** The eventfd's token in the epoll set; sockets count from 1. */
const WAKE_TOKEN = 0;

const READ_EVENTS = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
const WRITE_EVENTS = EPOLLOUT | EPOLLHUP | EPOLLERR;
/** What an eventfd write adds: 1 (native-endian u64). */
const ONE = new Uint8Array(new BigUint64Array([1n]).buffer);

/** One socket in the epoll set, with the operations waiting for it to become ready. */
export class Registration {
  readonly token: number;
  readonly fd: number;
  /** Whether `EPOLLOUT` is in the interest set: added on the first write that met `EAGAIN`. */
  watchingWrites = false;
  readers: (() => void)[] = [];
  writers: (() => void)[] = [];
  closed = false;
  /** False after `unref()`: its waiters do not keep the process alive. */
  ref = true;

  constructor(token: number, fd: number) {
    this.token = token;
    this.fd = fd;
  }
}

function epollEvent(events: number, token: number): Uint8Array<ArrayBuffer> {
  const event = new Uint8Array(EPOLL_EVENT_SIZE);
  const view = new DataView(event.buffer);
  view.setUint32(0, events >>> 0, true);
  view.setUint32(EPOLL_DATA_OFFSET, token, true);
  return event;
}

class Poller {
  #epfd = -1;
  #wakefd = -1;
  #nextToken = 1;
  #sockets = new Map<number, Registration>();
  /** Operations waiting for readiness, across all sockets. */
  #waiting = 0;
  /** Of those, the ones on ref'd sockets: the blocking wait keeps the process alive while any. */
  #refWaiting = 0;
  #blocked: Promise<void> | null = null;
  /** The pending `epoll_wait` op itself, and whether it keeps the process alive now. */
  #waitOp: Promise<number> | null = null;
  #waitRefd = true;
  #scheduled = false;
  #spins = 0;
  /** Turns the pump still lets pass before draining (see {@linkcode DEFER_TURNS}). */
  #deferTurns = 0;
  /** A `setImmediate` is pending, after which the JS thread waits itself. */
  #yielding = false;
  /** Waits that go to the worker thread before the JS thread waits again, and the next back-off. */
  #jsWaitSkip = 0;
  #jsWaitBackoff = 1;
  #jsWaitSupported = true;
  /** `struct timespec` of the JS-thread wait. */
  #jsWaitTimeout = new Uint8Array(new BigInt64Array([0n, BigInt(JS_WAIT_US * 1000)]).buffer);
  #drainEvents = new Uint8Array(BATCH * EPOLL_EVENT_SIZE);
  #drainView = new DataView(this.#drainEvents.buffer);
  #blockEvents = new Uint8Array(BATCH * EPOLL_EVENT_SIZE);
  #blockView = new DataView(this.#blockEvents.buffer);
  #counter = new Uint8Array(8);

  /** Descriptors the poller itself holds open (epoll and eventfd). */
  get ownHandles(): number {
    return this.#epfd >= 0 ? 2 : 0;
  }

  /** Sockets registered now. */
  get sockets(): number {
    return this.#sockets.size;
  }

  #open(): void {
    const c = libc();
    const epfd = c.epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) throw errnoError(errno(), "create epoll instance for", "namedpipe");
    const wakefd = c.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakefd < 0) {
      const code = errno();
      c.close(epfd);
      throw errnoError(code, "create eventfd for", "namedpipe");
    }
    // Level-triggered: the wake stays visible until it is read back.
    if (c.epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, epollEvent(EPOLLIN, WAKE_TOKEN)) < 0) {
      const code = errno();
      c.close(wakefd);
      c.close(epfd);
      throw errnoError(code, "register eventfd for", "namedpipe");
    }
    this.#epfd = epfd;
    this.#wakefd = wakefd;
  }

  /** Add a non-blocking socket to the set, edge-triggered for reads. */
  register(fd: number, path: string): Registration {
    if (this.#epfd < 0) this.#open();
    const token = this.#nextToken;
    // Tokens, not descriptors, identify sockets: a closed fd's number is reused at once.
    this.#nextToken = this.#nextToken >= 0xffff_fff0 ? 1 : this.#nextToken + 1;
    if (libc().epoll_ctl(this.#epfd, EPOLL_CTL_ADD, fd, epollEvent(READ_EVENTS | EPOLLET, token)) < 0) {
      const code = errno();
      this.#closeIfUnused();
      throw errnoError(code, "watch", path);
    }
    const registration = new Registration(token, fd);
    this.#sockets.set(token, registration);
    return registration;
  }

  /**
   * Remove a socket before its descriptor is closed, waking its waiters (they see `closed`).
   * Does not close the descriptor. `closing`: the caller closes it right after, which removes it
   * from the epoll set (the engine never duplicates a descriptor), so `EPOLL_CTL_DEL` is skipped.
   */
  unregister(registration: Registration, closing = false): void {
    if (registration.closed) return;
    registration.closed = true;
    this.#sockets.delete(registration.token);
    if (!closing) libc().epoll_ctl(this.#epfd, EPOLL_CTL_DEL, registration.fd, epollEvent(0, 0));
    this.#wakeAll(registration, registration.readers);
    this.#wakeAll(registration, registration.writers);
    // Nothing else waits: end the blocked epoll_wait now.
    if (this.#waiting === 0 && this.#blocked) this.#wake();
    this.#closeIfUnused();
  }

  #wake(): void {
    libc().write(this.#wakefd, ONE, 8n);
  }

  /** Wait until the socket may be readable again (after `EAGAIN`); rejects with `signal.reason`. */
  readable(registration: Registration, signal?: AbortSignal): Promise<void> {
    return this.#wait(registration, registration.readers, signal);
  }

  /** Wait until the socket may be writable again (after `EAGAIN`); rejects with `signal.reason`. */
  writable(registration: Registration, path: string, signal?: AbortSignal): Promise<void> {
    if (!registration.watchingWrites) {
      // MOD re-arms the edge trigger and reports the current state, so no change is missed.
      const events = READ_EVENTS | WRITE_EVENTS | EPOLLET;
      if (
        libc().epoll_ctl(this.#epfd, EPOLL_CTL_MOD, registration.fd, epollEvent(events, registration.token)) <
          0
      ) {
        return Promise.reject(errnoError(errno(), "watch", path));
      }
      registration.watchingWrites = true;
    }
    return this.#wait(registration, registration.writers, signal);
  }

  /** `ref()`/`unref()` of a socket: whether its waiters keep the process alive. */
  setRef(registration: Registration, ref: boolean): void {
    if (registration.ref === ref || registration.closed) {
      registration.ref = ref;
      return;
    }
    registration.ref = ref;
    const count = registration.readers.length + registration.writers.length;
    this.#refWaiting += ref ? count : -count;
    this.#updateWaitRef();
  }

  #updateWaitRef(): void {
    // With no waiter at all the wait is being woken to end, and idle() may await that: keep it ref'd.
    const ref = this.#refWaiting > 0 || this.#waiting === 0;
    if (this.#waitOp && ref !== this.#waitRefd) setOpRef(this.#waitOp, ref);
    this.#waitRefd = ref;
  }

  /**
   * Let the operations this process just made ready run before going on. A client that connects
   * to a server in the same process and closes at once, over and over, never yields to the event
   * loop; without this the server would only see its connections in bursts, and those still in
   * the backlog when it closes would be lost. With a wait blocked on a worker thread, the eventfd
   * ends it (it returns every ready event at once); otherwise a zero-timeout drain does the job.
   */
  async settle(): Promise<void> {
    if (this.#epfd < 0 || this.#waiting === 0) return;
    if (this.#blocked) {
      this.#wake();
      await this.#blocked;
      return;
    }
    const count = libc().epoll_wait(this.#epfd, this.#drainEvents, BATCH, 0);
    if (count > 0) this.#dispatch(this.#drainView, count);
  }

  /** Resolves once no `epoll_wait` is blocked on a worker thread, or at once if others still wait. */
  async idle(): Promise<void> {
    while (this.#blocked && this.#waiting === 0) await this.#blocked;
  }

  #wait(registration: Registration, queue: (() => void)[], signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (registration.closed) return Promise.resolve();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const stop = onAbort(signal, () => {
      const at = queue.indexOf(wake);
      if (at < 0) return; // already woken
      queue.splice(at, 1);
      this.#waiting--;
      if (registration.ref) this.#refWaiting--;
      this.#updateWaitRef();
      // The last waiter gone: end the blocked epoll_wait, as unregister() does.
      if (this.#waiting === 0 && this.#blocked) this.#wake();
      reject(signal!.reason);
    });
    const wake = () => {
      stop();
      resolve();
    };
    queue.push(wake);
    this.#waiting++;
    if (registration.ref) this.#refWaiting++;
    this.#updateWaitRef();
    this.#deferTurns = 0;
    this.#schedule();
    return promise;
  }

  #wakeAll(registration: Registration, queue: (() => void)[]): void {
    if (queue.length === 0) return;
    const waiters = queue.splice(0);
    this.#waiting -= waiters.length;
    if (registration.ref) {
      this.#refWaiting -= waiters.length;
      this.#updateWaitRef();
    }
    for (const wake of waiters) wake();
  }

  #schedule(): void {
    if (this.#blocked || this.#scheduled) return;
    this.#scheduled = true;
    // After the current synchronous work, so every operation started in it has tried first.
    queueMicrotask(() => this.#pump());
  }

  #pump(): void {
    this.#scheduled = false;
    if (this.#blocked || this.#yielding || this.#waiting === 0 || this.#epfd < 0) return;
    if (this.#deferTurns > 0) {
      this.#deferTurns--;
      this.#schedule();
      return;
    }
    if (this.#spins < MAX_SPINS) {
      const count = libc().epoll_wait(this.#epfd, this.#drainEvents, BATCH, 0);
      if (count > 0) {
        this.#spins++;
        this.#dispatch(this.#drainView, count);
        this.#deferTurns = DEFER_TURNS;
        this.#schedule();
        return;
      }
    }
    this.#spins = 0;
    if (this.#jsWaitSupported && this.#refWaiting > 0) {
      if (this.#jsWaitSkip === 0) {
        this.#yielding = true;
        setImmediate(() => this.#jsWait());
        return;
      }
      this.#jsWaitSkip--;
    }
    this.#blocked = this.#block();
  }

  /** The JS thread's own bounded wait (after a turn of the event loop); then the worker's. */
  #jsWait(): void {
    this.#yielding = false;
    if (this.#blocked || this.#waiting === 0 || this.#epfd < 0) return;
    const count = Number(
      libc().epoll_pwait2(
        SYS_EPOLL_PWAIT2,
        this.#epfd,
        this.#drainEvents,
        BATCH,
        this.#jsWaitTimeout,
        null,
        0n,
      ),
    );
    if (count > 0) {
      this.#jsWaitBackoff = 1;
      this.#dispatch(this.#drainView, count);
      this.#deferTurns = DEFER_TURNS;
      this.#schedule();
      return;
    }
    if (count === 0) {
      this.#jsWaitSkip = this.#jsWaitBackoff;
      this.#jsWaitBackoff = Math.min(this.#jsWaitBackoff * 2, MAX_JS_WAIT_BACKOFF);
    } else if (errno() !== EINTR) {
      // ENOSYS before Linux 5.11, EPERM where a seccomp filter predates the call (older container
      // runtimes): the worker thread's wait alone, as before.
      this.#jsWaitSupported = false;
    }
    // Timed out (or EINTR): the worker thread takes over the wait.
    this.#blocked = this.#block();
  }

  async #block(): Promise<void> {
    const op = libc().epoll_wait_blocking(this.#epfd, this.#blockEvents, BATCH, -1);
    this.#waitOp = op;
    // A new op is ref'd: unref it at once when only unref'd sockets wait.
    if (!this.#waitRefd) setOpRef(op, false);
    const count = await op;
    this.#waitOp = null;
    this.#blocked = null;
    // -1 is EINTR (a signal hit the worker thread): simply wait again.
    if (count > 0) {
      this.#dispatch(this.#blockView, count);
      this.#deferTurns = DEFER_TURNS;
    }
    this.#closeIfUnused();
    this.#schedule();
  }

  #dispatch(view: DataView, count: number): void {
    for (let i = 0; i < count; i++) {
      const offset = i * EPOLL_EVENT_SIZE;
      const events = view.getUint32(offset, true);
      const token = view.getUint32(offset + EPOLL_DATA_OFFSET, true);
      if (token === WAKE_TOKEN) {
        libc().read(this.#wakefd, this.#counter, 8n);
        continue;
      }
      const registration = this.#sockets.get(token);
      if (!registration) continue;
      if (events & READ_EVENTS) this.#wakeAll(registration, registration.readers);
      if (events & WRITE_EVENTS) this.#wakeAll(registration, registration.writers);
    }
  }

  #closeIfUnused(): void {
    if (this.#sockets.size > 0 || this.#blocked || this.#epfd < 0) return;
    const c = libc();
    c.close(this.#wakefd);
    c.close(this.#epfd);
    this.#wakefd = -1;
    this.#epfd = -1;
  }
}

/** The process-wide poller. */
export const poller = new Poller();
