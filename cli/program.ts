/**
 * The `namedpipe` command line: subcommands, options, help with examples, and the mapping of
 * every outcome to an exit code. `main.ts` only calls {@linkcode run}.
 *
 * ```ts
 * import { run } from "./program.ts";
 *
 * const code = await run(["send", "--name", "HelloWorld", "--timeout", "500"]);
 * ```
 *
 * @module
 */
import { Command, CommanderError, Option } from "commander";
import { getLogger } from "@logtape/logtape";
import denoJson from "../deno.json" with { type: "json" };
import { HELLO_PIPE_NAME } from "../pipe/hello.ts";
import type { PipeMode, PipeSecurity } from "../pipe/types.ts";
import { type Encoding, ENCODINGS } from "./encoding.ts";
import {
  LIST_EXAMPLES,
  MAIN_EXAMPLES,
  RELAY_EXAMPLES,
  SEND_EXAMPLES,
  SERVE_EXAMPLES,
  WAIT_EXAMPLES,
} from "./help.ts";
import { deniedByDeno, ExitCode, exitCodeFor, UsageError } from "./exit_codes.ts";
import { LOG_FORMATS, type LogFormat, ROOT_CATEGORY, setupLogging, type Verbosity } from "./logging.ts";
import { list } from "./list.ts";
import { relayCommand } from "./relay.ts";
import type { EmptyMessage, EndOfStream } from "../pipe/relay.ts";
import { integerOption, nonEmptyOption } from "./options.ts";
import { send } from "./send.ts";
import { serve } from "./serve.ts";
import { stopSignals } from "./signals.ts";
import { wait } from "./wait.ts";

const log = getLogger([ROOT_CATEGORY]);

/** Version of the command, from deno.json. */
export const VERSION: string = denoJson.version;

const MODES: readonly PipeMode[] = ["message", "byte"];
const MAX_INSTANCES = 255; // PIPE_UNLIMITED_INSTANCES
const GIB = 1024 * 1024 * 1024;

/** Options shared by every subcommand. */
interface LoggingFlags {
  logFormat: LogFormat;
  quiet?: boolean;
  verbose?: boolean;
}

function addLoggingOptions(command: Command): Command {
  return command
    .addOption(
      new Option("--log-format <format>", "text lines, or one JSON object a line")
        .choices(LOG_FORMATS).default("text"),
    )
    .addOption(new Option("-q, --quiet", "log errors only").conflicts("verbose"))
    .addOption(new Option("-v, --verbose", "log every message and debugging details"));
}

async function startLogging(flags: LoggingFlags): Promise<void> {
  const verbosity: Verbosity = flags.quiet ? "quiet" : flags.verbose ? "verbose" : "normal";
  await setupLogging({ format: flags.logFormat, verbosity });
}

interface ServeFlags extends LoggingFlags {
  name: string;
  once?: boolean;
  response?: string;
  echo?: boolean;
  mode: PipeMode;
  maxInstances?: number;
  bufferSize: number;
  maxMessageSize?: number;
  allowEveryone?: boolean;
  sddl?: string;
  allowUser: string[];
  allowGroup: string[];
}

interface SendFlags extends LoggingFlags {
  server: string;
  name: string;
  timeout: number;
  mode: PipeMode;
  encoding: Encoding;
  count: number;
  maxMessageSize?: number;
  serverUser?: string;
  trustAnyServer?: boolean;
}

interface ListFlags extends LoggingFlags {
  json?: boolean;
}

interface RelayFlags extends LoggingFlags {
  eof: EndOfStream;
  emptyMessage: EmptyMessage;
  linger?: number;
  timeout: number;
  wait?: boolean;
  once?: boolean;
}

interface WaitFlags extends LoggingFlags {
  timeout: number;
}

/** A repeatable option's parser: each use adds one non-empty value. */
function collect(what: string): (value: string, previous: string[]) => string[] {
  const check = nonEmptyOption(what);
  return (value, previous) => [...previous, check(value)];
}

