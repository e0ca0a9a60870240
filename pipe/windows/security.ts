/**
 * Security descriptors for pipe instances: building the one `CreateNamedPipeW` gets, and reading
 * back (as SDDL) the one a pipe really has.
 *
 * - `"user"` (default): `O:<UserSID>D:P(D;;GA;;;NU)(A;;GA;;;<UserSID>)(A;;GA;;;SY)` — network logons
 *   denied first (canonical order: an access check grants at the first allows that cover a request,
 *   so a deny after them is never reached), then owner and full access for the current user's SID from
 *   the process token (not `OW`/`CO`, dotnet/runtime#123903) and SYSTEM; DACL protected from
 *   inheritance. The system default DACL would give Everyone and Anonymous read (nodejs/node#47086).
 * - `"everyone"`: the seed's NULL DACL (anyone may open the pipe, and create instances).
 * - `{ sddl }`: the caller's descriptor, parsed by `ConvertStringSecurityDescriptorToSecurityDescriptorW`.
 * - `{ allow, deny }`: a preset, turned into SDDL by `security_preset.ts`.
 *
 * Every DACL given to a pipe must be in canonical order (`dacl_order.ts`): checked on the SDDL before
 * the pipe is created and again on the descriptor read back from it.
 *
 * @module
 */
import {
  advapi32,
  CURRENT_PROCESS,
  DACL_SECURITY_INFORMATION,
  ERROR_INSUFFICIENT_BUFFER,
  kernel32,
  OWNER_SECURITY_INFORMATION,
  SDDL_REVISION_1,
  SE_KERNEL_OBJECT,
  SECURITY_DESCRIPTOR_MIN_LENGTH,
  SECURITY_DESCRIPTOR_REVISION,
  TOKEN_QUERY,
  TOKEN_USER,
} from "../../ffi/kernel32.ts";
import { readWide, wide } from "../../ffi/win32_strings.ts";
import { pipeError, win32Error } from "../errors.ts";
import type { PipeSecurity } from "../types.ts";
import { assertCanonicalDacl } from "./dacl_order.ts";
import { adopt, closeHandle, type Handle } from "./handles.ts";
import { presetSddl } from "./security_preset.ts";

let userSid: string | undefined;

/** The current user's SID as a string (`S-1-5-21-…`), from the process token's TokenUser. */
export function currentUserSid(): string {
  if (userSid) return userSid;
  const k = kernel32();
  const a = advapi32();
  const out = new BigUint64Array(1);
  if (!a.OpenProcessToken(CURRENT_PROCESS, TOKEN_QUERY, out)) {
    throw win32Error(k.GetLastError(), "open the process token for", "current user");
  }
  const token = adopt(out[0]);
  try {
    const size = new Uint32Array(1);
    a.GetTokenInformation(token, TOKEN_USER, null, 0, size);
    const first = k.GetLastError();
    if (first !== ERROR_INSUFFICIENT_BUFFER) throw win32Error(first, "query the token of", "current user");
    const info = new Uint8Array(new ArrayBuffer(size[0]));
    if (!a.GetTokenInformation(token, TOKEN_USER, info, size[0], size)) {
      throw win32Error(k.GetLastError(), "query the token of", "current user");
    }
    // TOKEN_USER { SID_AND_ATTRIBUTES User { PSID Sid; DWORD Attributes } }: Sid points into `info`.
    const sid = new DataView(info.buffer).getBigUint64(0, true);
    const text = new BigUint64Array(1);
    if (!a.ConvertSidToStringSidW(sid, text)) {
      throw win32Error(k.GetLastError(), "convert the SID of", "current user");
    }
    userSid = readWide(text[0]);
    k.LocalFree(text[0]);
    return userSid;
  } finally {
    closeHandle(token);
  }
}

/** The default descriptor for the current user, as SDDL. */
export function defaultSddl(): string {
  const sid = currentUserSid();
  return `O:${sid}D:P(D;;GA;;;NU)(A;;GA;;;${sid})(A;;GA;;;SY)`;
}

