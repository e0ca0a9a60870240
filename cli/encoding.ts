/**
 * How `send` turns what the user typed into the bytes of a message, and a reply into what it
 * prints: `utf16` (the seed's UTF-16LE with a trailing NUL), `utf8`, `hex`, or `raw` (stdin's bytes
 * sent as they are, the reply's bytes written as they are).
 *
 * ```ts
 * import { encodeMessage, formatReply } from "./encoding.ts";
 *
 * encodeMessage("Hi", "hex"); // throws UsageError: "Hi" is not hex
 * encodeMessage("48 00 69 00", "hex"); // Uint8Array [0x48, 0, 0x69, 0]
 * formatReply(new Uint8Array([0x48, 0, 0, 0]), "utf16"); // "H\n"
 * ```
 *
 * @module
 */
import { decodeHello, encodeUtf16le, toHex } from "../pipe/hello.ts";
import { UsageError } from "./exit_codes.ts";

/** The values of `--encoding`. */
export type Encoding = "utf16" | "utf8" | "hex" | "raw";

/** Every encoding, in the order `--help` lists them. */
export const ENCODINGS: readonly Encoding[] = ["utf16", "utf8", "hex", "raw"];

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder(); // not fatal: an invalid byte prints as U+FFFD

/**
 * Parse hex text: pairs of hex digits, optionally separated by spaces, colons or dashes, with or
 * without a `0x` prefix: `48 00 69 00`, `48006900`, `0x4800`.
 * @param text the hex to parse
 * @returns the bytes
 * @throws {UsageError} when the text is not an even number of hex digits
 */
export function parseHex(text: string): Uint8Array {
  const digits = text.replace(/^\s*0x/i, "").replace(/[\s:-]/g, "");
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(digits)) {
    throw new UsageError(`Invalid hex message "${text}": expected pairs of hex digits like "48 00 69 00"`);
  }
  const bytes = new Uint8Array(digits.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(digits.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/**
 * The bytes of one message typed by the user.
 * @param text the message as typed
 * @param encoding how to encode it; `raw` takes the UTF-8 bytes as they are
 * @returns the message's bytes
 * @throws {UsageError} for malformed hex
 */
export function encodeMessage(text: string, encoding: Encoding): Uint8Array {
  switch (encoding) {
    case "utf16":
      return encodeUtf16le(text); // with the trailing NUL, like the seed's client
    case "hex":
      return parseHex(text);
    case "utf8":
    case "raw":
      return utf8Encoder.encode(text);
  }
}

/**
 * What `send` prints for a reply: one line of text (trailing NULs trimmed; hex when the reply is
 * not valid UTF-16LE), one line of hex, or the bytes untouched for `raw`.
 * @param reply the reply's bytes
 * @param encoding how to show them
 * @returns the bytes to write to stdout
 */
export function formatReply(reply: Uint8Array, encoding: Encoding): Uint8Array {
  switch (encoding) {
    case "utf16":
      return utf8Encoder.encode(decodeHello(reply).text + "\n");
    case "utf8":
      return utf8Encoder.encode(utf8Decoder.decode(reply) + "\n");
    case "hex":
      return utf8Encoder.encode(toHex(reply) + "\n");
    case "raw":
      return reply;
  }
}
