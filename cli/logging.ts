/**
 * Logging for the command through LogTape: readable lines or JSON lines, always on stderr, so
 * stdout carries only what scripts read (the replies `send` prints).
 *
 * ```ts
 * import { getLogger } from "@logtape/logtape";
 * import { setupLogging } from "./logging.ts";
 *
 * await setupLogging({ format: "json", level: "info" });
 * getLogger(["namedpipe"]).info("Receives {bytes} bytes", { bytes: 56 });
 * ```
 *
 * @module
 */
import {
  configure,
  getTextFormatter,
  type LogLevel,
  type LogRecord,
  type Sink,
  type TextFormatter,
} from "@logtape/logtape";

/** `text`: `09:13:20.123 INF message`; `json`: one JSON object a line. */
export type LogFormat = "text" | "json";

/** The formats `--log-format` accepts. */
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

/** The root category of every logger in this project. */
export const ROOT_CATEGORY = "namedpipe";

/** What `--quiet`, the default and `--verbose` choose. */
export type Verbosity = "quiet" | "normal" | "verbose";

const LEVELS: Record<Verbosity, LogLevel> = { quiet: "error", normal: "info", verbose: "debug" };

/**
 * The readable format: time, level, an optional `client#N:` tag, then the message. Values are
 * rendered bare (strings unquoted) and control characters escaped, so a client cannot forge a line.
 */
export const textFormatter: TextFormatter = getTextFormatter({
  timestamp: "time",
  value: "bare",
  format: ({ timestamp, level, message, record }) => {
    const client = record.properties.client;
    const tag = typeof client === "number" ? `client#${client}: ` : "";
    return `${timestamp} ${level} ${tag}${message}`;
  },
});

/**
 * The JSON lines format, LogTape's shape:
 * `{"@timestamp":…,"level":"INFO","message":…,"logger":"namedpipe.serve","properties":{…}}`.
 * Unlike LogTape's own, string values are rendered bare in `message`, so it reads exactly like the
 * text line (`The named pipe, \\.\pipe\HelloWorld, is created.`); their exact values are in
 * `properties`.
 */
export const jsonFormatter: TextFormatter = (record: LogRecord) => {
  let message = "";
  record.message.forEach((part, i) => {
    message += i % 2 === 0 || typeof part === "string" ? String(part) : Deno.inspect(part);
  });
  return JSON.stringify({
    "@timestamp": new Date(record.timestamp).toISOString(),
    level: record.level === "warning" ? "WARN" : record.level.toUpperCase(),
    message,
    logger: record.category.join("."),
    properties: record.properties,
  }, errorsAsObjects) + "\n";
};

/** JSON.stringify turns an Error into `{}`: keep what a reader needs. */
function errorsAsObjects(_key: string, value: unknown): unknown {
  return value instanceof Error ? { name: value.name, message: value.message, stack: value.stack } : value;
}

const encoder = new TextEncoder();

/** Write all of `bytes`: `writeSync` on a pipe may take only part of them. */
function writeAllSync(file: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
}

/**
 * A sink writing each record synchronously to stderr: lines keep their order with the replies on
 * stdout, and nothing is lost when the process exits right after logging.
 * @param formatter how a record becomes a line (with its newline)
 * @returns the sink
 */
export function stderrSink(formatter: TextFormatter): Sink {
  return (record: LogRecord) => {
    try {
      writeAllSync(Deno.stderr, encoder.encode(formatter(record)));
    } catch {
      // stderr closed (the reader went away): logging must never take the server down.
    }
  };
}

/** Options of {@linkcode setupLogging}. */
export interface LoggingOptions {
  format: LogFormat;
  verbosity: Verbosity;
}

/**
 * Configure LogTape for the command. Call once, before the first log line.
 * @param options the format and how much to log
 */
export async function setupLogging(options: LoggingOptions): Promise<void> {
  const formatter = options.format === "json" ? jsonFormatter : textFormatter;
  await configure({
    reset: true,
    sinks: { stderr: stderrSink(formatter) },
    loggers: [
      { category: ROOT_CATEGORY, sinks: ["stderr"], lowestLevel: LEVELS[options.verbosity] },
      // LogTape's own diagnostics: only real problems, never its "configured" notice.
      { category: ["logtape", "meta"], sinks: ["stderr"], lowestLevel: "warning" },
    ],
  });
}
