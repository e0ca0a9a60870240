/**
 * `namedpipe serve`: the HelloWorld server of Microsoft's CSNamedPipeServer sample, serving many
 * clients at once until stopped, or exactly one client with `once` like the seed.
 *
 * ```ts
 * import { serve } from "./serve.ts";
 *
 * const stop = new AbortController();
 * setTimeout(() => stop.abort("SIGINT"), 1000);
 * const summary = await serve({ name: "HelloWorld", signal: stop.signal });
 * console.log(summary.clients);
 * ```
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { allowOnly, listen } from "../pipe/mod.ts";
import { defaultResponse, encodeUtf16le, formatHello, HELLO_PIPE_NAME } from "../pipe/hello.ts";
import type { Authorize, PipeConn, PipeListener, PipeMode, PipeSecurity } from "../pipe/types.ts";
import { ROOT_CATEGORY } from "./logging.ts";

const log = getLogger([ROOT_CATEGORY, "serve"]);

/** Options of {@linkcode serve}; every one has the seed's value by default. */
export interface ServeOptions {
  /** Default `HelloWorld`. */
  name?: string;
  /** Serve one client, then exit, like the seed. Default false. */
  once?: boolean;
  /** Reply with this text (UTF-16LE with a NUL) instead of `Default response from server`. */
  response?: string;
  /** Reply with the request's own bytes. */
  echo?: boolean;
  /** Default `"message"`. */
  mode?: PipeMode;
  maxInstances?: number;
  /** Default 4096, like the seed. */
  bufferSize?: number;
  maxMessageSize?: number;
  /** Default `"user"`: the current user and SYSTEM only. */
  security?: PipeSecurity;
  /**
   * Serve exactly these users (names, SIDs or uids) and members of `allowGroups`: the pipe is opened
   * to them and everyone else is refused at connect, this user included unless listed. Replaces
   * `security`.
   */
  allowUsers?: string[];
  /** Groups whose members may connect (names, SIDs or gids); see `allowUsers`. */
  allowGroups?: string[];
  /** Stops the server: pending accepts are cancelled and connected clients closed. */
  signal?: AbortSignal;
}

/** What the server did, logged when it stops. */
export interface ServeSummary {
  /** Clients accepted. */
  clients: number;
  /** Requests answered. */
  messages: number;
  bytesReceived: number;
  bytesSent: number;
  /** Milliseconds from the pipe's creation to the end. */
  uptimeMs: number;
}

/** How long connected clients get to be closed at shutdown before the server exits anyway. */
const CLOSE_GRACE_MS = 2000;

/**
 * Run the HelloWorld server until `signal` aborts (or, with `once`, until its one client leaves).
 * Bad input never stops it: undecodable requests are logged as hex and answered, a client that
 * vanishes or sends too much is logged and dropped.
 * @param options what to serve and how
 * @returns the counts logged in the summary
 * @throws {Deno.errors.AddrInUse} when another server has the name
 * @throws {Deno.errors.PermissionDenied} when the name belongs to someone else
 */
export async function serve(options: ServeOptions = {}): Promise<ServeSummary> {
  const { once = false, echo = false, signal } = options;
  const response = options.response === undefined ? defaultResponse() : encodeUtf16le(options.response);
  let security = options.security ?? "user";
  let authorize: Authorize | undefined;
  const users = options.allowUsers ?? [], groups = options.allowGroups ?? [];
  if (users.length + groups.length > 0) {
    ({ security, authorize } = allowOnly({ users, groups }));
    log.info("Only these may connect: {allowed}", {
      allowed: [...users.map((u) => `user ${u}`), ...groups.map((g) => `group ${g}`)].join(", "),
    });
  }
  if (security === "everyone") {
    log.warn(
      "--allow-everyone: like the seed's pipe, every user and process on this machine may connect, " +
        "read and write (Windows: a NULL DACL, which also lets them create rogue instances of the " +
        "name; Linux: socket mode 0666). Use it only for testing.",
    );
  }

  const listener = listen({
    name: options.name ?? HELLO_PIPE_NAME,
    mode: options.mode ?? "message",
    maxInstances: options.maxInstances,
    bufferSize: options.bufferSize ?? 4096,
    maxMessageSize: options.maxMessageSize,
    security,
    authorize,
  });
  const started = performance.now();
  const summary: ServeSummary = { clients: 0, messages: 0, bytesReceived: 0, bytesSent: 0, uptimeMs: 0 };
  const active = new Map<PipeConn, Promise<void>>();
  let accepting = true;
  let shuttingDown = false;

  log.info("The named pipe, {path}, is created.", { path: listener.path });
  log.debug("Created: {description}", { description: listener.describe() });
  log.info("Waiting for the client's connection...");

  const stopAccepting = () => {
    if (!accepting) return;
    accepting = false;
    listener.close().catch((error) => log.error("Cannot close the listener: {error}", { error }));
  };
  // A stop signal also closes connected clients, so an idle one cannot hold the server up.
  const shutDown = () => {
    if (shuttingDown) return;
    shuttingDown = true;
    if (signal?.aborted) log.info("Stopping on {reason}...", { reason: String(signal.reason) });
    stopAccepting();
    for (const conn of active.keys()) conn.close().catch(() => {});
  };
  if (signal?.aborted) shutDown();
  signal?.addEventListener("abort", shutDown, { once: true });

  try {
    while (accepting) {
      const conn = await acceptNext(listener, () => !accepting);
      if (!conn) break;
      const client = ++summary.clients;
      if (once) stopAccepting(); // the seed's one instance: nobody else gets in
      const context = { response, echo, summary, isStopping: () => shuttingDown };
      const handler = handleClient(conn, client, context).finally(() => active.delete(conn));
      active.set(conn, handler);
      if (shuttingDown) conn.close().catch(() => {});
      if (once) await handler;
    }
  } finally {
    signal?.removeEventListener("abort", shutDown);
    stopAccepting();
    await closeAll(active);
  }
  summary.uptimeMs = performance.now() - started;
  log.info(
    "Served {clients} client(s), {messages} message(s), {bytesReceived} bytes received, " +
      "{bytesSent} bytes sent; uptime {uptime}.",
    { ...summary, uptime: formatDuration(summary.uptimeMs) },
  );
  return summary;
}

