/**
 * Security presets on Windows: `{ allow, deny }` of named principals → an SDDL security descriptor
 * with a protected DACL in canonical order (every deny entry before every allow entry: an access
 * check stops at the first entries that grant the whole request, so a deny placed after them would
 * never be reached).
 *
 * `O:<UserSID>D:P(D;;GA;;;NU)(D;;GA;;;<deny>…)(A;;GA;;;<UserSID>)(A;;GA;;;SY)(A;;0x12019b;;;<allow>…)`
 *
 * - Network logons are always denied (as in the default descriptor).
 * - The current user owns the pipe and always keeps full access: creating the server's further
 *   instances needs it. Refuse the user at connect with `authorize` if it must not be a client.
 * - SYSTEM, when listed, gets full access like in the default; every other principal gets
 *   read/write without `FILE_CREATE_PIPE_INSTANCE` (`0x12019B`): it may connect but not create a
 *   rogue instance of the name.
 *
 * @module
 */
import { pipeError } from "../errors.ts";
import type { SecurityPreset } from "../types.ts";
import { lookupAccount } from "./identity.ts";

/** Read/write, no FILE_CREATE_PIPE_INSTANCE (0x4): FILE_GENERIC_READ | FILE_GENERIC_WRITE & ~0x4. */
export const CONNECT_ONLY = "0x12019b";

/** The well-known principals presets name, by their SIDs (`user` is the caller's). */
const WELL_KNOWN: Record<string, string> = {
  system: "S-1-5-18",
  administrators: "S-1-5-32-544",
  "authenticated-users": "S-1-5-11",
  everyone: "S-1-1-0",
  network: "S-1-5-2",
};

/**
 * The SID a preset entry names.
 * @throws {Deno.errors.NotFound} for an account name nobody has
 */
export function principalSid(entry: string, user: string, path: string): string {
  if (typeof entry !== "string" || entry === "") {
    throw pipeError(TypeError, "create named pipe", path, "security entries must be non-empty strings");
  }
  if (entry.toLowerCase() === "user") return user;
  const known = WELL_KNOWN[entry.toLowerCase()];
  if (known) return known;
  return lookupAccount(entry, "resolve the account").sid;
}

/**
 * The SDDL of a preset, deny entries first.
 * @param user the current user's SID: the owner
 */
export function presetSddl(preset: SecurityPreset, user: string, path: string): string {
  if (!preset || !Array.isArray(preset.allow)) {
    throw pipeError(TypeError, "create named pipe", path, "security.allow must be an array of names");
  }
  const deny = ["S-1-5-2", ...(preset.deny ?? []).map((entry) => principalSid(entry, user, path))];
  const allow = [user, ...preset.allow.map((entry) => principalSid(entry, user, path))];
  const unique = (sids: string[]) => [...new Set(sids)];
  const denied = new Set(deny);
  const aces = [
    ...unique(deny).map((sid) => `(D;;GA;;;${sid})`),
    // A principal both allowed and denied stays denied; leaving out its allow keeps that obvious.
    ...unique(allow).filter((sid) => !denied.has(sid) || sid === user).map((sid) =>
      `(A;;${sid === user || sid === "S-1-5-18" ? "GA" : CONNECT_ONLY};;;${sid})`
    ),
  ];
  return `O:${user}D:P${aces.join("")}`;
}
