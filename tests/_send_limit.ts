/**
 * The largest message mode message this process can send, derived from the real limit rather than
 * from the machine the tests were written on.
 *
 * On Linux a `SOCK_SEQPACKET` message must fit the sender's `SO_SNDBUF` whole. namedpipe raises that
 * to fit `maxMessageSize`, but the kernel caps it at `net.core.wmem_max` (and doubles it) unless the
 * process holds `CAP_NET_ADMIN` (`SO_SNDBUFFORCE`). A stock kernel's 212,992 therefore limits an
 * unprivileged sender to 425,952 bytes (`unix_dgram_sendmsg`: `len > sk_sndbuf - 32` is `EMSGSIZE`),
 * and namedpipe rejects a larger message with a `RangeError`. Windows pipes have no such limit.
 *
 * @module
 */

/** Bytes the kernel keeps of `SO_SNDBUF` beside a datagram's payload. */
const DATAGRAM_OVERHEAD = 32;

/** Whether this process may use `SO_SNDBUFFORCE` (`CAP_NET_ADMIN`, bit 12 of `CapEff`). */
export function hasNetAdmin(): boolean {
  const status = Deno.readTextFileSync("/proc/self/status");
  const hex = status.match(/^CapEff:\s*([0-9a-f]+)$/m)?.[1];
  return hex !== undefined && (BigInt(`0x${hex}`) & (1n << 12n)) !== 0n;
}

/** `net.core.wmem_max`: the most `SO_SNDBUF` an unprivileged process may ask for. */
export function wmemMax(): number {
  return Number(Deno.readTextFileSync("/proc/sys/net/core/wmem_max").trim());
}

/** `net.core.wmem_default`: a new socket's `SO_SNDBUF`. */
export function wmemDefault(): number {
  return Number(Deno.readTextFileSync("/proc/sys/net/core/wmem_default").trim());
}

/**
 * The largest message a message-mode connection opened with these options can send here;
 * `Infinity` where the platform sets no such limit (Windows).
 */
export function largestMessage(maxMessageSize = 1024 * 1024, bufferSize = 0): number {
  if (Deno.build.os !== "linux") return Infinity;
  // What pipe/posix/socket.ts asks for: room for maxMessageSize, or bufferSize if larger. It
  // leaves a default buffer that is already large enough alone.
  const asked = Math.max(bufferSize, maxMessageSize + 4096);
  // SO_SNDBUF is capped at wmem_max and doubled; only when that is still short of the request does
  // SO_SNDBUFFORCE (CAP_NET_ADMIN) get it all.
  const capped = 2 * Math.min(asked, wmemMax());
  let sendBuffer = capped;
  if (wmemDefault() >= asked + 4096) sendBuffer = wmemDefault();
  else if (capped < asked && hasNetAdmin()) sendBuffer = 2 * asked;
  return sendBuffer - DATAGRAM_OVERHEAD;
}

/** `size`, or the largest message that fits here when that is smaller. */
export function fitting(size: number, maxMessageSize?: number): number {
  return Math.min(size, largestMessage(maxMessageSize));
}
