/**
 * Unix domain socket calls over libc, shared by the listener, the client and connections: socket
 * creation and options, addresses, message receive with end-of-stream detection, and `lstat` (as `statx`).
 *
 * @module
 */
import {
  AF_UNIX,
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  EAGAIN,
  errno,
  libc,
  MSG_CMSG_CLOEXEC,
  MSG_NOSIGNAL,
  MSG_PEEK,
  MSG_TRUNC,
  SCM_CREDENTIALS,
  SHUT_RDWR,
  SHUT_WR,
  SO_PASSCRED,
  SO_RCVBUF,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_SEQPACKET,
  SOCK_STREAM,
  SOL_SOCKET,
  STATX,
  STATX_BASIC_STATS,
} from "../../ffi/libc.ts";
import { errnoError, pipeError } from "../errors.ts";
import type { PipeMode } from "../types.ts";

/** `sun_path` holds 108 bytes including the terminating NUL. */
export const MAX_PATH_BYTES = 107;
/** Up to this `maxMessageSize`, one buffer of that size takes any message in one call. */
const EAGER_RECEIVE_LIMIT = 4 * 1024 * 1024;
/** The kernel takes at most `INT_MAX / 2` for `SO_SNDBUF`. */
const MAX_SNDBUF = 0x3fff_ffff;
/** Room the kernel keeps in `SO_SNDBUF` beside a datagram's payload. */
const SNDBUF_SLACK = 4096;

/** `struct sockaddr_un` for `path`, and its length for `bind`/`connect`. */
export function socketAddress(path: string, action: string): [Uint8Array<ArrayBuffer>, number] {
  const bytes = new TextEncoder().encode(path);
  if (bytes.length > MAX_PATH_BYTES) {
    throw pipeError(
      TypeError,
      action,
      path,
      `socket path too long (${bytes.length} > ${MAX_PATH_BYTES} bytes)`,
    );
  }
  const address = new Uint8Array(110);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(bytes, 2);
  return [address, 2 + bytes.length + 1];
}

/** A new non-blocking, close-on-exec Unix socket of the pipe's mode. */
export function openSocket(mode: PipeMode, action: string, path: string): number {
  const type = mode === "message" ? SOCK_SEQPACKET : SOCK_STREAM;
  const fd = libc().socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw errnoError(errno(), action, path);
  return fd;
}

/**
 * TEST ONLY, never set in use: with `NAMEDPIPE_TEST_ONLY_LEAK_FDS=1` in the environment (read once,
 * and only when env access is already granted) {@linkcode closeFd} ends the socket with `shutdown`
 * but never calls `close(2)`. Peers and the engine's bookkeeping see a normal close; only an OS-level
 * count (`/proc/self/fd`) sees the leak, which is what the leak tests prove they catch.
 */
const TEST_ONLY_LEAK_FDS =
  Deno.permissions.querySync({ name: "env", variable: "NAMEDPIPE_TEST_ONLY_LEAK_FDS" })
      .state === "granted" && Deno.env.get("NAMEDPIPE_TEST_ONLY_LEAK_FDS") === "1";

/** Close a descriptor, ignoring the result: used on error paths and in `close()`. */
export function closeFd(fd: number): void {
  if (TEST_ONLY_LEAK_FDS) libc().shutdown(fd, SHUT_RDWR);
  else libc().close(fd);
}

const intBuffer = new Uint8Array(4);
const intView = new DataView(intBuffer.buffer);
const lengthBuffer = new Uint8Array(4);
const lengthView = new DataView(lengthBuffer.buffer);

function setInt(fd: number, name: number, value: number): number {
  intView.setInt32(0, value, true);
  return libc().setsockopt(fd, SOL_SOCKET, name, intBuffer, 4) < 0 ? errno() : 0;
}

function getInt(fd: number, name: number): number {
  lengthView.setUint32(0, 4, true);
  return libc().getsockopt(fd, SOL_SOCKET, name, intBuffer, lengthBuffer) < 0
    ? -1
    : intView.getInt32(0, true);
}

/**
 * What a listener learnt from the first socket it accepted: every accepted socket starts with the
 * same defaults, so the send-buffer check (one `getsockopt`) is done once, not per connection.
 */
