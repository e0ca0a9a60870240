/**
 * Pipe name patterns for `listPipes()`: `*` matches any run of characters, `?` one character,
 * everything else itself.
 *
 * ```ts
 * import { globMatcher } from "./glob.ts";
 *
 * globMatcher("docker*", true)("Docker_Engine"); // true: Windows names ignore case
 * ```
 *
 * @module
 */

/**
 * A predicate matching whole names against `pattern`.
 * @param pattern the glob; undefined matches everything
 * @param ignoreCase whether case is ignored (Windows pipe names)
 * @returns the predicate
 */
export function globMatcher(pattern: string | undefined, ignoreCase: boolean): (name: string) => boolean {
  if (pattern === undefined) return () => true;
  const source = pattern.replace(/[.+^${}()|[\]\\*?]/g, (c) => c === "*" ? ".*" : c === "?" ? "." : `\\${c}`);
  const regexp = new RegExp(`^${source}$`, ignoreCase ? "is" : "s");
  return (name) => regexp.test(name);
}

/** Whether `pattern` names exactly one pipe (it has no `*` or `?`). */
export function isExactName(pattern: string): boolean {
  return !/[*?]/.test(pattern);
}
