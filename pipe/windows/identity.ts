/**
 * Who is on the other end of a pipe, on Windows.
 *
 * Server side ({@linkcode clientIdentity}): the client's token, read with
 * `ImpersonateNamedPipeClient` → `OpenThreadToken(OpenAsSelf)` → `RevertToSelf`, all synchronous on
 * the JS thread, then `GetTokenInformation` on the token handle (user, groups, elevation, integrity
 * level). `RevertToSelf` runs on every path; should it ever fail, the process is terminated at once
 * rather than go on running as the client.
 *
 * When: on first use of `conn.peer` (`connection.ts`); with `authorize`, right after
 * `ConnectNamedPipe` completes, before the connection is handed to `accept()` and before any data.
 * The named-pipe file system captures the client's security context when the
 * client opens the pipe; `ERROR_CANNOT_IMPERSONATE` ("until data has been read from that pipe") is
 * an old restriction, and Wine 8 impersonates a client that has sent nothing. Should impersonation
 * fail anyway, or the client have opened the pipe at `SECURITY_ANONYMOUS` (no token to open), its
 * identity is unknown (`null`), which `authorize` refuses.
 *
 * Client side ({@linkcode serverIdentity}): the server's process and session ids and the pipe's
 * owner SID (`GetSecurityInfo` on our handle), which is the account that created the pipe — what a
 * client checks before trusting the name.
 *
 * @module
 */
import {
  advapi32,
  CURRENT_PROCESS,
  CURRENT_THREAD,
  ERROR_INSUFFICIENT_BUFFER,
  ERROR_NONE_MAPPED,
  kernel32,
  OWNER_SECURITY_INFORMATION,
  PROCESS_QUERY_LIMITED_INFORMATION,
  SE_GROUP_ENABLED,
  SE_GROUP_USE_FOR_DENY_ONLY,
  SE_KERNEL_OBJECT,
  TOKEN_ELEVATION,
  TOKEN_GROUPS,
  TOKEN_INTEGRITY_LEVEL,
  TOKEN_OWNER,
  TOKEN_QUERY,
  TOKEN_USER,
} from "../../ffi/kernel32.ts";
import { readWide, wide } from "../../ffi/win32_strings.ts";
import { pipeError, win32Error } from "../errors.ts";
import type {
  Access,
  AllowList,
  ConnectOptions,
  IntegrityLevel,
  PeerGroup,
  PeerIdentity,
  PeerUser,
} from "../types.ts";
import { adopt, closeHandle, type Handle, isValid } from "./handles.ts";

/** Well-known SIDs a client trusts to serve a pipe besides its own user. */
export const SYSTEM_SID = "S-1-5-18";
export const ADMINISTRATORS_SID = "S-1-5-32-544";

/** `SidTypeGroup`, `SidTypeAlias` and `SidTypeWellKnownGroup` from `LookupAccountNameW`'s peUse. */
const GROUP_USES = new Set([2, 4, 5]);