export interface AcceptedSetup {
  /**
   * What the first accepted socket's send buffer needed: nothing (its default fits the largest
   * message), `SO_SNDBUF`, or `SO_SNDBUFFORCE` (beyond `net.core.wmem_max`).
   */
  sendBuffer?: "fits" | typeof SO_SNDBUF | typeof SO_SNDBUFFORCE;
}

/**
 * Prepare a socket for a connection: credentials on every message (message mode: tells an empty
 * message from end of stream), and a send buffer that fits the largest message. `bufferSize` can
 * raise the socket buffers, never shrink them.
 * A `SOCK_SEQPACKET` message must fit the sender's `SO_SNDBUF` whole (`EMSGSIZE` otherwise); the
 * kernel caps the value at `net.core.wmem_max` unless the process may use `SO_SNDBUFFORCE`.
 * `accepted`: the socket came from `accept4` on a listener configured by this function, so it
 * inherited `SO_PASSCRED` (the kernel copies it from the listening socket), and the listener's
 * record saves the send-buffer check after the first connection.
 */
export function configureSocket(
  fd: number,
  mode: PipeMode,
  maxMessageSize: number,
  bufferSize: number | undefined,
  path: string,
  action: string,
  accepted?: AcceptedSetup,
): void {
  if (mode === "message") {
    if (!accepted) {
      const code = setInt(fd, SO_PASSCRED, 1);
      if (code) throw errnoError(code, action, path);
    }
    const wanted = Math.min(Math.max(bufferSize ?? 0, maxMessageSize + SNDBUF_SLACK), MAX_SNDBUF);
    const learnt = accepted?.sendBuffer;
    if (learnt === "fits") return;
    if (learnt !== undefined) {
      setInt(fd, learnt, wanted);
      return;
    }
    // The kernel doubles the value it is given and keeps half for bookkeeping.
    let needed: AcceptedSetup["sendBuffer"] = "fits";
    if (getInt(fd, SO_SNDBUF) < wanted + SNDBUF_SLACK) {
      needed = SO_SNDBUF;
      setInt(fd, SO_SNDBUF, wanted);
      // Without the privilege for SO_SNDBUFFORCE, the capped SO_SNDBUF is the best there is.
      if (getInt(fd, SO_SNDBUF) < wanted && setInt(fd, SO_SNDBUFFORCE, wanted) === 0) {
        needed = SO_SNDBUFFORCE;
      }
    }
    if (accepted) accepted.sendBuffer = needed;
  } else if (bufferSize !== undefined) {
    // A hint that only raises the defaults: Windows' 4096-byte default would starve a stream here.
    const wanted = Math.min(bufferSize, MAX_SNDBUF);
    if (getInt(fd, SO_SNDBUF) < wanted) setInt(fd, SO_SNDBUF, wanted);
    if (getInt(fd, SO_RCVBUF) < wanted) setInt(fd, SO_RCVBUF, wanted);
  }
}

/** The socket's `SO_SNDBUF` as the kernel reports it (already doubled), or -1. */
export function sendBufferSize(fd: number): number {
  return getInt(fd, SO_SNDBUF);
}

/** What {@linkcode receiveMessage} found. */
export type Received =
  | { kind: "message"; data: Uint8Array<ArrayBuffer> }
  | { kind: "end" }
  | { kind: "again" }
  | { kind: "too large"; size: number }
  | { kind: "error"; errno: number };

// One receive buffer for the whole process: receives are synchronous calls on the JS thread.
// Buffers whose address is stored in another buffer get their own ArrayBuffer: V8 keeps small
// typed arrays inside its heap, where the garbage collector may move them.
let scratch = new Uint8Array(0);
const header = new Uint8Array(new ArrayBuffer(56)); // struct msghdr
const headerView = new DataView(header.buffer);
const vector = new Uint8Array(new ArrayBuffer(32)); // struct iovec[2]
const vectorView = new DataView(vector.buffer);
// CMSG_SPACE(sizeof(struct ucred)): room for the credentials and not one descriptor more.
const control = new Uint8Array(new ArrayBuffer(32));
const controlView = new DataView(control.buffer);

