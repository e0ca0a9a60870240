/**
 * UTF-16 strings for Win32 `W` functions: JS string → NUL-terminated `LPCWSTR` buffer, and a
 * returned `LPWSTR` address → JS string.
 *
 * @module
 */

/** A NUL-terminated UTF-16LE copy of `text`, ready to pass as an `LPCWSTR` `buffer`. */
export function wide(text: string): Uint16Array {
  const out = new Uint16Array(text.length + 1);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/** Read the NUL-terminated UTF-16 string at `address` (an `LPWSTR` some API returned). */
export function readWide(address: number | bigint): string {
  const pointer = Deno.UnsafePointer.create(BigInt(address));
  if (pointer === null) return "";
  const view = new Deno.UnsafePointerView(pointer);
  let length = 0;
  while (view.getUint16(length * 2) !== 0) length++;
  const units = new Uint16Array(view.getArrayBuffer(length * 2));
  let text = "";
  for (let i = 0; i < units.length; i += 4096) {
    text += String.fromCharCode(...units.subarray(i, i + 4096));
  }
  return text;
}