/** The next client, or null once the server is stopping. Transient accept failures are retried. */
async function acceptNext(listener: PipeListener, isStopping: () => boolean): Promise<PipeConn | null> {
  while (true) {
    try {
      return await listener.accept();
    } catch (error) {
      if (isStopping() || error instanceof Deno.errors.BadResource) return null;
      // E.g. out of handles: keep the server up, but do not spin.
      log.error("Cannot accept a client: {error}", { error: messageOf(error) });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

interface ClientContext {
  response: Uint8Array;
  echo: boolean;
  summary: ServeSummary;
  isStopping: () => boolean;
}

/** The seed's conversation with one client, repeated until it hangs up; never throws. */
async function handleClient(conn: PipeConn, client: number, context: ClientContext): Promise<void> {
  const { summary } = context;
  log.info("Client is connected: pid {pid}, user {user}", { client, ...peerFields(conn) });
  try {
    while (true) {
      const request = await conn.readMessage();
      if (request === null) break;
      summary.messages++;
      summary.bytesReceived += request.length;
      log.info("Receives {bytes} bytes; Message: {text}", {
        client,
        bytes: request.length,
        text: formatHello(request),
      });
      const reply = context.echo ? request : context.response;
      try {
        await conn.writeMessage(reply);
      } catch (error) {
        // Our own reply, not the client, is at fault (Linux: larger than the socket's send buffer).
        if (!(error instanceof RangeError) || context.isStopping()) throw error;
        log.error("Cannot reply with {bytes} bytes, the client is closed: {error}", {
          client,
          bytes: reply.length,
          error: messageOf(error),
        });
        return;
      }
      summary.bytesSent += reply.length;
      log.info("Replies {bytes} bytes; Message: {text}", {
        client,
        bytes: reply.length,
        text: formatHello(reply),
      });
    }
    log.info("Client is disconnected.", { client });
  } catch (error) {
    if (context.isStopping()) {
      log.debug("Client closed at shutdown: {error}", { client, error: messageOf(error) });
    } else if (error instanceof RangeError) {
      log.warn("Client dropped: {error}", { client, error: messageOf(error) });
    } else {
      log.warn("Client vanished: {error}", { client, error: messageOf(error) });
    }
  } finally {
    // Like the seed: flush, disconnect, close (the library does the three).
    await conn.close().catch((error) =>
      log.warn("Cannot close the client's pipe: {error}", { client, error: messageOf(error) })
    );
  }
}

/**
 * Who connected, as log properties: `pid` and `user` (the name) for the line, and for JSON logs the
 * account's `sid` or `uid`/`gid`, and on Windows `sessionId`, `elevated` and `integrityLevel`.
 */
export function peerFields(conn: PipeConn): Record<string, unknown> {
  const peer = conn.peer;
  if (!peer) return { pid: conn.peerPid, user: "unknown" };
  const { name, ...account } = peer.user;
  const fields: Record<string, unknown> = { pid: peer.pid, user: name, ...account };
  if (peer.sessionId !== undefined) fields.sessionId = peer.sessionId;
  if (peer.elevated !== undefined) fields.elevated = peer.elevated;
  if (peer.integrityLevel !== undefined) fields.integrityLevel = peer.integrityLevel;
  return fields;
}

/** Close every connected client and wait for their handlers, within a bound. */
async function closeAll(active: Map<PipeConn, Promise<void>>): Promise<void> {
  if (active.size === 0) return;
  log.debug("Closing {count} connected client(s)", { count: active.size });
  for (const conn of active.keys()) conn.close().catch(() => {}); // idempotent
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, CLOSE_GRACE_MS));
  await Promise.race([Promise.allSettled(active.values()), timeout]);
  clearTimeout(timer);
}

/** `12.3 s`, `4 min 5 s`, `2 h 3 min`. */
export function formatDuration(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