function addressOf(buffer: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

/** The text form of the SID at `sid` (`ConvertSidToStringSidW`). */
export function sidString(sid: bigint, what: string): string {
  const text = new BigUint64Array(1);
  if (!advapi32().ConvertSidToStringSidW(sid, text)) {
    throw win32Error(kernel32().GetLastError(), "convert the SID of", what);
  }
  const value = readWide(text[0]);
  kernel32().LocalFree(text[0]);
  return value;
}

const names = new Map<string, string>();

/** `DOMAIN\name` of the SID at `sid` (`LookupAccountSidW`, cached); the SID itself if none maps. */
function accountName(sid: bigint, sidText: string): string {
  const cached = names.get(sidText);
  if (cached !== undefined) return cached;
  const a = advapi32();
  let nameSize = 256, domainSize = 256;
  for (let attempt = 0; attempt < 2; attempt++) {
    const name = new Uint16Array(nameSize), domain = new Uint16Array(domainSize);
    const sizes = new Uint32Array([nameSize, domainSize]);
    const use = new Uint32Array(1);
    if (a.LookupAccountSidW(null, sid, name, sizes.subarray(0, 1), domain, sizes.subarray(1, 2), use)) {
      const text = (units: Uint16Array, n: number) => String.fromCharCode(...units.subarray(0, n));
      const user = text(name, sizes[0]), realm = text(domain, sizes[1]);
      const full = realm ? `${realm}\\${user}` : user;
      names.set(sidText, full);
      return full;
    }
    const error = kernel32().GetLastError();
    if (error !== ERROR_INSUFFICIENT_BUFFER) break; // ERROR_NONE_MAPPED: a SID with no account
    nameSize = Math.max(sizes[0], nameSize * 2);
    domainSize = Math.max(sizes[1], domainSize * 2);
  }
  return sidText;
}

/** The name to show for a SID given as text (e.g. an owner read elsewhere). */
export function nameOfSid(sidText: string): string {
  const cached = names.get(sidText);
  if (cached !== undefined) return cached;
  const out = new BigUint64Array(1);
  if (!advapi32().ConvertStringSidToSidW(wide(sidText), out)) return sidText;
  try {
    return accountName(out[0], sidText);
  } finally {
    kernel32().LocalFree(out[0]);
  }
}

/** One `GetTokenInformation` class, sized by a first call. */
function tokenInformation(token: Handle, infoClass: number, what: string): Uint8Array<ArrayBuffer> {
  const a = advapi32();
  const size = new Uint32Array(1);
  a.GetTokenInformation(token, infoClass, null, 0, size);
  const first = kernel32().GetLastError();
  if (size[0] === 0) throw win32Error(first, "query the token of", what);
  // Its own ArrayBuffer: SIDs inside are addressed by pointers into it, so it must not move.
  const info = new Uint8Array(new ArrayBuffer(size[0]));
  if (!a.GetTokenInformation(token, infoClass, info, size[0], size)) {
    throw win32Error(kernel32().GetLastError(), "query the token of", what);
  }
  return info;
}

const LEVELS: Record<number, IntegrityLevel> = {
  0x0000: "untrusted",
  0x1000: "low",
  0x2000: "medium",
  0x2100: "medium-plus",
  0x3000: "high",
  0x4000: "system",
  0x5000: "protected",
};

/** User, groups, elevation and integrity level of a token. */
function describeToken(token: Handle, what: string): Omit<PeerIdentity, "pid" | "sessionId"> {
  const userInfo = tokenInformation(token, TOKEN_USER, what);
  // TOKEN_USER { SID_AND_ATTRIBUTES User { PSID Sid; DWORD Attributes } }
  const userSid = new DataView(userInfo.buffer).getBigUint64(0, true);
  const sid = sidString(userSid, what);
  const user: PeerUser = { name: accountName(userSid, sid), sid };

  const groupInfo = tokenInformation(token, TOKEN_GROUPS, what);
  const view = new DataView(groupInfo.buffer);
  // TOKEN_GROUPS { DWORD GroupCount; SID_AND_ATTRIBUTES Groups[] } (x64: entries of 16 bytes at 8)
  const groups: PeerGroup[] = [];
  for (let i = 0, count = view.getUint32(0, true); i < count; i++) {
    const attributes = view.getUint32(8 + i * 16 + 8, true);
    if (!(attributes & SE_GROUP_ENABLED) || attributes & SE_GROUP_USE_FOR_DENY_ONLY) continue;
    groups.push({ sid: sidString(view.getBigUint64(8 + i * 16, true), what) });
  }

  let elevated: boolean | undefined;
  let integrityLevel: IntegrityLevel | undefined;
  try {
    // TOKEN_ELEVATION { DWORD TokenIsElevated }
    elevated = new DataView(tokenInformation(token, TOKEN_ELEVATION, what).buffer).getUint32(0, true) !== 0;
  } catch {
    // Not every token class exists everywhere; leave it unknown.
  }
  try {
    // TOKEN_MANDATORY_LABEL { SID_AND_ATTRIBUTES Label }: S-1-16-<RID>
    const label = tokenInformation(token, TOKEN_INTEGRITY_LEVEL, what);
    const rid = Number(sidString(new DataView(label.buffer).getBigUint64(0, true), what).split("-").pop());
    integrityLevel = LEVELS[rid] ?? "unknown";
  } catch {
    // As above.
  }
  return { user, groups, elevated, integrityLevel };
}

let ownerSid: string | undefined;

/**
 * The owner objects created by this process get by default (the process token's `TokenOwner`): the
 * user, or Administrators for an elevated administrator on Windows; Wine 8 uses the primary group.
 * A token can only name itself or a group it may own objects as, so a pipe with this owner was
 * created by this user.
 */
export function defaultOwnerSid(): string {
  if (ownerSid) return ownerSid;
  const out = new BigUint64Array(1);
  if (!advapi32().OpenProcessToken(CURRENT_PROCESS, TOKEN_QUERY, out)) {
    throw win32Error(kernel32().GetLastError(), "open the process token for", "current user");
  }
  const token = adopt(out[0]);
  try {
    // TOKEN_OWNER { PSID Owner }
    const info = tokenInformation(token, TOKEN_OWNER, "current user");
    return ownerSid = sidString(new DataView(info.buffer).getBigUint64(0, true), "current user");
  } finally {
    closeHandle(token);
  }
}

/**
 * `RevertToSelf`, or end the process: a thread left running as the client would act with the
 * client's rights (or lack of them) from then on.
 */
function revertOrDie(): void {
  if (advapi32().RevertToSelf()) return;
  const error = kernel32().GetLastError();
  try {
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        `namedpipe: RevertToSelf failed (${error}) after reading a pipe client's identity; ` +
          "terminating the process rather than go on running as the client\n",
      ),
    );
  } finally {
    kernel32().TerminateProcess(CURRENT_PROCESS, 0xC000_0022); // STATUS_ACCESS_DENIED
  }
}

