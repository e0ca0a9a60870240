/**
 * The HelloWorld protocol of Microsoft's CSNamedPipeServer / CSNamedPipeClient samples: text travels
 * as UTF-16LE with a trailing NUL, the client sends `Default request from client` and the server
 * answers `Default response from server` (58 bytes with the NUL).
 *
 * ```ts
 * import { decodeHello, defaultResponse } from "./hello.ts";
 *
 * const reply = defaultResponse(); // 58 bytes
 * console.log(decodeHello(reply)); // { text: "Default response from server", hex: false }
 * ```
 *
 * @module
 */

/** The seed's pipe name: `\\.\pipe\HelloWorld`. */
export const HELLO_PIPE_NAME = "HelloWorld";

/** What the seed's client sends. */
export const DEFAULT_REQUEST = "Default request from client";

/** What the seed's server answers. */
export const DEFAULT_RESPONSE = "Default response from server";

/** How a message read off the pipe is shown: as text, or as hex when it is not valid UTF-16LE. */
export interface DecodedMessage {
  /** The text, or the bytes as lowercase hex pairs separated by spaces when `hex` is true. */
  text: string;
  /** True when the bytes were odd in length or not valid UTF-16 (a lone surrogate). */
  hex: boolean;
}

// fatal: a lone surrogate must show as hex, not as U+FFFD that hides what was sent.
const utf16 = new TextDecoder("utf-16le", { fatal: true, ignoreBOM: true });

/**
 * Encode text as UTF-16LE, by default with the trailing NUL the seed's programs send.
 * @param text the text to encode
 * @param nul append a NUL code unit (two zero bytes); default true
 * @returns the bytes, `2 * (text.length + 1)` long with the NUL
 * @example
 * ```ts
 * encodeUtf16le("Hi"); // Uint8Array [0x48, 0, 0x69, 0, 0, 0]
 * ```
 */
export function encodeUtf16le(text: string, nul = true): Uint8Array {
  const units = text.length + (nul ? 1 : 0);
  const bytes = new Uint8Array(units * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < text.length; i++) view.setUint16(i * 2, text.charCodeAt(i), true);
  return bytes; // the NUL is already zero
}

/**
 * Bytes as lowercase hex pairs separated by spaces: `48 00 69`.
 * @param bytes the bytes to show
 * @returns the hex text, empty for no bytes
 */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/**
 * Decode exactly the bytes received as UTF-16LE, trimming trailing NULs. Never throws: odd-length
 * or invalid UTF-16 comes back as hex.
 * @param bytes one whole message
 * @returns the text, or its hex when it is not UTF-16LE
 * @example
 * ```ts
 * decodeHello(encodeUtf16le("Hi")); // { text: "Hi", hex: false }
 * decodeHello(new Uint8Array([0x41])); // { text: "41", hex: true }
 * ```
 */
export function decodeHello(bytes: Uint8Array): DecodedMessage {
  if (bytes.length % 2 !== 0) return { text: toHex(bytes), hex: true };
  let end = bytes.length;
  while (end >= 2 && bytes[end - 1] === 0 && bytes[end - 2] === 0) end -= 2;
  try {
    return { text: utf16.decode(bytes.subarray(0, end)), hex: false };
  } catch {
    return { text: toHex(bytes), hex: true };
  }
}

/** Characters of a message shown in a log line: a client must not be able to flood the log. */
export const LOG_TEXT_LIMIT = 256;

/**
 * How a message appears in the seed's log lines: `"text"` quoted, or `<hex: 41 42 43>`. Past
 * `limit` characters the rest is counted, not shown: `"abc…" (+1021 characters)`, so one 1 MiB
 * request cannot write megabytes of log.
 * @param bytes one whole message
 * @param limit characters of text (or hex) shown
 * @returns the part after `Message: ` in `Receives N bytes; Message: "..."`
 */
export function formatHello(bytes: Uint8Array, limit = LOG_TEXT_LIMIT): string {
  const { text, hex } = decodeHello(bytes);
  const shown = text.slice(0, limit);
  const rest = text.length - shown.length;
  if (rest === 0) return hex ? `<hex: ${shown}>` : `"${shown}"`;
  return hex ? `<hex: ${shown}\u2026 (+${rest} characters)>` : `"${shown}\u2026" (+${rest} characters)`;
}

/**
 * The seed's request: `Default request from client` in UTF-16LE with its NUL (56 bytes).
 * @returns a fresh copy the caller may keep
 */
export function defaultRequest(): Uint8Array {
  return encodeUtf16le(DEFAULT_REQUEST);
}

/**
 * The seed's reply: `Default response from server` in UTF-16LE with its NUL (58 bytes).
 * @returns a fresh copy the caller may keep
 */
export function defaultResponse(): Uint8Array {
  return encodeUtf16le(DEFAULT_RESPONSE);
}
