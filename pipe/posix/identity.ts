/**
 * Who is on the other end of a Unix socket: `SO_PEERCRED` (the pid, uid and gid the kernel recorded
 * when the client called `connect`, or when the server called `listen`), the user's name from the
 * password database (`getpwuid_r`) and the uid's groups from the group database (`getgrouplist`).
 *
 * When: on the server side as the connection is accepted, before `accept()` returns it; on the
 * client side right after `connect`, before anything is sent. Names and groups are cached per uid
 * for {@linkcode CACHE_MS}: the databases are files read on each lookup.
 *
 * @module
 */
import { cString, ERANGE, getenv, GROUP, libc, PASSWD, SO_PEERCRED, SOL_SOCKET } from "../../ffi/libc.ts";
import { pipeError } from "../errors.ts";
import type { Access, AllowList, ConnectOptions, PeerGroup, PeerIdentity } from "../types.ts";

/** How long a uid's name and groups are reused before the databases are read again. */
export const CACHE_MS = 30_000;

const credentials = new Uint8Array(12);
const credentialsLength = new Uint8Array(4);

/** `SO_PEERCRED`: `struct ucred { pid_t pid; uid_t uid; gid_t gid }`, or null if unavailable. */
export function peerCredentials(fd: number): { pid: number; uid: number; gid: number } | null {
  new DataView(credentialsLength.buffer).setUint32(0, 12, true);
  if (libc().getsockopt(fd, SOL_SOCKET, SO_PEERCRED, credentials, credentialsLength) < 0) return null;
  const view = new DataView(credentials.buffer);
  return { pid: view.getInt32(0, true), uid: view.getUint32(4, true), gid: view.getUint32(8, true) };
}

/** A password or group database entry: its name and ids. */
interface Entry {
  name: string;
  id: number;
  gid: number;
}

/**
 * One `get*_r` call with a buffer grown on `ERANGE`; null when there is no such entry.
 * @param layout where the name and ids sit in the returned struct
 */
function lookup(
  call: (record: Uint8Array, buffer: Uint8Array, size: bigint, result: BigUint64Array) => number,
  layout: { size: number; name: number; id: number; gid: number },
): Entry | null {
  for (let size = 1024; size <= 1 << 20; size *= 4) {
    const record = new Uint8Array(new ArrayBuffer(layout.size));
    const buffer = new Uint8Array(new ArrayBuffer(size));
    const result = new BigUint64Array(1);
    const code = call(record, buffer, BigInt(size), result);
    if (code === ERANGE) continue;
    if (code !== 0 || result[0] === 0n) return null;
    const view = new DataView(record.buffer);
    const namePointer = Deno.UnsafePointer.create(view.getBigUint64(layout.name, true));
    return {
      name: namePointer ? Deno.UnsafePointerView.getCString(namePointer) : "",
      id: view.getUint32(layout.id, true),
      gid: view.getUint32(layout.gid, true),
    };
  }
  return null;
}

const USER_LAYOUT = { size: PASSWD.size, name: PASSWD.name, id: PASSWD.uid, gid: PASSWD.gid };
const GROUP_LAYOUT = { size: GROUP.size, name: GROUP.name, id: GROUP.gid, gid: GROUP.gid };

function userById(uid: number): Entry | null {
  return lookup((r, b, n, out) => libc().getpwuid_r(uid, r, b, n, out), USER_LAYOUT);
}

function userByName(name: string): Entry | null {
  const c = cString(name);
  return lookup((r, b, n, out) => libc().getpwnam_r(c, r, b, n, out), USER_LAYOUT);
}

function groupByName(name: string): Entry | null {
  const c = cString(name);
  return lookup((r, b, n, out) => libc().getgrnam_r(c, r, b, n, out), GROUP_LAYOUT);
}

function groupById(gid: number): Entry | null {
  return lookup((r, b, n, out) => libc().getgrgid_r(gid, r, b, n, out), GROUP_LAYOUT);
}

/** The primary and supplementary group ids of `user` (`getgrouplist`). */
function groupList(user: string, gid: number): number[] {
  const name = cString(user);
  let room = 64;
  for (let attempt = 0; attempt < 4; attempt++) {
    const groups = new Uint32Array(room);
    const count = new Int32Array([room]);
    if (libc().getgrouplist(name, gid, groups, count) >= 0) return [...groups.subarray(0, count[0])];
    room = Math.max(count[0], room * 2);
  }
  return [gid];
}

interface Account {
  name: string;
  groups: PeerGroup[];
  at: number;
}
const accounts = new Map<string, Account>();

