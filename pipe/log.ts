/**
 * The library's loggers. LogTape is silent until the application configures it, so a program that
 * imports namedpipe and does not use LogTape sees nothing.
 *
 * The full `npm:` specifier (not the import map's bare name) lets others import this library by path
 * or URL without copying our import map.
 *
 * @module
 */
// deno-lint-ignore no-import-prefix -- importable by path or URL, without our import map
import { getLogger, type Logger } from "npm:@logtape/logtape@^2.4.2";

/** The logger of one part of the library: `["namedpipe", part]`. */
export function logger(part: "windows" | "posix" | "access"): Logger {
  return getLogger(["namedpipe", part]);
}