/** Build the command tree; actions throw, and {@linkcode run} maps what they throw to an exit code. */
function buildProgram(): Command {
  const program = new Command("namedpipe")
    .description("Windows named pipes from Deno: the HelloWorld server and client, and more.")
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help with examples")
    .exitOverride()
    // Plain help: commander's colour check reads environment variables, which would need --allow-env.
    .configureOutput({ getOutHasColors: () => false, getErrHasColors: () => false })
    .showHelpAfterError("(run with --help for usage and examples)")
    .addHelpText("after", MAIN_EXAMPLES);

  const serveCommand = program.command("serve")
    .description("Run the HelloWorld named pipe server (like Microsoft's CSNamedPipeServer).")
    .addOption(
      new Option("-n, --name <name>", "pipe name (\\\\.\\pipe\\NAME)").default(HELLO_PIPE_NAME)
        .argParser(nonEmptyOption("pipe name")),
    )
    .option("--once", "serve one client, then exit (exactly the seed)")
    .addOption(new Option("-r, --response <text>", 'reply text (default "Default response from server")')
      .conflicts("echo"))
    .option("--echo", "reply with the request's own bytes")
    .addOption(new Option("--mode <mode>", "message or byte stream").choices(MODES).default("message"))
    .addOption(
      new Option("--max-instances <n>", `simultaneous clients, 1-${MAX_INSTANCES} (default unlimited)`)
        .argParser(integerOption(1, MAX_INSTANCES)),
    )
    .addOption(
      new Option("--buffer-size <bytes>", "pipe in/out buffer size").default(4096)
        .argParser(integerOption(0, GIB)),
    )
    .addOption(
      new Option("--max-message-size <bytes>", "larger requests drop the client (default 1 MiB)")
        .argParser(integerOption(1, GIB)),
    )
    .addOption(
      new Option("--allow-everyone", "the seed's NULL DACL: anyone may connect (insecure)").conflicts("sddl"),
    )
    .option("--sddl <sddl>", "Windows security descriptor for the pipe, in SDDL")
    .addOption(
      new Option(
        "--allow-user <user>",
        "serve only this user (name, DOMAIN\\name, SID or uid; repeatable); refuse everyone else",
      ).argParser(collect("user")).default([]).conflicts(["allowEveryone", "sddl"]),
    )
    .addOption(
      new Option(
        "--allow-group <group>",
        "serve only members of this group (name, SID or gid; repeatable); refuse everyone else",
      ).argParser(collect("group")).default([]).conflicts(["allowEveryone", "sddl"]),
    )
    .addHelpText("after", SERVE_EXAMPLES);
  addLoggingOptions(serveCommand).action(async (flags: ServeFlags) => {
    await startLogging(flags);
    const security: PipeSecurity = flags.allowEveryone
      ? "everyone"
      : flags.sddl !== undefined
      ? { sddl: flags.sddl }
      : "user";
    using stop = stopSignals();
    await serve({
      name: flags.name,
      once: flags.once,
      response: flags.response,
      echo: flags.echo,
      mode: flags.mode,
      maxInstances: flags.maxInstances,
      bufferSize: flags.bufferSize,
      maxMessageSize: flags.maxMessageSize,
      security,
      allowUsers: flags.allowUser,
      allowGroups: flags.allowGroup,
      signal: stop.signal,
    });
  });

  const sendCommand = program.command("send")
    .description("Send messages to a named pipe server and print its replies (like CSNamedPipeClient).")
    .argument("[message...]", 'the message (words joined by spaces), or "-" to send each line of stdin')
    .addOption(
      new Option("-s, --server <server>", "server machine (\\\\SERVER\\pipe\\NAME)").default(".")
        .argParser(nonEmptyOption("server name")),
    )
    .addOption(
      new Option("-n, --name <name>", "pipe name").default(HELLO_PIPE_NAME)
        .argParser(nonEmptyOption("pipe name")),
    )
    .addOption(
      new Option("-t, --timeout <ms>", "wait this long for a missing or busy pipe").default(5000)
        .argParser(integerOption(0, 24 * 3600 * 1000)),
    )
    .addOption(
      new Option(
        "-e, --encoding <encoding>",
        "utf16 (with a NUL, like the seed), utf8, hex, or raw stdin bytes",
      )
        .choices(ENCODINGS).default("utf16"),
    )
    .addOption(
      new Option("-c, --count <n>", "send the message n times on one connection").default(1)
        .argParser(integerOption(1, 1_000_000_000)),
    )
    .addOption(new Option("--mode <mode>", "message or byte stream").choices(MODES).default("message"))
    .addOption(
      new Option("--max-message-size <bytes>", "largest reply accepted (default 1 MiB)")
        .argParser(integerOption(1, GIB)),
    )
    .addOption(
      new Option(
        "--server-user <user>",
        "also trust a server run by this user (by default only this user, root/SYSTEM/Administrators)",
      ).argParser(nonEmptyOption("user")).conflicts("trustAnyServer"),
    )
    .option("--trust-any-server", "send to whoever serves the name, without checking its user")
    .addHelpText("after", SEND_EXAMPLES);
  addLoggingOptions(sendCommand).action(async (words: string[], flags: SendFlags) => {
    await startLogging(flags);
    const lines = words.length === 1 && words[0] === "-";
    if (words.includes("-") && !lines) throw new UsageError('"-" (read stdin) must be the only message');
    if (flags.encoding === "raw" && words.length > 0) {
      throw new UsageError("--encoding raw sends stdin's bytes: give no message");
    }
    if (lines && flags.count !== 1) throw new UsageError("--count cannot be used with - (stdin lines)");
    await send({
      name: flags.name,
      server: flags.server,
      timeout: flags.timeout,
      mode: flags.mode,
      encoding: flags.encoding,
      message: lines || words.length === 0 ? undefined : words.join(" "),
      lines,
      count: flags.count,
      maxMessageSize: flags.maxMessageSize,
      serverUser: flags.serverUser,
      trustAnyServer: flags.trustAnyServer,
    });
  });

  const listCommand = program.command("list")
    .description("List the pipes that exist, without connecting to any (like Sysinternals PipeList).")
    .argument("[pattern-or-path...]", "a name pattern (* and ?), and on Linux socket paths to look at too")
    .option("--json", "print one JSON array instead of the table")
    .addHelpText("after", LIST_EXAMPLES);
  addLoggingOptions(listCommand).action(async (words: string[], flags: ListFlags) => {
    await startLogging(flags);
    const paths = Deno.build.os === "windows" ? [] : words.filter((word) => word.startsWith("/"));
    const patterns = words.filter((word) => !paths.includes(word));
    if (patterns.length > 1) throw new UsageError(`Give one name pattern, not ${patterns.length}`);
    const found = await list({ pattern: patterns[0], paths, json: flags.json });
    if (found.length === 0 && words.length > 0) {
      throw new Deno.errors.NotFound(`No pipe matches "${words.join(" ")}"`);
    }
  });

  const relayCommandLine = program.command("relay")
    .description("Copy bytes (or messages) both ways between two endpoints: pipes, TCP, Unix sockets, stdio.")
    .argument(
      "<from>",
      "an endpoint: -, pipe:NAME, pipe-listen:NAME, tcp:HOST:PORT, tcp-listen:[HOST:]PORT, ...",
    )
    .argument("<to>", "the other endpoint")
    .addOption(
      new Option("--eof <rule>", "what one side's end of stream does: auto, half-close or close")
        .choices(["auto", "half-close", "close"]).default("auto"),
    )
    .addOption(
      new Option("--empty-message <meaning>", "a zero-length message read: eof (a half-close) or pass")
        .choices(["eof", "pass"]).default("eof"),
    )
    .addOption(
      new Option("--linger <ms>", "after the first end of stream, close both sides within this long")
        .argParser(integerOption(0, 24 * 3600 * 1000)),
    )
    .addOption(
      new Option("-t, --timeout <ms>", "wait this long for a missing or busy pipe or Unix socket")
        .default(5000).argParser(integerOption(0, 24 * 3600 * 1000)),
    )
    .addOption(new Option("--wait", "wait for pipe: endpoints to appear, without limit").conflicts("timeout"))
    .option("--once", "with a -listen endpoint: relay one connection, then exit")
    .addHelpText("after", RELAY_EXAMPLES);
  addLoggingOptions(relayCommandLine).action(async (from: string, to: string, flags: RelayFlags) => {
    await startLogging(flags);
    using stop = stopSignals();
    await relayCommand({
      from,
      to,
      eof: flags.eof,
      emptyMessage: flags.emptyMessage,
      linger: flags.linger,
      timeout: flags.timeout,
      wait: flags.wait,
      once: flags.once,
      signal: stop.signal,
    });
  });

  const waitCommand = program.command("wait")
    .description("Wait until a pipe exists and can take a client, without connecting to it.")
    .argument("<name>", "pipe name (\\\\.\\pipe\\NAME; on Linux also a socket path)")
    .addOption(
      new Option("-t, --timeout <ms>", "give up after this long (exit 3)").default(5000)
        .argParser(integerOption(0, 24 * 3600 * 1000)),
    )
    .addHelpText("after", WAIT_EXAMPLES);
  addLoggingOptions(waitCommand).action(async (name: string, flags: WaitFlags) => {
    await startLogging(flags);
    if (name === "") throw new UsageError("The pipe name must not be empty.");
    using stop = stopSignals();
    await wait({ name, timeout: flags.timeout, signal: stop.signal });
  });
  return program;
}

