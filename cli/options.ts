/**
 * Parsers for option values, used by commander as `argParser`s: a bad value becomes commander's
 * "option '--count <n>' argument 'x' is invalid" with our reason, and exit code 2.
 *
 * ```ts
 * import { integerOption } from "./options.ts";
 *
 * const parseCount = integerOption(1, 1_000_000);
 * parseCount("3"); // 3
 * ```
 *
 * @module
 */
import { InvalidArgumentError } from "commander";

/**
 * A parser accepting a whole number in `[min, max]`, in decimal or with a `0x` prefix.
 * @param min smallest value accepted
 * @param max largest value accepted
 * @returns the parser for `Option.argParser`
 */
export function integerOption(min: number, max: number): (value: string) => number {
  return (value: string) => {
    const text = value.trim();
    const n = /^(?:\d+|0x[0-9a-f]+)$/i.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`Expected a whole number from ${min} to ${max}.`);
    }
    return n;
  };
}

/**
 * A parser accepting only a non-empty string.
 * @param what what the value is, for the message: `"pipe name"`
 * @returns the parser for `Option.argParser`
 */
export function nonEmptyOption(what: string): (value: string) => string {
  return (value: string) => {
    if (value.length === 0) throw new InvalidArgumentError(`The ${what} must not be empty.`);
    return value;
  };
}
