/**
 * `namedpipe relay FROM TO`: bytes (or messages) copied both ways between two endpoints (see
 * `endpoint.ts`) until both sides are done, with one log line per relayed connection. With a
 * `*-listen` endpoint, every connection it accepts gets its own relay to a fresh connection to the
 * other endpoint, until Ctrl+C (or, with `once` or stdio on the other side, after the first).
 *
 * ```ts
 * import { relayCommand } from "./relay.ts";
 *
 * const stop = new AbortController();
 * await relayCommand({ from: "tcp-listen:2375", to: "pipe:docker_engine", signal: stop.signal });
 * ```
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { connect, listen } from "../pipe/mod.ts";
import {
  type EmptyMessage,
  type EndOfStream,
  pipeRelayEnd,
  relay,
  type RelayEnd,
  type RelayResult,
} from "../pipe/relay.ts";
import type { PipeListener } from "../pipe/types.ts";
import { type Endpoint, isListening, parseEndpoint } from "./endpoint.ts";
import { UsageError } from "./exit_codes.ts";
import { ROOT_CATEGORY } from "./logging.ts";

const log = getLogger([ROOT_CATEGORY, "relay"]);

/** Options of {@linkcode relayCommand}. */
export interface RelayCommandOptions {
  from: string;
  to: string;
  /** Default `"auto"`. */
  eof?: EndOfStream;
  /** Default `"eof"`. */
  emptyMessage?: EmptyMessage;
  /** After the first end of stream, close both sides after this many ms. Default: no limit. */
  linger?: number;
  /** How long `pipe:` and `unix:` wait for a missing or busy server, in ms. Default 5000. */
  timeout?: number;
  /** `pipe:` endpoints wait for their pipe without limit. */
  wait?: boolean;
  /** With a listening endpoint: relay one connection, then return. */
  once?: boolean;
  /** Stops the listener and closes every relay. */
  signal?: AbortSignal;
}

/** What the command did. */
export interface RelaySummary {
  connections: number;
  /** Relays that ended with an error (a peer killed, a reset). */
  failed: number;
}

/** A relay ended by an error: exit code 6 (connection lost) when it was the only one. */
class RelayBroken extends Deno.errors.BrokenPipe {
  override name = "RelayBroken";
}

/** An endpoint opened for one relay, and who is on its other side, for the log line. */
interface Opened {
  end: RelayEnd;
  peer: string;
}

/** A listening endpoint. */
interface Acceptor {
  readonly address: string;
  accept(): Promise<Opened>;
  close(): void;
}

/**
 * Run the relay.
 * @param options the endpoints and the end-of-stream rules
 * @returns the counts
 * @throws {UsageError} for endpoints that cannot be combined
 * @throws {RelayBroken} (a `Deno.errors.BrokenPipe`) when a single relay ended with an error
 * @throws what opening an endpoint throws (`NotFound`, `AddrInUse`, ...)
 */