/**
 * Run the command line and return its exit code. Expected failures are logged as one line; only
 * internal errors show a stack trace.
 * @param args the arguments after the program name
 * @returns the exit code ({@linkcode ExitCode})
 */
export async function run(args: string[]): Promise<number> {
  // Until a subcommand sets its own, errors still need somewhere to go.
  await setupLogging({ format: "text", verbosity: "normal" });
  try {
    await buildProgram().parseAsync(args, { from: "user" });
    return ExitCode.Ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander printed the message (or the help/version) already.
      return error.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
    }
    const code = exitCodeFor(error);
    if (code === ExitCode.Internal) {
      log.fatal("Internal error: {error}", { error });
    } else {
      log.error("{message}", { message: error instanceof Error ? error.message : String(error) });
      const hint = hintFor(error, code);
      if (hint) log.error(hint);
    }
    return code;
  }
}

/** One line of advice after an expected failure, if there is one. */
function hintFor(error: unknown, code: ExitCode): string | undefined {
  if (deniedByDeno(error)) {
    return "Deno refused a permission: run with the flag it names (deno task serve/send and the " +
      "compiled namedpipe have every one needed).";
  }
  switch (code) {
    case ExitCode.NotFound:
      return error instanceof Deno.errors.TimedOut
        ? "The server is busy (every instance taken, see --max-instances): try again, or raise --timeout."
        : 'Is the server running? Start one with "namedpipe serve --name NAME", or raise --timeout.';
    case ExitCode.AccessDenied:
      if (error instanceof Error && /nothing was sent/.test(error.message)) {
        return "Another user holds this name and may be impersonating your server: if you trust it, " +
          "pass --server-user USER (or --trust-any-server).";
      }
      return "The pipe's security does not let this user in: run as the server's user, or start the " +
        "server with --sddl granting access.";
    case ExitCode.NameInUse:
      return "Another server already serves this name: stop it, or choose another --name.";
    case ExitCode.MessageTooLarge:
      return (error as Error).message.includes("maxMessageSize")
        ? "Raise --max-message-size to accept larger replies."
        : "The message does not fit the pipe's send buffer (Linux: net.core.wmem_max): send less at once.";
    case ExitCode.ConnectionLost:
      return error instanceof Error && /closed the pipe/.test(error.message)
        ? "The server hung up without replying: it may not serve this user (see its log, " +
          "serve --allow-user/--allow-group)."
        : undefined;
  }
}