/**
 * The client of a connected server instance, or `null` when its token cannot be read (an anonymous
 * client, or a client already gone).
 * @param handle the server end, connected
 * @param pid the client's process id, already read
 */
export function clientIdentity(handle: Handle, pid: number, path: string): PeerIdentity | null {
  const k = kernel32();
  const a = advapi32();
  const out = new BigUint64Array(1);
  let opened = false;
  try {
    if (a.ImpersonateNamedPipeClient(handle)) {
      // OpenAsSelf: the access check uses our own token, so an identification-level token opens too.
      opened = a.OpenThreadToken(CURRENT_THREAD, TOKEN_QUERY, 1, out) !== 0;
    }
  } finally {
    revertOrDie();
  }
  if (!opened) return null;
  const token = adopt(out[0]);
  try {
    const session = new Uint32Array(1);
    const sessionId = k.GetNamedPipeClientSessionId(handle, session) ? session[0] : undefined;
    return { pid, sessionId, ...describeToken(token, path) };
  } catch {
    return null;
  } finally {
    closeHandle(token);
  }
}

/**
 * The server behind a client's handle: its pid and session, and the pipe's owner as the user (the
 * server process's user when the descriptor has no owner; a user with no SID when neither is known,
 * which {@linkcode checkServer} refuses).
 * @throws when the descriptor cannot be read: a client that cannot tell who serves must not trust it
 */
export function serverIdentity(handle: Handle, path: string): PeerIdentity {
  const k = kernel32();
  const a = advapi32();
  const number = new Uint32Array(1);
  const pid = k.GetNamedPipeServerProcessId(handle, number) ? number[0] : 0;
  const sessionId = k.GetNamedPipeServerSessionId(handle, number) ? number[0] : undefined;
  const owner = new BigUint64Array(1);
  const sd = new BigUint64Array(1);
  const error = a.GetSecurityInfo(
    handle,
    SE_KERNEL_OBJECT,
    OWNER_SECURITY_INFORMATION,
    owner,
    null,
    null,
    null,
    sd,
  );
  if (error !== 0) throw win32Error(error, "read the owner of", path);
  try {
    if (owner[0] !== 0n) {
      const sid = sidString(owner[0], path);
      return { pid, sessionId, user: { name: accountName(owner[0], sid), sid }, groups: [] };
    }
  } finally {
    k.LocalFree(sd[0]);
  }
  // No owner in the descriptor (Wine gives none to pipes created without one): the server
  // process's user instead, when we may query it.
  return { pid, sessionId, user: processUser(pid) ?? { name: "an unknown user" }, groups: [] };
}

/** The user of process `pid` (its token's `TokenUser`), or undefined if it cannot be read. */
function processUser(pid: number): PeerUser | undefined {
  const k = kernel32();
  const h = pid ? k.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) : 0n;
  if (!isValid(h)) return undefined;
  const process = adopt(h);
  try {
    const out = new BigUint64Array(1);
    if (!advapi32().OpenProcessToken(process, TOKEN_QUERY, out)) return undefined;
    const token = adopt(out[0]);
    try {
      return describeToken(token, `process ${pid}`).user;
    } finally {
      closeHandle(token);
    }
  } catch {
    return undefined;
  } finally {
    closeHandle(process);
  }
}

/** An account found by name or SID. */
export interface Account {
  sid: string;
  /** `DOMAIN\name`, or the SID when it maps to no name. */
  name: string;
  /** Whether it is a group (or alias, or well-known group) rather than a user. */
  group: boolean;
}

