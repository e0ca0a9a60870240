/**
 * Lines of a byte stream as they arrive, for `send -`: each line is sent as soon as it is typed,
 * so the command works interactively as well as at the end of a pipe.
 *
 * ```ts
 * import { readLines } from "./lines.ts";
 *
 * for await (const line of readLines(Deno.stdin.readable)) console.log(line);
 * ```
 *
 * @module
 */

/**
 * Split a stream of UTF-8 bytes into lines, without their `\n` or `\r\n`. A last line with no
 * newline is still yielded; an empty stream yields nothing.
 * @param stream the bytes, e.g. `Deno.stdin.readable`
 * @returns the lines, one at a time
 */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, newline).replace(/\r$/, "");
      pending = pending.slice(newline + 1);
    }
  }
  if (pending.length > 0) yield pending.replace(/\r$/, "");
}

/**
 * Read a whole stream into one array, for `send --encoding raw`.
 * @param stream the bytes
 * @returns everything up to the end of the stream
 */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
