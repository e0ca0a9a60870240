/**
 * The HelloWorld protocol: UTF-16LE with a trailing NUL, the seed's request and reply, and what the
 * server logs for bytes that are not UTF-16LE. Ends with a fuzz test: random bytes through decoding
 * and both log formats never throw and never break a log line.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import {
  decodeHello,
  DEFAULT_REQUEST,
  DEFAULT_RESPONSE,
  defaultRequest,
  defaultResponse,
  encodeUtf16le,
  formatHello,
  toHex,
} from "../pipe/hello.ts";
import { jsonFormatter, textFormatter } from "../cli/logging.ts";

Deno.test("the default response is the seed's 58 bytes: UTF-16LE with a trailing NUL", () => {
  const bytes = defaultResponse();
  assert.equal(bytes.length, 58);
  assert.equal(DEFAULT_RESPONSE.length * 2 + 2, 58);
  assert.deepEqual([...bytes.subarray(0, 4)], [0x44, 0x00, 0x65, 0x00]); // "De"
  assert.deepEqual([...bytes.subarray(56)], [0, 0]);
  assert.deepEqual(decodeHello(bytes), { text: DEFAULT_RESPONSE, hex: false });
});

Deno.test("the default request is the seed client's 56 bytes", () => {
  const bytes = defaultRequest();
  assert.equal(bytes.length, 56);
  assert.equal(formatHello(bytes), `"${DEFAULT_REQUEST}"`);
});

Deno.test("encodeUtf16le() writes surrogate pairs as two code units and the NUL only when asked", () => {
  assert.deepEqual([...encodeUtf16le("😀", false)], [0x3d, 0xd8, 0x00, 0xde]);
  assert.deepEqual([...encodeUtf16le("A")], [0x41, 0, 0, 0]);
  assert.equal(encodeUtf16le("").length, 2);
});

Deno.test("decodeHello() trims every trailing NUL but keeps inner ones", () => {
  const bytes = new Uint8Array([0x41, 0, 0, 0, 0x42, 0, 0, 0, 0, 0]);
  assert.deepEqual(decodeHello(bytes), { text: "A\0B", hex: false });
});

Deno.test("decodeHello() decodes exactly the bytes received: a BOM stays", () => {
  assert.deepEqual(decodeHello(new Uint8Array([0xff, 0xfe, 0x41, 0])), { text: "\ufeffA", hex: false });
});

Deno.test("decodeHello() answers zero-length and all-NUL messages with empty text", () => {
  assert.deepEqual(decodeHello(new Uint8Array()), { text: "", hex: false });
  assert.deepEqual(decodeHello(new Uint8Array(4)), { text: "", hex: false });
  assert.equal(formatHello(new Uint8Array()), '""');
});

Deno.test("decodeHello() shows an odd-length message as hex", () => {
  assert.deepEqual(decodeHello(new Uint8Array([0x41, 0x00, 0x42])), { text: "41 00 42", hex: true });
  assert.equal(formatHello(new Uint8Array([0x41])), "<hex: 41>");
});

Deno.test("decodeHello() shows a lone surrogate as hex instead of U+FFFD", () => {
  assert.deepEqual(decodeHello(new Uint8Array([0x00, 0xd8, 0x41, 0x00])), { text: "00 d8 41 00", hex: true });
  assert.deepEqual(decodeHello(new Uint8Array([0x00, 0xdc])), { text: "00 dc", hex: true });
});

Deno.test("toHex() writes lowercase pairs separated by spaces", () => {
  assert.equal(toHex(new Uint8Array([0, 0x0f, 0xab, 0xff])), "00 0f ab ff");
  assert.equal(toHex(new Uint8Array()), "");
});

/** A log record as LogTape builds it for `log.info("Receives {bytes} bytes; Message: {text}", …)`. */
function receivesRecord(bytes: Uint8Array): LogRecord {
  const properties = { client: 1, bytes: bytes.length, text: formatHello(bytes) };
  return {
    category: ["namedpipe", "serve"],
    level: "info",
    message: ["Receives ", properties.bytes, " bytes; Message: ", properties.text, ""],
    rawMessage: "Receives {bytes} bytes; Message: {text}",
    timestamp: Date.now(),
    properties,
  };
}