/**
 * Resolve `NAME`, `DOMAIN\NAME` (`LookupAccountNameW`) or a SID string (`S-1-…`).
 * @throws {Deno.errors.NotFound} when no account has that name
 */
export function lookupAccount(name: string, what: string): Account {
  const k = kernel32();
  const a = advapi32();
  if (/^S-1-[\d-]+$/i.test(name)) {
    const out = new BigUint64Array(1);
    if (!a.ConvertStringSidToSidW(wide(name), out)) {
      throw pipeError(TypeError, what, name, `invalid SID "${name}"`, k.GetLastError());
    }
    try {
      const sid = sidString(out[0], name);
      return { sid, name: accountName(out[0], sid), group: false };
    } finally {
      k.LocalFree(out[0]);
    }
  }
  let sidSize = 68, domainSize = 256; // SECURITY_MAX_SID_SIZE
  for (let attempt = 0; attempt < 2; attempt++) {
    const sid = new Uint8Array(new ArrayBuffer(sidSize));
    const domain = new Uint16Array(domainSize);
    const sizes = new Uint32Array([sidSize, domainSize]);
    const use = new Uint32Array(1);
    if (
      a.LookupAccountNameW(null, wide(name), sid, sizes.subarray(0, 1), domain, sizes.subarray(1, 2), use)
    ) {
      const text = sidString(addressOf(sid), name);
      return { sid: text, name: accountName(addressOf(sid), text), group: GROUP_USES.has(use[0]) };
    }
    const error = k.GetLastError();
    if (error === ERROR_NONE_MAPPED) {
      throw pipeError(Deno.errors.NotFound, what, name, `no account is named "${name}"`, error);
    }
    if (error !== ERROR_INSUFFICIENT_BUFFER) throw win32Error(error, what, name);
    sidSize = Math.max(sizes[0], sidSize);
    domainSize = Math.max(sizes[1], domainSize * 2);
  }
  throw pipeError(Deno.errors.NotFound, what, name, `no account is named "${name}"`, ERROR_NONE_MAPPED);
}

/**
 * A client's check of who serves the name, before it sends anything: the pipe's owner must be this
 * user (`userSid`, or the owner this process's objects get by default), SYSTEM, Administrators, or
 * `options.serverUser`, unless `options.trustAnyServer`.
 * @throws {Deno.errors.PermissionDenied} naming the owner when it is none of them
 */
export function checkServer(
  peer: PeerIdentity,
  options: ConnectOptions,
  userSid: string,
  path: string,
): void {
  if (options.trustAnyServer) return;
  const trusted = new Set([userSid, defaultOwnerSid(), SYSTEM_SID, ADMINISTRATORS_SID]);
  if (options.serverUser !== undefined) {
    trusted.add(lookupAccount(options.serverUser, "trust the server user").sid);
  }
  if (peer.user.sid !== undefined && trusted.has(peer.user.sid)) return;
  const who = peer.user.name === peer.user.sid ? peer.user.name : `${peer.user.name} (${peer.user.sid})`;
  const expected = options.serverUser === undefined
    ? "this user, SYSTEM or Administrators"
    : `"${options.serverUser}", this user, SYSTEM or Administrators`;
  throw pipeError(
    Deno.errors.PermissionDenied,
    "connect to",
    path,
    `the pipe is held by ${who}, server pid ${peer.pid}, not by ${expected}: ` +
      "nothing was sent (trust it with serverUser or trustAnyServer)",
    5,
  );
}

/**
 * Open a pipe to exactly these users and groups: their SIDs in the DACL (a preset) and an
 * `authorize` that admits a client whose user SID is listed or whose token has a listed group
 * enabled. The owner keeps its ACE (it creates the instances) but is refused at connect unless listed.
 * @throws {Deno.errors.NotFound} for a name no account has
 */
export function allowOnly(list: AllowList): Access {
  const users = (list.users ?? []).map((name) => lookupAccount(name, "resolve the user").sid);
  const groups = (list.groups ?? []).map((name) => lookupAccount(name, "resolve the group").sid);
  if (users.length + groups.length === 0) {
    throw pipeError(TypeError, "allow", "", "name at least one user or group");
  }
  const userSet = new Set(users), groupSet = new Set(groups);
  return {
    security: { allow: [...users, ...groups] },
    authorize: (peer) =>
      userSet.has(peer.user.sid ?? "") || peer.groups.some((group) => groupSet.has(group.sid ?? "")),
  };
}
