/**
 * The canonical order of a DACL, checked on its SDDL text: every explicit access-denied entry before
 * every explicit access-allowed entry, and inherited entries (flag `ID`) after all explicit ones.
 *
 * Why it matters: an access check walks the ACEs in order and grants as soon as the allows seen so far
 * cover the request, so a deny placed after an allow for the same caller is never reached
 * (`D:P(A;;GA;;;<you>)(D;;GA;;;NU)` admits your own network logon). Every descriptor namedpipe builds
 * is read back from the pipe (`GetSecurityInfo`) and checked with {@linkcode assertCanonicalDacl};
 * a caller's `{ sddl }` is held to the same rule.
 *
 * Pure string work: no Win32 call, so it is tested on every platform.
 *
 * @module
 */
import { pipeError } from "../errors.ts";

/** One ACE of a DACL, as written in SDDL. */
export interface SddlAce {
  /** The whole entry, parentheses included: `(D;;GA;;;NU)`. */
  text: string;
  /** `A`, `D`, `OA`, `OD`, `XA`, `XD`, `ZA`, … */
  type: string;
  /** True for an inherited entry (`ID` among its flags). */
  inherited: boolean;
}

const DENY = new Set(["D", "OD", "XD"]);
const ALLOW = new Set(["A", "OA", "XA", "ZA"]);

/**
 * The entries of the DACL in `sddl` (its `D:` part), in order; empty for a NULL or empty DACL or when
 * there is no `D:` part.
 */
export function daclEntries(sddl: string): SddlAce[] {
  // Sections are `O:`, `G:`, `D:`, `S:`; a colon at parenthesis depth 0 only ever ends a section letter
  // (SIDs and aliases have none), so the letter before each such colon starts a section.
  const starts: { letter: string; at: number }[] = [];
  let depth = 0;
  for (let i = 0; i < sddl.length; i++) {
    const c = sddl[i];
    if (c === "(") depth++;
    else if (c === ")") depth = Math.max(0, depth - 1);
    else if (c === ":" && depth === 0 && i > 0) starts.push({ letter: sddl[i - 1], at: i + 1 });
  }
  const index = starts.findIndex((s) => s.letter === "D");
  if (index < 0) return [];
  const from = starts[index].at;
  const to = index + 1 < starts.length ? starts[index + 1].at - 2 : sddl.length;
  const entries: SddlAce[] = [];
  depth = 0;
  let open = -1;
  for (let i = from; i < to; i++) {
    const c = sddl[i];
    if (c === "(") {
      if (depth++ === 0) open = i;
    } else if (c === ")" && depth > 0 && --depth === 0) {
      const text = sddl.slice(open, i + 1);
      const [type = "", flags = ""] = text.slice(1, -1).split(";", 2);
      const pairs: string[] = flags.toUpperCase().match(/.{1,2}/g) ?? [];
      entries.push({ text, type: type.toUpperCase(), inherited: pairs.includes("ID") });
    }
  }
  return entries;
}

/**
 * Why the DACL in `sddl` is not in canonical order, or `undefined` when it is (also for a NULL or
 * empty DACL).
 * @example
 * ```ts
 * daclOrderProblem("D:P(A;;GA;;;SY)(D;;GA;;;NU)");
 * // 'deny entry (D;;GA;;;NU) comes after allow entry (A;;GA;;;SY)'
 * ```
 */
export function daclOrderProblem(sddl: string): string | undefined {
  let firstAllow: SddlAce | undefined;
  let firstInherited: SddlAce | undefined;
  for (const ace of daclEntries(sddl)) {
    if (ace.inherited) {
      firstInherited ??= ace;
      continue;
    }
    if (firstInherited) {
      return `explicit entry ${ace.text} comes after inherited entry ${firstInherited.text}`;
    }
    if (ALLOW.has(ace.type)) firstAllow ??= ace;
    else if (DENY.has(ace.type) && firstAllow) {
      return `deny entry ${ace.text} comes after allow entry ${firstAllow.text}`;
    }
  }
  return undefined;
}

/**
 * Throw unless the DACL in `sddl` is in canonical order (see the module doc).
 * @param sddl the descriptor, best as read back from the object
 * @param path the pipe, named in the error
 * @throws {TypeError} `Cannot create named pipe "…": the DACL is not in canonical order: deny entry …`
 */
export function assertCanonicalDacl(sddl: string, path: string): void {
  const problem = daclOrderProblem(sddl);
  if (problem) {
    throw pipeError(
      TypeError,
      "create named pipe",
      path,
      `the DACL is not in canonical order: ${problem} (access checks stop at the first allows that ` +
        `cover a request, so deny entries must come first)`,
    );
  }
}
