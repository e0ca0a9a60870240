/**
 * The public shapes of namedpipe, shared by the Windows (kernel32) and the POSIX (libc) backends.
 *
 * @module
 */

/**
 * How a pipe carries data.
 * - `"message"`: every write is one message and every read returns one whole message
 *   (Windows `PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE`; Linux `SOCK_SEQPACKET`).
 * - `"byte"`: a stream of bytes with no boundaries (`PIPE_TYPE_BYTE`; `SOCK_STREAM`).
 */
export type PipeMode = "message" | "byte";

/**
 * Who may open the pipe.
 * - `"user"` (default): the current user and SYSTEM only; network logons denied on Windows,
 *   socket mode 0600 in a 0700 directory on Linux.
 * - `"everyone"`: the seed sample's open pipe (NULL DACL on Windows, mode 0666 on Linux). Logged loudly.
 * - `{ sddl }`: an explicit Windows security descriptor in SDDL (Windows only).
 * - `{ allow, deny }`: a {@linkcode SecurityPreset}, the portable way to name who may connect.
 */
export type PipeSecurity = "user" | "everyone" | { sddl: string } | SecurityPreset;

/**
 * Who may open the pipe, by name: each entry is `"user"` (the current user), `"system"`,
 * `"administrators"`, `"authenticated-users"`, `"everyone"`, a SID (`"S-1-5-32-545"`) or an account
 * name (`"DOMAIN\\group"`, `"docker-users"`, resolved with `LookupAccountNameW`; on Linux a user or
 * group name). An unknown name is `Deno.errors.NotFound`.
 *
 * Windows: a protected DACL in canonical order — deny entries first (network logons are always
 * denied, then `deny`), then the allow entries. The current user owns the pipe and always keeps full
 * access, which the server needs to create its further instances; SYSTEM gets full access when
 * listed; every other principal gets read/write without the right to create instances (`0x12019B`),
 * so it may connect but never squat the name.
 *
 * Linux: the socket's mode and group — `"user"` is the owner's `rw`, `"everyone"` and
 * `"authenticated-users"` are `0666`, one group is the socket's group (chown) with `rw` (`0660`
 * with `"user"`); `"system"`/`"administrators"` are root, who needs no bits. What a mode cannot
 * say (another single user, two groups, a SID, a `deny` entry other than `"network"`) is
 * `Deno.errors.NotSupported`.
 */
export interface SecurityPreset {
  /** Who may connect. */
  allow: readonly string[];
  /** Who may not, whatever `allow` says (Windows: deny ACEs, placed first). */
  deny?: readonly string[];
}

/**
 * Decides whether a client may use the server, from its {@linkcode PeerIdentity}. Runs before
 * `accept()` sees the connection; `false`, a throw or a rejection refuses the client, which is closed
 * without a byte of reply (it reads end of stream) and logged as a warning. Keep it quick: on Linux
 * the next `accept()` waits for it.
 */
export type Authorize = (peer: PeerIdentity) => boolean | Promise<boolean>;

/**
 * The account on the other end of a connection.
 * - Windows: `sid` (`S-1-5-21-…`) and `name` (`DOMAIN\alice`, from `LookupAccountSidW`).
 * - POSIX: `uid`, `gid` and `name` (from `getpwuid_r`).
 */
export interface PeerUser {
  /** `DOMAIN\name` on Windows, the user name on POSIX; the SID or uid as text when no name is known. */
  readonly name: string;
  /** Windows: the account's SID as a string. */
  readonly sid?: string;
  /** POSIX: the user id. */
  readonly uid?: number;
  /** POSIX: the primary group id. */
  readonly gid?: number;
}

/** A group the peer's account belongs to: a SID on Windows, a group id on POSIX. */
export interface PeerGroup {
  /** Windows: the group's SID. */
  readonly sid?: string;
  /** POSIX: the group id. */
  readonly gid?: number;
}

/**
 * A token's mandatory integrity level (Windows): the RID of its `S-1-16-…` label, named; `"unknown"`
 * for a RID in between.
 */
export type IntegrityLevel =
  | "untrusted"
  | "low"
  | "medium"
  | "medium-plus"
  | "high"
  | "system"
  | "protected"
  | "unknown";