export async function relayCommand(options: RelayCommandOptions): Promise<RelaySummary> {
  const from = parseEndpoint(options.from);
  const to = parseEndpoint(options.to);
  if (isListening(from) && isListening(to)) {
    throw new UsageError("Only one endpoint may listen: the other is connected to for each client");
  }
  if (from.kind === "stdio" && to.kind === "stdio") {
    throw new UsageError("Only one endpoint may be - (stdio)");
  }
  for (const endpoint of [from, to]) {
    if (endpoint.kind.startsWith("unix") && Deno.build.os === "windows") {
      // Windows has AF_UNIX (10 1803+), but Deno's Unix-socket ops are compiled for Unix only: its
      // Deno.listen/Deno.connect throw "not supported on non-unix platforms" there (a test watches).
      throw new Deno.errors.NotSupported(
        `Cannot use "${endpoint.text}": Deno has no Unix sockets on Windows. Run the Unix side on ` +
          'Linux or WSL and cross over TCP: there "namedpipe relay tcp-listen:PORT unix:PATH", here ' +
          "tcp:HOST:PORT in place of this endpoint",
      );
    }
  }
  const listening = isListening(to) ? to : isListening(from) ? from : undefined;
  const target = listening === to ? from : to;
  const summary: RelaySummary = { connections: 0, failed: 0 };
  const rules = { eof: options.eof, emptyMessage: options.emptyMessage, linger: options.linger };
  const openTarget = () => open(target, options);

  if (!listening) {
    const first = await open(from, options);
    let second: Opened;
    try {
      second = await open(to, options);
    } catch (error) {
      await first.end.close();
      throw error;
    }
    const result = await relay(first.end, second.end, { ...rules, signal: options.signal });
    summary.connections = 1;
    logRelay(1, first.peer, second.peer, result);
    if (result.error) {
      summary.failed = 1;
      throw new RelayBroken(`Relay between ${from.text} and ${to.text} broken: ${result.error.message}`);
    }
    return summary;
  }

  const acceptor = await startListening(listening);
  const once = options.once || target.kind === "stdio";
  const active = new Set<Promise<void>>();
  const stopAll = new AbortController();
  const stop = () => {
    acceptor.close();
    stopAll.abort();
  };
  options.signal?.addEventListener("abort", stop, { once: true });
  if (options.signal?.aborted) stop();
  log.info("Listening on {address}; each connection is relayed to {target}.", {
    address: acceptor.address,
    target: target.text,
  });
  try {
    while (!stopAll.signal.aborted) {
      let client: Opened;
      try {
        client = await acceptor.accept();
      } catch (error) {
        if (stopAll.signal.aborted || error instanceof Deno.errors.BadResource) break;
        log.error("Cannot accept a connection: {error}", { error: messageOf(error) });
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      const n = ++summary.connections;
      if (once) acceptor.close();
      const task: Promise<void> = (async () => {
        let server: Opened;
        try {
          server = await openTarget();
        } catch (error) {
          summary.failed++;
          log.warn("Connection from {peer} closed: cannot open {target}: {error}", {
            client: n,
            peer: client.peer,
            target: target.text,
            error: messageOf(error),
          });
          await client.end.close();
          return;
        }
        const result = await relay(client.end, server.end, { ...rules, signal: stopAll.signal });
        if (result.error) summary.failed++;
        logRelay(n, client.peer, server.peer, result);
      })().finally(() => active.delete(task));
      active.add(task);
      if (once) await task;
    }
  } finally {
    options.signal?.removeEventListener("abort", stop);
    stop();
    await Promise.allSettled(active);
  }
  log.info("Relayed {connections} connection(s), {failed} ended by an error.", { ...summary });
  if (once && summary.failed > 0) throw new RelayBroken("The relayed connection was broken");
  return summary;
}

/** The one line per relayed connection: bytes each way, duration, peer. */
function logRelay(
  client: number,
  peer: string,
  target: string,
  { bytes, ms, error, undelivered }: RelayResult,
): void {
  const properties = {
    client,
    peer,
    target,
    bytesIn: bytes[0],
    bytesOut: bytes[1],
    ms: Math.round(ms),
    duration: formatMs(ms),
    undeliveredIn: undelivered[0],
    undeliveredBack: undelivered[1],
    ...(error && { error: error.message }),
  };
  let text = "Relayed {peer} to {target}: {bytesIn} bytes in, {bytesOut} bytes back, {duration}";
  // A late answer to a side that has left is how many exchanges end: said, not an error.
  if (undelivered[0] > 0) text += "; {undeliveredIn} bytes in not delivered (the server had left)";
  if (undelivered[1] > 0) text += "; {undeliveredBack} bytes back not delivered (the client had left)";
  if (error) log.warn(`${text}; broken: {error}`, properties);
  else log.info(`${text}.`, properties);
}

/** `850 ms`, `12.3 s`. */
function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A Unix socket path as the library wants it: absolute (a bare word would be a pipe name). */
function absolute(path: string): string {
  if (path.startsWith("/") || /^[A-Za-z]:[\\/]/.test(path) || path.startsWith("\\\\")) return path;
  return `${Deno.cwd()}/${path}`;
}

/** Connect an endpoint (never a listening one). */
async function open(endpoint: Endpoint, options: RelayCommandOptions): Promise<Opened> {
  const timeout = options.wait ? Infinity : options.timeout ?? 5000;
  switch (endpoint.kind) {
    case "stdio":
      return { end: stdioEnd(), peer: "stdio" };
    case "pipe": {
      const conn = await connect({
        name: endpoint.name,
        mode: endpoint.mode,
        timeout,
        maxMessageSize: endpoint.maxMessageSize,
      });
      return { end: pipeRelayEnd(conn), peer: withPid(conn.path, conn.peerPid) };
    }
    case "unix": {
      const path = absolute(endpoint.path);
      const conn = await connect({ name: path, mode: endpoint.mode, timeout });
      return { end: pipeRelayEnd(conn), peer: withPid(`unix:${path}`, conn.peerPid) };
    }
    case "tcp": {
      const conn = await Deno.connect({ hostname: endpoint.host, port: endpoint.port });
      return { end: denoConnEnd(conn), peer: `tcp:${address(conn.remoteAddr)}` };
    }
    default:
      throw new Error(`Cannot connect a listening endpoint: ${endpoint.text}`);
  }
}

/** Start a listening endpoint. */
async function startListening(endpoint: Endpoint): Promise<Acceptor> {
  switch (endpoint.kind) {
    case "pipe-listen": {
      const listener = listen({
        name: endpoint.name,
        mode: endpoint.mode,
        maxInstances: endpoint.maxInstances,
        security: endpoint.security,
        bufferSize: endpoint.bufferSize,
        maxMessageSize: endpoint.maxMessageSize,
      });
      return pipeAcceptor(listener, "");
    }
    case "unix-listen": {
      const path = absolute(endpoint.path);
      const listener = listen({ name: path, mode: endpoint.mode, security: endpoint.security });
      return pipeAcceptor(listener, "unix:");
    }
    case "tcp-listen": {
      const listener = Deno.listen({ hostname: endpoint.host, port: endpoint.port });
      return denoAcceptor(listener, `tcp:${address(listener.addr)}`);
    }
    default:
      return await Promise.reject(new Error(`Not a listening endpoint: ${endpoint.text}`));
  }
}

function pipeAcceptor(listener: PipeListener, prefix: string): Acceptor {
  return {
    address: `${prefix}${listener.path}`,
    async accept() {
      const conn = await listener.accept();
      return { end: pipeRelayEnd(conn), peer: conn.peerPid ? `pid ${conn.peerPid}` : "a client" };
    },
    close() {
      listener.close().catch(() => {});
    },
  };
}

function denoAcceptor(listener: Deno.Listener, display: string): Acceptor {
  let closed = false;
  return {
    address: display,
    async accept() {
      const conn = await listener.accept().catch((error) => {
        throw closed ? new Deno.errors.BadResource("The listener is closed") : error;
      });
      return { end: denoConnEnd(conn), peer: address(conn.remoteAddr) || "a client" };
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        listener.close();
      } catch { /* already closed */ }
    },
  };
}