function address(buffer: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

function growScratch(size: number): void {
  scratch = new Uint8Array(new ArrayBuffer(size));
  vectorView.setBigUint64(0, address(scratch), true); // iov[0].iov_base
  vectorView.setBigUint64(16, address(scratch), true); // iov[1].iov_base (see receiveDirect)
  headerView.setBigUint64(0, 0n, true); // msg_name
  headerView.setBigUint64(16, address(vector), true); // msg_iov
  headerView.setBigUint64(32, address(control), true); // msg_control
}

/**
 * Receive one whole `SOCK_SEQPACKET` message of at most `maxSize` bytes.
 *
 * `recv` returns 0 both for an empty message and at end of stream. With `SO_PASSCRED` on, every
 * real message carries `SCM_CREDENTIALS` and end of stream carries nothing, which tells them apart.
 * `MSG_TRUNC` makes the call return the real length, so an oversized message is seen (and lost).
 * The control buffer has room for credentials only: descriptors a hostile peer passes with
 * `SCM_RIGHTS` do not fit, and the kernel closes them instead of installing them here.
 * @param fresh a new array of the size expected ({@linkcode directArray}): a message of that size is
 *   received straight into it and returned as is (it then belongs to the caller's caller).
 */
export function receiveMessage(fd: number, maxSize: number, fresh?: Uint8Array<ArrayBuffer>): Received {
  if (fresh) return receiveDirect(fd, maxSize, fresh, false);
  let room = maxSize;
  if (maxSize > EAGER_RECEIVE_LIMIT) {
    // A huge limit: learn this message's size first rather than keep a buffer of the limit's size.
    const size = receiveInto(fd, 0, MSG_PEEK | MSG_TRUNC);
    if (size < 0) return failed(-size);
    // Too large: receive it into no room at all (MSG_TRUNC discards it and still tells its size).
    room = size > maxSize ? 0 : size;
  }
  const n = receiveInto(fd, room, MSG_TRUNC | MSG_CMSG_CLOEXEC);
  if (n < 0) return failed(-n);
  if (n > maxSize) return { kind: "too large", size: n };
  if (n === 0) return emptyOrEnd();
  return { kind: "message", data: scratch.slice(0, n) };
}

/** A 0-byte receive: an empty message carries credentials, end of stream carries nothing. */
function emptyOrEnd(): Received {
  const controlLength = Number(headerView.getBigUint64(40, true));
  const hasCredentials = controlLength >= 16 && controlView.getInt32(8, true) === SOL_SOCKET &&
    controlView.getInt32(12, true) === SCM_CREDENTIALS;
  return hasCredentials ? { kind: "message", data: new Uint8Array(0) } : { kind: "end" };
}

/**
 * Messages at least this large, when the caller expects their size, are received straight into
 * the array handed to the caller instead of into the scratch buffer and then copied: for 64 KiB
 * messages the copy (and the larger allocation of `slice`) was a measurable share of each round trip.
 * `read(p)` receives straight into `p` from this size on; an array this large is never one of V8's
 * small on-heap arrays, which a garbage collection could move while its address is in the iovec.
 */
export const DIRECT_MIN = 4096;

/**
 * A new array for a message expected to be `expect` bytes long, for {@linkcode receiveMessage} to
 * receive straight into, or undefined where that does not pay (small, or a huge `maxSize`).
 */
export function directArray(maxSize: number, expect: number): Uint8Array<ArrayBuffer> | undefined {
  return expect >= DIRECT_MIN && expect <= maxSize && maxSize <= EAGER_RECEIVE_LIMIT
    ? new Uint8Array(new ArrayBuffer(expect))
    : undefined;
}

/**
 * {@linkcode receiveMessage} into a buffer the caller reuses (the relay's copy thread, `read(p)`): a message
 * that fits is returned as a view of `into`, valid until the next receive into it, with no
 * allocation; a longer one (up to `maxSize`) still arrives whole, in a new array.
 */
export function receiveMessageInto(fd: number, maxSize: number, into: Uint8Array<ArrayBuffer>): Received {
  if (into.length < 1 || into.length > maxSize || maxSize > EAGER_RECEIVE_LIMIT) {
    return receiveMessage(fd, maxSize);
  }
  return receiveDirect(fd, maxSize, into, true);
}

/**
 * {@linkcode receiveMessage} for a message expected to be `data.length` bytes: `recvmsg` scatters
 * into `data` first and the scratch buffer after it, so a message of that size is returned with no
 * copy, and any other size still arrives whole (and is copied once). With `view`, a shorter message
 * is returned as a view of `data` rather than a copy.
 */
function receiveDirect(fd: number, maxSize: number, data: Uint8Array<ArrayBuffer>, view: boolean): Received {
  const expect = data.length;
  const rest = maxSize - expect;
  if (scratch.length < Math.max(rest, 1)) growScratch(Math.max(rest, 1));
  vectorView.setBigUint64(0, address(data), true); // iov[0].iov_base
  vectorView.setBigUint64(8, BigInt(expect), true); // iov[0].iov_len
  vectorView.setBigUint64(24, BigInt(rest), true); // iov[1].iov_len
  headerView.setBigUint64(24, 2n, true); // msg_iovlen
  headerView.setBigUint64(40, BigInt(control.length), true); // msg_controllen
  headerView.setInt32(48, 0, true); // msg_flags
  const n = Number(libc().recvmsg(fd, header, MSG_TRUNC | MSG_CMSG_CLOEXEC));
  const code = n < 0 ? errno() : 0;
  // Back to the one-vector layout receiveInto relies on.
  vectorView.setBigUint64(0, address(scratch), true);
  if (n < 0) return failed(code);
  if (n > maxSize) return { kind: "too large", size: n };
  if (n === 0) return emptyOrEnd();
  if (n === expect) return { kind: "message", data };
  if (n < expect) return { kind: "message", data: view ? data.subarray(0, n) : data.slice(0, n) };
  const whole = new Uint8Array(new ArrayBuffer(n));
  whole.set(data);
  whole.set(scratch.subarray(0, n - expect), expect);
  return { kind: "message", data: whole };
}

/** `recvmsg` of up to `room` bytes into the scratch buffer: the message's length, or `-errno`. */
function receiveInto(fd: number, room: number, flags: number): number {
  if (scratch.length < Math.max(room, 1)) growScratch(Math.max(room, 1));
  vectorView.setBigUint64(8, BigInt(room), true); // iov_len
  headerView.setBigUint64(24, 1n, true); // msg_iovlen
  headerView.setBigUint64(40, BigInt(control.length), true); // msg_controllen
  headerView.setInt32(48, 0, true); // msg_flags
  const n = Number(libc().recvmsg(fd, header, flags));
  return n < 0 ? -errno() : n;
}

function failed(code: number): Received {
  return code === EAGAIN ? { kind: "again" } : { kind: "error", errno: code };
}

/** `recv` into `buffer`: bytes read, 0 at end of stream, or `-errno`. */
export function receiveBytes(fd: number, buffer: Uint8Array): number {
  const n = Number(libc().recv(fd, buffer, BigInt(buffer.length), 0));
  return n < 0 ? -errno() : n;
}

/** `send` without `SIGPIPE`: bytes sent or `-errno`. */
export function sendBytes(fd: number, data: Uint8Array): number {
  const n = Number(libc().send(fd, data, BigInt(data.length), MSG_NOSIGNAL));
  return n < 0 ? -errno() : n;
}

/** `shutdown(SHUT_WR)`: the peer reads end of stream. 0 or the errno. */
export function shutdownWrite(fd: number): number {
  return libc().shutdown(fd, SHUT_WR) < 0 ? errno() : 0;
}

/** What {@linkcode statPath} reports about a file. */
export interface FileStatus {
  ino: bigint;
  /** Type and permission bits (`st_mode`). */
  mode: number;
  uid: number;
  /** Last modification, in seconds since the epoch. */
  mtime: number;
}

const statxBuffer = new Uint8Array(STATX.size);
const statxView = new DataView(statxBuffer.buffer);
const EMPTY_PATH = new Uint8Array(1);

/**
 * `lstat` through `statx` (glibc 2.28; `lstat` itself is exported only from 2.33): the inode, mode,
 * owner and modification time of `path` (a symbolic link is described, not followed), or the errno.
 * With a descriptor instead of a path, that open file (`fstat`).
 */
export function statPath(path: Uint8Array<ArrayBuffer> | number): FileStatus | number {
  const result = typeof path === "number"
    ? libc().statx(path, EMPTY_PATH, AT_EMPTY_PATH, STATX_BASIC_STATS, statxBuffer)
    : libc().statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, statxBuffer);
  if (result < 0) return errno();
  return {
    ino: statxView.getBigUint64(STATX.ino, true),
    mode: statxView.getUint16(STATX.mode, true),
    uid: statxView.getUint32(STATX.uid, true),
    mtime: Number(statxView.getBigInt64(STATX.mtimeSec, true)),
  };
}