/**
 * Who is on the other end of a connection, read once by the operating system's account, not by
 * anything the peer says.
 *
 * On the server side it describes the client: Windows reads the client's token
 * (`ImpersonateNamedPipeClient` → `OpenThreadToken` → `GetTokenInformation` → `RevertToSelf`, all on
 * the JS thread), the context the named-pipe file system captured when the client opened the pipe;
 * Linux reads `SO_PEERCRED` (the credentials the client had when it called `connect`). Both are read
 * on first use of `conn.peer` (at once when the listener has `authorize`). On the client side it
 * describes the server: Windows gives the server's pid and session and the pipe's owner (the account
 * that created the pipe, from `GetSecurityInfo`); Linux gives `SO_PEERCRED` of the listening socket's
 * creator. It never changes afterwards.
 */
export interface PeerIdentity {
  /** Process id (`GetNamedPipeClientProcessId` / `GetNamedPipeServerProcessId` / `SO_PEERCRED`); 0 if unknown. */
  readonly pid: number;
  /** The peer's account (client side on Windows: the pipe's owner). */
  readonly user: PeerUser;
  /**
   * Groups of the account, for authorization: Windows server side, the enabled groups of the
   * client's token (deny-only groups left out); POSIX, the primary and supplementary groups of the
   * uid (from the group database, `getgrouplist`). Empty where unknown (Windows client side).
   */
  readonly groups: readonly PeerGroup[];
  /** Windows: the Terminal Services session (`GetNamedPipeClientSessionId` / `…ServerSessionId`). */
  readonly sessionId?: number;
  /** Windows server side: whether the client's token is elevated (`TokenElevation`). */
  readonly elevated?: boolean;
  /** Windows server side: the client token's integrity level (`TokenIntegrityLevel`). */
  readonly integrityLevel?: IntegrityLevel;
}

/** Who {@linkcode allowOnly} lets in: users and groups by name (or SID / numeric id). */
export interface AllowList {
  /** Users: `alice`, `DOMAIN\alice`, a SID (Windows) or a uid (POSIX). */
  users?: readonly string[];
  /** Groups: `docker-users`, `DOMAIN\group`, a SID (Windows) or a gid (POSIX). */
  groups?: readonly string[];
}

/** What {@linkcode allowOnly} returns: spread it into {@linkcode ListenOptions}. */
export interface Access {
  /** Opens the pipe to the listed principals (plus, on Windows, its owner, who must create instances). */
  security: PipeSecurity;
  /** Admits exactly the listed users and members of the listed groups; everyone else is refused. */
  authorize: Authorize;
}

/** Options of {@linkcode listen}. Every default is the secure one. */
export interface ListenOptions {
  /** `HelloWorld`, `\\.\pipe\HelloWorld`, or (POSIX) an absolute socket path. */
  name: string;
  /** Default `"message"`, like the seed. */
  mode?: PipeMode;
  /** Maximum simultaneous instances (clients). Default unlimited (255, `PIPE_UNLIMITED_INSTANCES`). */
  maxInstances?: number;
  /** In/out buffer size the pipe is created with. Default 4096, like the seed. */
  bufferSize?: number;
  /** Largest message accepted; a client sending more is dropped. Default 1 MiB. */
  maxMessageSize?: number;
  /** Default `"user"`. */
  security?: PipeSecurity;
  /**
   * Admit or refuse each client by its identity before `accept()` returns it (see
   * {@linkcode Authorize}). A client whose identity cannot be read is refused. Default: every client
   * the pipe's security lets in is accepted.
   */
  authorize?: Authorize;
  /** Refuse clients from other machines (`PIPE_REJECT_REMOTE_CLIENTS`). Default true. */
  rejectRemoteClients?: boolean;
  /** Fail when the name is already served (`FILE_FLAG_FIRST_PIPE_INSTANCE`). Default true. */
  firstInstance?: boolean;
  /** Instances kept listening so clients arriving together are not refused. Default 4. */
  pendingInstances?: number;
}

