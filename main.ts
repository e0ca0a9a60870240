/**
 * The `namedpipe` command: `serve` runs the HelloWorld named pipe server, `send` talks to one.
 * Run `deno task serve`, `deno task send`, or the compiled `namedpipe.exe`; `--help` has examples
 * and the exit codes (see `cli/exit_codes.ts`).
 *
 * ```sh
 * deno run --allow-ffi main.ts serve --once &
 * deno run --allow-ffi main.ts send   # prints: Default response from server
 * ```
 *
 * @module
 */
import { run } from "./cli/program.ts";

/**
 * Run the command with the process's arguments and exit with its code.
 * @param args the arguments after the program name; default `Deno.args`
 */
export async function main(args: string[] = Deno.args): Promise<never> {
  Deno.exit(await run(args));
}

if (import.meta.main) await main();