/**
 * A `SECURITY_ATTRIBUTES` (bInheritHandle FALSE) kept alive for a listener's life; `free()` releases
 * the descriptor memory once no more instances will be created.
 */
export interface SecurityAttributes {
  /** `SECURITY_ATTRIBUTES { DWORD nLength; LPVOID lpSecurityDescriptor; BOOL bInheritHandle }`. */
  buffer: Uint8Array;
  free(): void;
}

/** Build the attributes for `security`; `path` names the pipe in errors. */
export function securityAttributes(security: PipeSecurity, path: string): SecurityAttributes {
  const k = kernel32();
  const a = advapi32();
  const buffer = new Uint8Array(new ArrayBuffer(24));
  const view = new DataView(buffer.buffer);
  view.setUint32(0, 24, true); // nLength
  view.setUint32(16, 0, true); // bInheritHandle = FALSE: no child process inherits our pipes
  if (security === "everyone") {
    // The seed's NULL DACL: InitializeSecurityDescriptor + SetSecurityDescriptorDacl(TRUE, NULL).
    const sd = new Uint8Array(new ArrayBuffer(SECURITY_DESCRIPTOR_MIN_LENGTH));
    if (
      !a.InitializeSecurityDescriptor(sd, SECURITY_DESCRIPTOR_REVISION) ||
      !a.SetSecurityDescriptorDacl(sd, 1, 0n, 0)
    ) {
      throw win32Error(k.GetLastError(), "build the security descriptor of", path);
    }
    view.setBigUint64(8, Deno.UnsafePointer.value(Deno.UnsafePointer.of(sd)) as bigint, true);
    return { buffer, free: () => void sd };
  }
  const sddl = security === "user"
    ? defaultSddl()
    : "allow" in security
    ? presetSddl(security, currentUserSid(), path)
    : security.sddl;
  if (typeof sddl !== "string" || sddl === "") {
    throw pipeError(TypeError, "create named pipe", path, "security.sddl must be a non-empty string");
  }
  assertCanonicalDacl(sddl, path);
  const out = new BigUint64Array(1);
  if (!a.ConvertStringSecurityDescriptorToSecurityDescriptorW(wide(sddl), SDDL_REVISION_1, out, null)) {
    const error = k.GetLastError();
    throw pipeError(TypeError, "create named pipe", path, `invalid SDDL "${sddl}" (${error})`, error);
  }
  const sd = out[0];
  view.setBigUint64(8, sd, true);
  let freed = false;
  return {
    buffer,
    free() {
      if (!freed) k.LocalFree(sd);
      freed = true;
    },
  };
}

/** The owner and DACL of a pipe handle, read back as SDDL (GetSecurityInfo). */
export function readSddl(handle: Handle, path: string): string {
  const k = kernel32();
  const a = advapi32();
  const info = OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION;
  const sd = new BigUint64Array(1);
  const dacl = new BigUint64Array(1);
  const error = a.GetSecurityInfo(handle, SE_KERNEL_OBJECT, info, null, null, dacl, null, sd);
  if (error !== 0) throw win32Error(error, "read the security descriptor of", path);
  try {
    const text = new BigUint64Array(1);
    if (!a.ConvertSecurityDescriptorToStringSecurityDescriptorW(sd[0], SDDL_REVISION_1, info, text, null)) {
      throw win32Error(k.GetLastError(), "convert the security descriptor of", path);
    }
    const sddl = readWide(text[0]);
    k.LocalFree(text[0]);
    // A NULL DACL reads "D:NO_ACCESS_CONTROL" on Windows but a bare "D:" (an empty DACL's spelling)
    // under Wine 8; say what it is on both.
    return dacl[0] === 0n && sddl.endsWith("D:") ? `${sddl}NO_ACCESS_CONTROL` : sddl;
  } finally {
    k.LocalFree(sd[0]);
  }
}