/**
 * Options of one waiting call: `conn.read(p, { signal })`, `listener.accept({ signal })`.
 *
 * Aborting `signal` cancels that call only (on Windows `CancelIoEx` on its own OVERLAPPED, on Linux
 * its waiter leaves the poller) and makes it reject with `signal.reason`; other calls on the same
 * connection or listener go on. A signal that has already aborted rejects at once, before any I/O.
 * An operation that completed before the cancellation took effect resolves with its result, so no
 * data is lost to the race. What is left usable afterwards:
 * - `accept()`, `connections()` and `connect()`: always (a client arriving later is accepted by the
 *   next `accept()`).
 * - `read()` and `readMessage()`: always; nothing was consumed. (On Windows a message longer than
 *   64 KiB whose first part has arrived is read to its end and returned: the rest is already in the
 *   pipe, and cutting it off would lose the message's boundary.)
 * - `write()` and `writeMessage()`: usable on Linux, where a write that waits for room has sent
 *   nothing, except a byte-mode `writeMessage()` cancelled after part of its data went out (closed).
 *   On Windows a write that was already waiting in the kernel is closed with the connection: Windows
 *   does not tell how much of a cancelled write the peer already took. A write still queued behind
 *   other writes is dropped without closing anything, on both.
 */
export interface OperationOptions {
  /** Cancels this call; it then rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/** Options of {@linkcode connect}. */
export interface ConnectOptions {
  /** `HelloWorld`, `\\SERVER\pipe\HelloWorld`, or (POSIX) an absolute socket path. */
  name: string;
  /** Windows server name for `\\SERVER\pipe\NAME`. Default `"."` (this machine). */
  server?: string;
  /**
   * Windows: connect to a pipe on another machine (`server`, or a `\\SERVER\pipe\NAME` name; any
   * server but `.`, `localhost` included, which Windows also reaches through SMB as a remote client).
   * Default false: a remote pipe is refused with `Deno.errors.NotSupported`, because Windows opens it
   * synchronously over the network, which blocks the JS thread (timers, other pipes) for the
   * network's timeout, whatever `timeout` says. POSIX has no remote pipes.
   */
  allowRemote?: boolean;
  /** Default `"message"` (read mode message). */
  mode?: PipeMode;
  /** How long to wait for a missing or busy pipe, in milliseconds. Default 2000. */
  timeout?: number;
  /** Largest message accepted by {@linkcode PipeConn.readMessage}. Default 1 MiB. */
  maxMessageSize?: number;
  /** Gives up waiting for the server: `connect()` rejects with `signal.reason`. */
  signal?: AbortSignal;
  /**
   * Also trust a server running as this account: a user name (`DOMAIN\name` or a SID on Windows, a
   * name or numeric uid on POSIX). By default `connect()` checks, before sending anything, that the
   * server is this user or the system's own (Windows: the pipe's owner is this user, SYSTEM or
   * Administrators; POSIX: the server's uid is ours or root), and otherwise fails with
   * `Deno.errors.PermissionDenied` naming who holds the name: in a shared namespace (`\\.\pipe\`,
   * `/tmp`) anyone may take a name first and receive what clients send.
   */
  serverUser?: string;
  /** Skip the server check described at {@linkcode ConnectOptions.serverUser}. Default false. */
  trustAnyServer?: boolean;
}

/** One end of a connected pipe: a server's accepted client, or a client's connection. */
export interface PipeConn {
  /** The full pipe path (`\\.\pipe\NAME` or the socket path). */
  readonly path: string;
  /** `"message"` or `"byte"`, as the connection was opened. */
  readonly mode: PipeMode;
  /** Process id of the other end (`GetNamedPipeClientProcessId` / `SO_PEERCRED`); 0 if unknown. */
  readonly peerPid: number;
  /**
   * Who is on the other end ({@linkcode PeerIdentity}): on the server side read once, on first use
   * (by `authorize` before `accept()` hands the connection out), and `null` when first asked after
   * `close()`; on the client side read by `connect()`. `null` where the platform
   * cannot tell: macOS (Deno's Unix sockets give no credentials), and on Windows a client that
   * connected anonymously (`SECURITY_ANONYMOUS`: its token cannot be opened).
   */
  readonly peer: PeerIdentity | null;
  /**
   * Read one whole message. A zero-length message is a real message and resolves to an empty
   * array; end of stream (the peer closed) resolves to `null`.
   * @throws {RangeError} when the message exceeds `maxMessageSize` (the connection is then closed).
   */
  readMessage(options?: OperationOptions): Promise<Uint8Array | null>;
  /** Write one whole message (in byte mode: all the bytes). */
  writeMessage(data: Uint8Array, options?: OperationOptions): Promise<void>;
  /**
   * Read up to `p.length` bytes; `null` at end of stream. In message mode a message longer than `p`
   * is handed out over several reads, and a zero-length message reads as end of stream (`null`): it is
   * what the peer's {@linkcode PipeConn.closeWrite} sends.
   *
   * A server that does not keep what it reads (an echo, a relay, a parser that copies out what it
   * needs) reads messages with `read(p)` into one buffer of its largest message's size: no new array
   * per message, which {@linkcode PipeConn.readMessage} must allocate (and the runtime zero) each time.
   * On Linux a `p` of 4 KiB or more receives the message straight from the socket, with no copy.
   */
  read(p: Uint8Array, options?: OperationOptions): Promise<number | null>;
  /** Write `p`; resolves to the number of bytes written. In message mode `p` is one message. */
  write(p: Uint8Array, options?: OperationOptions): Promise<number>;
  /**
   * The bytes the peer sends, as a byte stream (`Deno.Conn.readable`), created on first use. It pulls
   * one {@linkcode PipeConn.read} of up to 64 KiB only when its consumer asks for more, so a consumer
   * that stops reading stops the peer's writer (the pipe's buffer fills up) instead of growing memory.
   * It ends where `read()` returns `null` (see {@linkcode PipeConn.closeWrite}); cancelling it closes
   * the connection. In message mode it carries the messages' bytes without their boundaries.
   */
  readonly readable: ReadableStream<Uint8Array>;
  /**
   * A stream writing to the pipe (`Deno.Conn.writable`), created on first use. Each chunk resolves
   * once the pipe has accepted all of its bytes, so a writer awaiting `writer.write()` or piping into
   * it goes no faster than the peer reads. In message mode each non-empty chunk is one message (empty
   * chunks are skipped: an empty message means end of stream). Closing it calls
   * {@linkcode PipeConn.closeWrite}; aborting it closes the connection.
   */
  readonly writable: WritableStream<Uint8Array>;
  /**
   * Half-close: finish writing while still reading the peer's answer. Waits for the writes already
   * made, tells the peer as far as the pipe allows, then makes later writes on this end reject with
   * `Deno.errors.BrokenPipe`. Reads go on. Idempotent; rejects with `Deno.errors.BadResource` after
   * {@linkcode PipeConn.close}.
   *
   * What the peer sees, the same on both backends except where the pipe cannot tell:
   * - message mode: a zero-length message (go-winio's `CloseWrite`). The peer's `read()` and
   *   `readable` report it as end of stream; its `readMessage()` returns it as an empty message and
   *   goes on to the next one.
   * - byte mode on Linux: `shutdown(SHUT_WR)`. The peer's reads return `null` once it has read
   *   everything sent before, and it may still write back.
   * - byte mode on Windows: byte-mode named pipes have no half-close (a zero-length write sends
   *   nothing), so the peer sees end of stream only when this end is closed. Portable byte-mode
   *   protocols therefore delimit their own messages (HTTP's `Content-Length`, a length prefix) and
   *   never wait for end of stream before answering.
   */
  closeWrite(): Promise<void>;
  /**
   * Close both directions: the peer reads what was already sent, then end of stream. Pending reads
   * and writes on this end reject with `Deno.errors.BadResource`. Idempotent.
   */
  close(): Promise<void>;
  /**
   * Let the program exit while this connection's reads and writes are still waiting, like
   * `Deno.Conn.unref()`: they complete if something else keeps the program running. Idempotent.
   */
  unref(): void;
  /** Undo {@linkcode PipeConn.unref}: waiting operations keep the program running again (the default). */
  ref(): void;
  /** The same as {@linkcode PipeConn.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** What the server created, read back for logs and tests. */
export interface PipeDescription {
  /** The full pipe path (`\\.\pipe\NAME` or the socket path). */
  path: string;
  /** `"message"` or `"byte"`. */
  mode: PipeMode;
  /** The security descriptor read back from the pipe (Windows), as SDDL. */
  sddl?: string;
  /** Socket file mode (POSIX), e.g. 0o600. */
  fileMode?: number;
  /** Socket file group id (POSIX), when a preset named a group. */
  fileGroup?: number;
  /** `dwOpenMode` passed to `CreateNamedPipeW` (Windows). */
  openMode?: number;
  /** `dwPipeMode` passed to `CreateNamedPipeW` (Windows). */
  pipeMode?: number;
}

/** A listening server: `for await (const conn of listener)` or `await listener.accept()`. */
export interface PipeListener extends AsyncIterable<PipeConn> {
  /** The full pipe path (`\\.\pipe\NAME` or the socket path). */
  readonly path: string;
  /** `"message"` or `"byte"`, as given to `listen()`. */
  readonly mode: PipeMode;
  /** The next client. Rejects with `Deno.errors.BadResource` once the listener is closed. */
  accept(options?: OperationOptions): Promise<PipeConn>;
  /**
   * The clients as they come, like iterating the listener itself, with a signal: aborting it ends
   * the iteration by throwing `signal.reason` out of the `for await` loop. Ends quietly at `close()`.
   */
  connections(options?: OperationOptions): AsyncIterableIterator<PipeConn>;
  /** Read back what was created (security descriptor, flags, file mode). */
  describe(): PipeDescription;
  /** Cancel pending accepts and release every handle. Connections already accepted stay open. */
  close(): Promise<void>;
  /**
   * Let the program exit while the listener waits for clients, like `Deno.Listener.unref()`; it still
   * accepts them if something else keeps the program running. Connections accepted later are ref'd.
   */
  unref(): void;
  /** Undo {@linkcode PipeListener.unref}: waiting for clients keeps the program running (the default). */
  ref(): void;
  /** The same as {@linkcode PipeListener.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * A pipe that exists now, as {@linkcode listPipes} found it without connecting to it. Fields a
 * platform does not report are absent.
 */
export interface PipeInfo {
  /** The name to pass to `connect()`: `HelloWorld`, or (POSIX) the socket path for other sockets. */
  name: string;
  /** The full path: `\\.\pipe\HelloWorld`, or the socket path (`/tmp/CoreFxPipe_HelloWorld`). */
  path: string;
  /**
   * Windows: instances open now (listening or connected), the directory's `EndOfFile`.
   * POSIX: clients waiting in the listen backlog (`sock_diag` receive queue).
   */
  instances?: number;
  /**
   * Windows: the most instances the server allows (`nMaxInstances`; 255 is unlimited), the
   * directory's `AllocationSize`. POSIX: the listen backlog's size.
   */
  maxInstances?: number;
  /** POSIX: `"message"` for a `SOCK_SEQPACKET` socket, `"byte"` for `SOCK_STREAM`. */
  mode?: PipeMode;
  /** POSIX: the socket file's owner, as a uid. */
  uid?: number;
  /** POSIX: the owner's user name, when `/etc/passwd` names the uid. */
  owner?: string;
  /** POSIX: the socket file's permission bits, e.g. 0o600. */
  fileMode?: number;
}

/** Options of {@linkcode listPipes}. */
export interface ListOptions {
  /**
   * Only names matching this glob (`*` any run of characters, `?` one); case-insensitive on Windows,
   * as pipe names are. Default every pipe.
   */
  pattern?: string;
  /** POSIX: also these socket paths, when something listens on them. */
  paths?: string[];
}

/** Options of {@linkcode waitForPipe}. */
export interface WaitOptions {
  /** `HelloWorld`, `\\.\pipe\HelloWorld`, or (POSIX) an absolute socket path. */
  name: string;
  /** How long to wait, in milliseconds. Default 2000; `Infinity` waits until the signal aborts. */
  timeout?: number;
  /** Stops the wait early: it then rejects with the signal's reason. */
  signal?: AbortSignal;
}
