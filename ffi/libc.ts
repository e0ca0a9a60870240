/**
 * libc (`libc.so.6`) for the POSIX backend: one typed symbol table, the Linux constants it needs and
 * `errno`.
 *
 * The library is opened on first use, never at import, so importing this module on Windows or macOS
 * costs nothing. Only Linux is supported: the engine needs `epoll`, `eventfd` and `accept4`.
 *
 * `errno` is thread-local. Every call that can fail is a synchronous call on the JS thread, and
 * {@linkcode errno} reads it on that same thread right after the call. The only `nonblocking` call is
 * `epoll_wait`, whose failure (`EINTR`) is simply retried.
 *
 * @module
 */

/**
 * Every symbol exists in glibc 2.28 (the oldest Deno runs on, e.g. RHEL 8) or older: `Deno.dlopen`
 * fails the whole table when one is missing. A symbol newer than glibc 2.2.5 names its version.
 */
const symbols = {
  socket: {
    parameters: [
      "i32", // int domain
      "i32", // int type
      "i32", // int protocol
    ],
    result: "i32", // int fd
  },
  bind: {
    parameters: [
      "i32", // int sockfd
      "buffer", // const struct sockaddr *addr
      "u32", // socklen_t addrlen
    ],
    result: "i32",
  },
  listen: {
    parameters: [
      "i32", // int sockfd
      "i32", // int backlog
    ],
    result: "i32",
  },
  /** glibc 2.10. */
  accept4: {
    parameters: [
      "i32", // int sockfd
      "pointer", // struct sockaddr *addr (NULL)
      "pointer", // socklen_t *addrlen (NULL)
      "i32", // int flags
    ],
    result: "i32", // int fd
  },
  connect: {
    parameters: [
      "i32", // int sockfd
      "buffer", // const struct sockaddr *addr
      "u32", // socklen_t addrlen
    ],
    result: "i32",
  },
  recv: {
    parameters: [
      "i32", // int sockfd
      "buffer", // void *buf
      "usize", // size_t len
      "i32", // int flags
    ],
    result: "isize", // ssize_t
  },
  recvmsg: {
    parameters: [
      "i32", // int sockfd
      "buffer", // struct msghdr *msg
      "i32", // int flags
    ],
    result: "isize", // ssize_t
  },
  send: {
    parameters: [
      "i32", // int sockfd
      "buffer", // const void *buf
      "usize", // size_t len
      "i32", // int flags
    ],
    result: "isize", // ssize_t
  },
  setsockopt: {
    parameters: [
      "i32", // int sockfd
      "i32", // int level
      "i32", // int optname
      "buffer", // const void *optval
      "u32", // socklen_t optlen
    ],
    result: "i32",
  },
  getsockopt: {
    parameters: [
      "i32", // int sockfd
      "i32", // int level
      "i32", // int optname
      "buffer", // void *optval
      "buffer", // socklen_t *optlen
    ],
    result: "i32",
  },
  shutdown: {
    parameters: [
      "i32", // int sockfd
      "i32", // int how (SHUT_WR)
    ],
    result: "i32",
  },
  close: {
    parameters: [
      "i32", // int fd
    ],
    result: "i32",
  },
  read: {
    parameters: [
      "i32", // int fd
      "buffer", // void *buf
      "usize", // size_t count
    ],
    result: "isize", // ssize_t
  },
  write: {
    parameters: [
      "i32", // int fd
      "buffer", // const void *buf
      "usize", // size_t count
    ],
    result: "isize", // ssize_t
  },
  unlink: {
    parameters: [
      "buffer", // const char *pathname
    ],
    result: "i32",
  },
  link: {
    parameters: [
      "buffer", // const char *oldpath
      "buffer", // const char *newpath
    ],
    result: "i32",
  },
  chmod: {
    parameters: [
      "buffer", // const char *pathname
      "u32", // mode_t mode
    ],
    result: "i32",
  },
  /** glibc 2.28. Not `lstat`/`fstatat`: before glibc 2.33 those were not exported from libc.so.6. */
  statx: {
    parameters: [
      "i32", // int dirfd (AT_FDCWD)
      "buffer", // const char *pathname
      "i32", // int flags (AT_SYMLINK_NOFOLLOW)
      "u32", // unsigned int mask
      "buffer", // struct statx *statxbuf
    ],
    result: "i32",
  },
  open: {
    parameters: [
      "buffer", // const char *pathname
      "i32", // int flags
      "u32", // mode_t mode (used with O_CREAT)
    ],
    result: "i32", // int fd
  },
  flock: {
    parameters: [
      "i32", // int fd
      "i32", // int operation (LOCK_EX | LOCK_NB)
    ],
    result: "i32",
  },
  opendir: {
    parameters: [
      "buffer", // const char *name
    ],
    result: "pointer", // DIR * (NULL on failure)
  },
  readdir: {
    parameters: [
      "pointer", // DIR *dirp
    ],
    result: "pointer", // struct dirent * (NULL at the end)
  },
  closedir: {
    parameters: [
      "pointer", // DIR *dirp
    ],
    result: "i32",
  },
  chown: {
    parameters: [
      "buffer", // const char *pathname
      "u32", // uid_t owner ((uid_t)-1: unchanged)
      "u32", // gid_t group
    ],
    result: "i32",
  },
  geteuid: {
    parameters: [],
    result: "u32", // uid_t
  },
  getpwuid_r: {
    parameters: [
      "u32", // uid_t uid
      "buffer", // struct passwd *pwd
      "buffer", // char *buf
      "usize", // size_t buflen
      "buffer", // struct passwd **result
    ],
    result: "i32", // int (an errno value, 0 also when not found)
  },
  getpwnam_r: {
    parameters: [
      "buffer", // const char *name
      "buffer", // struct passwd *pwd
      "buffer", // char *buf
      "usize", // size_t buflen
      "buffer", // struct passwd **result
    ],
    result: "i32", // int (an errno value, 0 also when not found)
  },
  getgrnam_r: {
    parameters: [
      "buffer", // const char *name
      "buffer", // struct group *grp
      "buffer", // char *buf
      "usize", // size_t buflen
      "buffer", // struct group **result
    ],
    result: "i32", // int (an errno value, 0 also when not found)
  },
  getgrgid_r: {
    parameters: [
      "u32", // gid_t gid
      "buffer", // struct group *grp
      "buffer", // char *buf
      "usize", // size_t buflen
      "buffer", // struct group **result
    ],
    result: "i32", // int (an errno value, 0 also when not found)
  },
  getgrouplist: {
    parameters: [
      "buffer", // const char *user
      "u32", // gid_t group
      "buffer", // gid_t *groups
      "buffer", // int *ngroups
    ],
    result: "i32", // int (-1 when *ngroups was too small; it then holds the count)
  },
  mkdtemp: {
    parameters: [
      "buffer", // char *template (rewritten in place)
    ],
    result: "pointer", // char * (NULL on failure)
  },
  rmdir: {
    parameters: [
      "buffer", // const char *pathname
    ],
    result: "i32",
  },
  /** glibc 2.9. */
  epoll_create1: {
    parameters: [
      "i32", // int flags
    ],
    result: "i32", // int epfd
  },
  epoll_ctl: {
    parameters: [
      "i32", // int epfd
      "i32", // int op
      "i32", // int fd
      "buffer", // struct epoll_event *event
    ],
    result: "i32",
  },
  /** glibc 2.3.2. */
  epoll_wait: {
    parameters: [
      "i32", // int epfd
      "buffer", // struct epoll_event *events
      "i32", // int maxevents
      "i32", // int timeout (ms; 0 = poll)
    ],
    result: "i32", // int count
  },
  /** The same `epoll_wait` (glibc 2.3.2), run on a worker thread: the engine's one blocking wait. */
  epoll_wait_blocking: {
    name: "epoll_wait",
    parameters: [
      "i32", // int epfd
      "buffer", // struct epoll_event *events
      "i32", // int maxevents
      "i32", // int timeout (ms; -1 = forever)
    ],
    result: "i32", // int count
    nonblocking: true,
  },
  /**
   * `long syscall(long number, ...)` (glibc 2.2.5) for `epoll_pwait2` (Linux 5.11, number
   * {@linkcode SYS_EPOLL_PWAIT2} on every architecture; glibc wraps it only from 2.35): `epoll_wait`
   * with a `struct timespec` timeout, so the JS thread can wait a bounded number of microseconds.
   * `-1` with `ENOSYS` on older kernels, `EPERM` under a seccomp filter that predates it.
   */
  epoll_pwait2: {
    name: "syscall",
    parameters: [
      "i64", // long number (SYS_epoll_pwait2)
      "i32", // int epfd
      "buffer", // struct epoll_event *events
      "i32", // int maxevents
      "buffer", // const struct timespec *timeout
      "pointer", // const sigset_t *sigmask (NULL)
      "usize", // size_t sigsetsize
    ],
    result: "i64", // long count, or -1
  },
  /** glibc 2.7. */
  eventfd: {
    parameters: [
      "u32", // unsigned int initval
      "i32", // int flags
    ],
    result: "i32", // int fd
  },
  getenv: {
    parameters: [
      "buffer", // const char *name
    ],
    result: "pointer", // char * (NULL when unset)
  },
  __errno_location: {
    parameters: [],
    result: "pointer", // int * (this thread's errno)
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The symbol table itself, for the test that checks each symbol's glibc version. */
export const LIBC_SYMBOLS: typeof symbols = symbols;

/** The opened library's symbols. */
export type Libc = Deno.DynamicLibrary<typeof symbols>["symbols"];

let lib: Deno.DynamicLibrary<typeof symbols> | null = null;
let errnoView: Deno.UnsafePointerView | null = null;

/**
 * The libc symbols, opening `libc.so.6` on first use.
 * @throws {Deno.errors.NotSupported} on a platform other than Linux, or when libc cannot be opened
 */
export function libc(): Libc {
  if (lib) return lib.symbols;
  if (Deno.build.os !== "linux") {
    throw new Deno.errors.NotSupported(
      `Cannot use libc sockets on "${Deno.build.os}": the POSIX engine needs Linux (epoll)`,
    );
  }
  try {
    lib = Deno.dlopen("libc.so.6", symbols);
  } catch (cause) {
    throw new Deno.errors.NotSupported(`Cannot open "libc.so.6": ${(cause as Error).message}`, { cause });
  }
  return lib.symbols;
}

/** This thread's `errno`: call right after the failing synchronous call, before any other. */
export function errno(): number {
  if (!errnoView) {
    // errno lives at a fixed address per thread, and this isolate always runs on one thread.
    const pointer = libc().__errno_location();
    if (!pointer) return 0;
    errnoView = new Deno.UnsafePointerView(pointer);
  }
  return errnoView.getInt32();
}

/** The process environment's `name` (libc `getenv`), or undefined when unset. */
export function getenv(name: string): string | undefined {
  const value = libc().getenv(cString(name));
  return value === null ? undefined : Deno.UnsafePointerView.getCString(value);
}

/** A NUL-terminated copy of `text` for a `const char *` parameter. */
export function cString(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`${text}\0`);
}

// Constants (Linux, all architectures Deno ships for).
export const AF_UNIX = 1;
/** Netlink, for `sock_diag`: which Unix sockets listen, without connecting to them. */
export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const NETLINK_SOCK_DIAG = 4;
export const SOCK_STREAM = 1;
export const SOCK_SEQPACKET = 5;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;

export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_PASSCRED = 16;
export const SO_PEERCRED = 17;
export const SO_SNDBUFFORCE = 32;
export const SCM_CREDENTIALS = 2;

/** `shutdown(fd, SHUT_WR)`: the peer reads end of stream, and may still write back. */
export const SHUT_WR = 1;
/** `shutdown(fd, SHUT_RDWR)`: both directions end, the descriptor stays open. */
export const SHUT_RDWR = 2;

export const MSG_PEEK = 0x2;
export const MSG_CTRUNC = 0x8;
export const MSG_TRUNC = 0x20;
export const MSG_NOSIGNAL = 0x4000;
export const MSG_CMSG_CLOEXEC = 0x40000000;

export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x1;
export const EPOLLOUT = 0x4;
export const EPOLLERR = 0x8;
export const EPOLLHUP = 0x10;
export const EPOLLRDHUP = 0x2000;
export const EPOLLET = 1 << 31;

export const O_RDONLY = 0;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
/** `O_PATH`: a handle on a directory to name it through `/proc/self/fd`, not to read it. */
export const O_PATH = 0o10000000;
/** `O_NOFOLLOW` differs between x86_64 and the generic (aarch64) numbering. */
export const O_NOFOLLOW = Deno.build.arch === "x86_64" ? 0o400000 : 0o100000;

export const LOCK_EX = 2;
export const LOCK_NB = 4;

/** `struct dirent` (64-bit Linux): where `d_name` starts. */
export const DIRENT_NAME_OFFSET = 19;

export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;

export const ENOENT = 2;
/** `epoll_pwait2`'s number in the generic syscall table, shared by x86_64 and aarch64. */
export const SYS_EPOLL_PWAIT2 = 441n;
export const EINTR = 4;
export const ENOMEM = 12;
export const EAGAIN = 11;
export const EWOULDBLOCK = 11;
export const EACCES = 13;
export const EEXIST = 17;
export const EINVAL = 22;
export const ENFILE = 23;
export const EMFILE = 24;
export const EPIPE = 32;
export const ENAMETOOLONG = 36;
export const EMSGSIZE = 90;
export const EPROTOTYPE = 91;
export const ECONNABORTED = 103;
export const ECONNRESET = 104;
export const ENOBUFS = 105;
export const ENOTCONN = 107;
export const ECONNREFUSED = 111;
export const ERANGE = 34;

/** `struct passwd`: where `pw_name`, `pw_uid` and `pw_gid` sit (LP64). */
export const PASSWD = { size: 48, name: 0, uid: 16, gid: 20 };
/** `struct group`: where `gr_name` and `gr_gid` sit (LP64). */
export const GROUP = { size: 32, name: 0, gid: 16 };

/** `struct epoll_event` is packed on x86_64 (12 bytes) and naturally aligned elsewhere (16). */
export const EPOLL_EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
/** Offset of `epoll_data_t data` in `struct epoll_event`. */
export const EPOLL_DATA_OFFSET = Deno.build.arch === "x86_64" ? 4 : 8;

/** `statx(AT_FDCWD, path, …)`: a path relative to the working directory. */
export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
/** `statx` with an empty path describes the descriptor itself (`fstat`). */
export const AT_EMPTY_PATH = 0x1000;
/** `statx` mask: type, mode, uid, inode and modification time (the `STATX_BASIC_STATS` we read). */
export const STATX_BASIC_STATS = 0x7ff;
/** `struct statx`, the same on every architecture: its size and the offsets of what we read. */
export const STATX = { size: 256, uid: 20, mode: 28, ino: 32, mtimeSec: 112 };
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
