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
export function isValid(handle: number | bigint): handle is Handle {
  return typeof handle === "bigint" && handle !== 0n && handle !== INVALID_HANDLE_VALUE;
}

/** Start counting a handle an API just returned. */
export function adopt(handle: Handle): Handle {
  open++;
  return handle;
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