Deno.test("the seed's log line reads the same in the text and the JSON format", () => {
  const record = receivesRecord(defaultRequest());
  const line = 'Receives 56 bytes; Message: "Default request from client"';
  assert.match(textFormatter(record), new RegExp(`client#1: ${line.replace(/[()]/g, "\\$&")}\\n$`));
  const json = JSON.parse(jsonFormatter(record));
  assert.equal(json.message, line);
  assert.equal(json.level, "INFO");
  assert.equal(json.logger, "namedpipe.serve");
  assert.equal(json.properties.bytes, 56);
});

Deno.test("a request with a newline and escape codes cannot forge a log line", () => {
  const record = receivesRecord(encodeUtf16le("x\n12:00:00.000 INF forged\x1b[2J"));
  const text = textFormatter(record);
  assert.equal(text.indexOf("\n"), text.length - 1);
  assert.ok(!text.includes("\x1b"));
  const json = jsonFormatter(record);
  assert.equal(json.indexOf("\n"), json.length - 1);
  assert.ok(!json.includes("\x1b"));
});

/** xorshift32: a seeded generator, so a failure can be replayed from the seed in its message. */
function random(seed: number): () => number {
  let x = seed || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

Deno.test("fuzz: random byte strings through decode and both log formats never throw or break a line", () => {
  const seed = Date.now() >>> 0;
  const next = random(seed);
  for (let i = 0; i < 5000; i++) {
    // Mostly short messages, biased towards the bytes that matter: NULs, surrogates, controls.
    const length = Math.floor(next() ** 3 * 600);
    const bytes = new Uint8Array(length);
    for (let j = 0; j < length; j++) {
      const r = next();
      bytes[j] = r < 0.2
        ? 0
        : r < 0.3
        ? 0xd8 + Math.floor(next() * 8)
        : r < 0.4
        ? 0x0a
        : Math.floor(next() * 256);
    }
    try {
      const decoded = decodeHello(bytes);
      if (decoded.hex) assert.equal(decoded.text, toHex(bytes));
      else assert.ok(bytes.length % 2 === 0);
      const record = receivesRecord(bytes);
      for (const line of [textFormatter(record), jsonFormatter(record)]) {
        assert.equal(line.indexOf("\n"), line.length - 1, "one line per record");
      }
      JSON.parse(jsonFormatter(record));
    } catch (error) {
      throw new Error(`Fuzz case ${i} failed (seed ${seed}): ${toHex(bytes)}`, { cause: error });
    }
  }
});

Deno.test("fuzz: random text survives encodeUtf16le() and decodeHello() unchanged", () => {
  const seed = Date.now() >>> 0;
  const next = random(seed);
  for (let i = 0; i < 2000; i++) {
    const codePoints = Array.from({ length: Math.floor(next() * 40) }, () => {
      const r = next();
      return r < 0.5
        ? 0x20 + Math.floor(next() * 95)
        : r < 0.8
        ? 0x80 + Math.floor(next() * 0xd700)
        : 0x10000 + Math.floor(next() * 0xfffff);
    });
    const text = String.fromCodePoint(...codePoints).replace(/\0+$/, "");
    assert.deepEqual(decodeHello(encodeUtf16le(text)), { text, hex: false }, `seed ${seed}, case ${i}`);
  }
});

Deno.test("formatHello() shows at most LOG_TEXT_LIMIT characters and counts the rest", () => {
  const long = encodeUtf16le("x".repeat(1000));
  assert.equal(formatHello(long), `"${"x".repeat(256)}\u2026" (+744 characters)`);
  const odd = new Uint8Array(1001).fill(0xab);
  const shown = formatHello(odd);
  assert.ok(shown.startsWith("<hex: ab ab"));
  assert.ok(shown.endsWith(`\u2026 (+${1001 * 3 - 1 - 256} characters)>`), shown.slice(-40));
  assert.equal(formatHello(encodeUtf16le("short")), `"short"`);
});