/** Name and groups of uid (with its primary gid), cached. */
function account(uid: number, gid: number): Account {
  const key = `${uid}:${gid}`;
  const now = performance.now();
  const cached = accounts.get(key);
  if (cached && now - cached.at < CACHE_MS) return cached;
  const entry = userById(uid);
  const gids = entry ? groupList(entry.name, gid) : [gid];
  if (!gids.includes(gid)) gids.unshift(gid);
  const fresh = { name: entry?.name ?? String(uid), groups: gids.map((g) => ({ gid: g })), at: now };
  accounts.set(key, fresh);
  return fresh;
}

/** The identity of the peer of a connected socket, or null when the kernel cannot tell. */
export function peerIdentity(fd: number): PeerIdentity | null {
  const cred = peerCredentials(fd);
  if (!cred) return null;
  const { name, groups } = account(cred.uid, cred.gid);
  return { pid: cred.pid, user: { name, uid: cred.uid, gid: cred.gid }, groups };
}

/** This process's effective uid. */
export function effectiveUid(): number {
  return libc().geteuid();
}

/**
 * A user by name or numeric uid.
 * @throws {Deno.errors.NotFound} when no user has that name
 */
export function lookupUser(name: string, what: string): { uid: number; gid: number; name: string } {
  if (/^\d+$/.test(name)) {
    const uid = Number(name);
    const entry = userById(uid);
    return { uid, gid: entry?.gid ?? uid, name: entry?.name ?? name };
  }
  const entry = userByName(name);
  if (!entry) throw pipeError(Deno.errors.NotFound, what, name, `no user is named "${name}"`, 2);
  return { uid: entry.id, gid: entry.gid, name: entry.name };
}

/**
 * A group by name or numeric gid.
 * @throws {Deno.errors.NotFound} when no group has that name
 */
export function lookupGroup(name: string, what: string): { gid: number; name: string } {
  if (/^\d+$/.test(name)) {
    const gid = Number(name);
    return { gid, name: groupById(gid)?.name ?? name };
  }
  const entry = groupByName(name);
  if (!entry) throw pipeError(Deno.errors.NotFound, what, name, `no group is named "${name}"`, 2);
  return { gid: entry.id, name: entry.name };
}

/** The name of this process's user (for messages). */
export function currentUserName(): string {
  const uid = effectiveUid();
  return userById(uid)?.name ?? getenv("USER") ?? String(uid);
}

/**
 * A client's check of who serves the name, before it sends anything: the server's uid must be ours,
 * root's, or `options.serverUser`'s, unless `options.trustAnyServer`.
 * @throws {Deno.errors.PermissionDenied} naming the server's user when it is none of them
 */
export function checkServer(peer: PeerIdentity | null, options: ConnectOptions, path: string): void {
  if (options.trustAnyServer) return;
  const uid = peer?.user.uid;
  const trusted = new Set([effectiveUid(), 0]);
  if (options.serverUser !== undefined) {
    trusted.add(lookupUser(options.serverUser, "trust the server user").uid);
  }
  if (uid !== undefined && trusted.has(uid)) return;
  const who = peer ? `"${peer.user.name}" (uid ${uid}), server pid ${peer.pid}` : "an unknown user";
  const expected = options.serverUser === undefined
    ? "this user or root"
    : `"${options.serverUser}", this user or root`;
  throw pipeError(
    Deno.errors.PermissionDenied,
    "connect to",
    path,
    `the socket is served by ${who}, not by ${expected}: nothing was sent ` +
      "(trust it with serverUser or trustAnyServer)",
    13,
  );
}

/**
 * Open a socket to exactly these users and groups: the narrowest mode that lets them reach it (0600
 * when only this user is listed, one group's 0660 — 0060 without this user — or 0666 when another
 * user or several groups are), and an `authorize` that admits a client whose uid is listed or whose
 * groups (primary and supplementary, from the group database) include a listed one. This user is
 * refused at connect too unless listed.
 * @throws {Deno.errors.NotFound} for a name no user or group has
 */
export function allowOnly(list: AllowList): Access {
  const users = (list.users ?? []).map((name) => lookupUser(name, "resolve the user").uid);
  const groups = (list.groups ?? []).map((name) => lookupGroup(name, "resolve the group").gid);
  if (users.length + groups.length === 0) {
    throw pipeError(TypeError, "allow", "", "name at least one user or group");
  }
  const userSet = new Set(users), groupSet = new Set(groups);
  const self = effectiveUid();
  const others = users.some((uid) => uid !== self) || groupSet.size > 1;
  // The owner always keeps its own rw bits: the kernel checks only the owner bits for the file's
  // owner (group bits never apply to it), and the owner could chmod its own socket anyway. Refusing
  // the owner when it is not listed is the authorize hook's job, at connect.
  const allow = others ? ["everyone"] : ["user", ...[...groupSet].map(String)];
  return {
    security: { allow },
    authorize: (peer) =>
      userSet.has(peer.user.uid ?? -1) || peer.groups.some((group) => groupSet.has(group.gid ?? -1)),
  };
}
