/**
 * The library's loggers, through LogTape, which is silent until the application configures it.
 *
 * LogTape keeps its root logger on `globalThis` under `Symbol.for("logtape.rootLogger")` (so that
 * every copy of the package shares one configuration). A record reaches the application's sinks only
 * when the application loaded LogTape and configured it, so a record is passed to that root logger
 * when it exists and dropped otherwise, exactly as an unconfigured LogTape would drop it. The library
 * therefore never loads LogTape itself: an `npm:` import starts Deno's npm resolver and Node
 * compatibility layer, about 7 MiB of resident memory in every process that imports namedpipe
 * (measured with Deno 2.9.6 on Linux: a timer alone 34 MiB, plus LogTape 41 MiB).
 *
 * The full `npm:` specifier (not the import map's bare name) lets others import this library by path
 * or URL without copying our import map; it is a type import, erased at run time.
 *
 * @module
 */
// deno-lint-ignore no-import-prefix -- importable by path or URL, without our import map
import type { Logger } from "npm:@logtape/logtape@^2.4.2";

/** Where LogTape keeps its root logger (`logger.ts` of @logtape/logtape, 1.x and 2.x). */
const ROOT = Symbol.for("logtape.rootLogger");

/** The levels the library logs at, with LogTape's message templates and properties. */
export interface PartLogger {
  /** A condition the user should know about (e.g. a pipe open to everyone). */
  warn(message: string, properties?: Record<string, unknown>): void;
  /** A failure the library recovers from (e.g. an accept retried). */
  error(message: string, properties?: Record<string, unknown>): void;
}

/** LogTape's logger for a category, when the application has loaded LogTape. */
function find(category: readonly [string, string]): Logger | undefined {
  return (globalThis as Record<symbol, Logger | undefined>)[ROOT]?.getChild(category);
}

/** The logger of one part of the library: `["namedpipe", part]`, looked up at each record. */
export function logger(part: "windows" | "posix" | "access"): PartLogger {
  const category = ["namedpipe", part] as const;
  return {
    warn: (message, properties) => find(category)?.warn(message, properties ?? {}),
    error: (message, properties) => find(category)?.error(message, properties ?? {}),
  };
}
