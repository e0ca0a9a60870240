/**
 * `namedpipe send`: the seed's CSNamedPipeClient made useful. Connects (waiting for a busy or
 * not-yet-created pipe), sends each message, reads each whole reply and prints it on stdout.
 *
 * ```ts
 * import { send } from "./send.ts";
 *
 * // Like the seed's client: "Default request from client" in UTF-16LE, prints the reply.
 * await send({ name: "HelloWorld" });
 * ```
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { connect } from "../pipe/mod.ts";
import { defaultRequest, formatHello, HELLO_PIPE_NAME } from "../pipe/hello.ts";
import type { PipeConn, PipeMode } from "../pipe/types.ts";
import { encodeMessage, type Encoding, formatReply } from "./encoding.ts";
import { readAll, readLines } from "./lines.ts";
import { ROOT_CATEGORY } from "./logging.ts";

const log = getLogger([ROOT_CATEGORY, "send"]);

/** Options of {@linkcode send}. */
export interface SendOptions {
  /** Default `HelloWorld`. */
  name?: string;
  /** Default `.` (this machine). */
  server?: string;
  /** How long to wait for a missing or busy pipe, in ms. Default 5000. */
  timeout?: number;
  /** Default `"message"`. */
  mode?: PipeMode;
  /** How messages are encoded and replies printed. Default `"utf16"`, like the seed. */
  encoding?: Encoding;
  /** The message; default the seed's `Default request from client` in UTF-16LE, whatever `encoding`. */
  message?: string;
  /** Send each line of `stdin` as a message (`send -`). */
  lines?: boolean;
  /** Send the message this many times, printing each reply. Default 1. */
  count?: number;
  /** Largest reply accepted. */
  maxMessageSize?: number;
  /** Also trust a server running as this user (see `ConnectOptions.serverUser`). */
  serverUser?: string;
  /** Send to whoever serves the name, without checking its user. */
  trustAnyServer?: boolean;
  /** Where messages come from with `lines` or `raw`. Default `Deno.stdin.readable`. */
  stdin?: ReadableStream<Uint8Array>;
  /** Where replies go. Default `Deno.stdout`. */
  stdout?: { write(p: Uint8Array): Promise<number> };
}

/** What was exchanged. */
export interface SendSummary {
  messages: number;
  bytesSent: number;
  bytesReceived: number;
}

/**
 * Connect, exchange the messages, print the replies, close.
 * @param options what to send where
 * @returns the counts
 * @throws {Deno.errors.NotFound} when no server appeared within the timeout
 * @throws {Deno.errors.TimedOut} when every instance stayed busy
 * @throws {Deno.errors.BrokenPipe} when the server hung up before replying
 * @throws {Deno.errors.PermissionDenied} when another user serves the name (nothing is sent)
 * @throws {UsageError} for malformed hex input (before connecting)
 */
export async function send(options: SendOptions = {}): Promise<SendSummary> {
  const encoding = options.encoding ?? "utf16";
  const stdout = options.stdout ?? Deno.stdout;
  const stdin = () => options.stdin ?? Deno.stdin.readable;
  const count = options.count ?? 1;
  // Encode before connecting, so a typo in hex costs no connection. With no message, the seed's
  // request (UTF-16LE) goes out whatever the encoding, which then only says how replies print.
  const fixed = options.lines || encoding === "raw"
    ? undefined
    : options.message === undefined
    ? defaultRequest()
    : encodeMessage(options.message, encoding);

  const conn = await connect({
    name: options.name ?? HELLO_PIPE_NAME,
    server: options.server ?? ".",
    // The user named the machine: a one-shot command may block while Windows reaches it.
    allowRemote: true,
    mode: options.mode ?? "message",
    timeout: options.timeout ?? 5000,
    maxMessageSize: options.maxMessageSize,
    serverUser: options.serverUser,
    trustAnyServer: options.trustAnyServer,
  });
  const summary: SendSummary = { messages: 0, bytesSent: 0, bytesReceived: 0 };
  try {
    log.debug("The named pipe, {path}, is connected (server pid {pid}, user {user}).", {
      path: conn.path,
      pid: conn.peerPid,
      user: conn.peer?.user.name ?? "unknown",
    });
    const exchange = async (request: Uint8Array) => {
      const reply = await roundTrip(conn, request, encoding);
      summary.messages++;
      summary.bytesSent += request.length;
      summary.bytesReceived += reply.length;
      await writeAll(stdout, formatReply(reply, encoding));
    };
    if (options.lines) {
      for await (const line of readLines(stdin())) await exchange(encodeMessage(line, encoding));
    } else {
      const request = fixed ?? await readAll(stdin());
      for (let i = 0; i < count; i++) await exchange(request);
    }
  } finally {
    await conn.close();
  }
  return summary;
}

/** Write one request and read its whole reply. */
async function roundTrip(conn: PipeConn, request: Uint8Array, encoding: Encoding): Promise<Uint8Array> {
  try {
    await conn.writeMessage(request);
  } catch (error) {
    // A server that refuses this user may hang up before the request leaves (EPIPE, ERROR_NO_DATA):
    // the same hang-up as an end of stream in place of the reply, so say it the same way.
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
    throw new Deno.errors.BrokenPipe(
      `Cannot write the request to "${conn.path}": the server closed the pipe`,
      {
        cause: error,
      },
    );
  }
  log.debug("Sends {bytes} bytes; Message: {text}", { bytes: request.length, text: formatHello(request) });
  const reply = await conn.readMessage();
  if (reply === null) {
    throw new Deno.errors.BrokenPipe(`Cannot read the reply from "${conn.path}": the server closed the pipe`);
  }
  log.debug("Receives {bytes} bytes; Message: {text}", { bytes: reply.length, text: formatHello(reply) });
  if (encoding === "utf16" && formatHello(reply).startsWith("<hex")) {
    log.warn("The reply is not valid UTF-16LE ({bytes} bytes): printed as hex", { bytes: reply.length });
  }
  return reply;
}

async function writeAll(out: { write(p: Uint8Array): Promise<number> }, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await out.write(bytes.subarray(done));
}