function withPid(path: string, pid: number): string {
  return pid ? `${path} (pid ${pid})` : path;
}

function address(addr: Deno.Addr): string {
  if (addr.transport === "tcp" || addr.transport === "udp") {
    return addr.hostname.includes(":") ? `[${addr.hostname}]:${addr.port}` : `${addr.hostname}:${addr.port}`;
  }
  return "path" in addr ? (addr.path ?? "") : "";
}

/** Bytes asked for per read: tokio's and libuv's 64 KiB, like the pipes' streams. */
const CHUNK = 64 * 1024;

/** A Deno TCP or Unix connection: its `closeWrite()` is the half-close. */
function denoConnEnd(conn: Deno.Conn): RelayEnd {
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      try {
        conn.close();
      } catch { /* the readable's cancel closed it already */ }
    }
    return Promise.resolve();
  };
  return {
    // Not `conn.readable`: it closes the whole connection at end of stream, and the other
    // direction may still have to write.
    readable: new ReadableStream<Uint8Array>({
      async pull(controller) {
        const buffer = new Uint8Array(CHUNK);
        const n = await conn.read(buffer);
        if (n === null) controller.close();
        else controller.enqueue(buffer.subarray(0, n));
      },
      cancel: close,
    }, { highWaterMark: 0 }),
    writable: new WritableStream<Uint8Array>({
      async write(chunk) {
        for (let done = 0; done < chunk.length;) done += await conn.write(chunk.subarray(done));
      },
      close: () => conn.closeWrite(),
      abort: close,
    }),
    halfClose: true,
    messages: false,
    close,
  };
}

/** stdin and stdout: closing stdout is the half-close its reader sees. */
function stdioEnd(): RelayEnd {
  const closeQuietly = (file: { close(): void }) => {
    try {
      file.close();
    } catch { /* already closed */ }
  };
  return {
    readable: Deno.stdin.readable,
    writable: new WritableStream<Uint8Array>({
      async write(chunk) {
        for (let done = 0; done < chunk.length;) done += await Deno.stdout.write(chunk.subarray(done));
      },
      close: () => closeQuietly(Deno.stdout),
      abort: () => closeQuietly(Deno.stdout),
    }),
    halfClose: true,
    messages: false,
    close() {
      closeQuietly(Deno.stdout);
      return Promise.resolve();
    },
  };
}
