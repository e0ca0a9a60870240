/**
 * Every native handle the Windows engine opens is counted here and closed through here, so
 * `openHandleCount()` tells a leak check the truth even under Wine, whose `GetProcessHandleCount`
 * is a stub that returns 0.
 *
 * @module
 */
import { INVALID_HANDLE_VALUE, kernel32 } from "../../ffi/kernel32.ts";

/** A Win32 `HANDLE` as Deno's FFI returns a `usize`. */
export type Handle = bigint;

let open = 0;

/** True when `handle` is a real handle (not NULL, not `INVALID_HANDLE_VALUE`). */
export function isValid(handle: number | bigint): boolean {
  // Deno 2.9 returns every `usize` as a bigint; a number is accepted too, should that ever change.
  const value = BigInt.asUintN(64, BigInt(handle));
  return value !== 0n && value !== INVALID_HANDLE_VALUE;
}

/** Start counting a handle an API just returned (checked with {@linkcode isValid}). */
export function adopt(handle: number | bigint): Handle {
  open++;
  return BigInt(handle);
}

/** `CloseHandle`, counted. Never call it while an overlapped operation on the handle is pending. */
export function closeHandle(handle: Handle): void {
  kernel32().CloseHandle(handle);
  open--;
}

/** Handles the engine holds open now. */
export function openHandleCount(): number {
  return open;
}
