/**
 * The `namedpipe` command run for real, for the CLI tests: `deno run -A main.ts ...` in a child
 * process, natively and under Wine (where `Deno.execPath()` is Windows `deno.exe`), its output
 * collected as it arrives. Every wait is bounded.
 *
 * @module
 */
import { within } from "./_pipes.ts";

/** main.ts as a path for `deno run`: `/work/main/main.ts`, or `Z:/work/main/main.ts` on Windows. */
export const MAIN = decodeURIComponent(new URL("../main.ts", import.meta.url).pathname).replace(
  /^\/([A-Za-z]:)/,
  "$1",
);
/** Deno and Wine start slowly; nothing here should take this long unless it hangs. */
export const WAIT_MS = 30_000;

/** A running `namedpipe` child, its stdout and stderr collected as they arrive. */
export class Cli implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  stdout = "";
  stderr = "";
  #exited = false;
  #pumps: Promise<void>;
  #stdin?: WritableStreamDefaultWriter<Uint8Array>;

  constructor(args: string[], options: { stdin?: boolean; denoFlags?: string[] } = {}) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...(options.denoFlags ?? ["-A"]), MAIN, ...args],
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    if (options.stdin) this.#stdin = this.child.stdin.getWriter();
    const pump = async (stream: ReadableStream<Uint8Array>, into: "stdout" | "stderr") => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) this[into] += text;
    };
    this.#pumps = Promise.all([pump(this.child.stdout, "stdout"), pump(this.child.stderr, "stderr")])
      .then(() => {});
    this.child.status.then(() => this.#exited = true);
  }

  /** Wait until `stream` contains `text` (or matches it); fails early if the process exits first. */
  async waitFor(text: string | RegExp, stream: "stdout" | "stderr" = "stderr"): Promise<void> {
    const found = () => typeof text === "string" ? this[stream].includes(text) : text.test(this[stream]);
    const deadline = Date.now() + WAIT_MS;
    while (!found()) {
      if (this.#exited) {
        await this.#pumps;
        if (found()) return;
        throw new Error(`Exited before printing ${String(text)}:\n${this.stderr}`);
      }
      if (Date.now() > deadline) throw new Error(`No ${String(text)} in ${WAIT_MS} ms:\n${this.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async write(text: string | Uint8Array): Promise<void> {
    await this.#stdin!.write(typeof text === "string" ? new TextEncoder().encode(text) : text);
  }

  async closeStdin(): Promise<void> {
    await this.#stdin?.close();
    this.#stdin = undefined;
  }

  /** Wait for the exit code and all output. */
  async finish(): Promise<{ code: number; stdout: string; stderr: string }> {
    await this.closeStdin();
    const { code } = await within(this.child.status, WAIT_MS, `namedpipe to exit:\n${this.stderr}`);
    await within(this.#pumps, WAIT_MS, "output to end");
    return { code, stdout: this.stdout, stderr: this.stderr };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#stdin?.abort().catch(() => {});
    if (!this.#exited) {
      try {
        this.child.kill("SIGKILL");
      } catch { /* already gone */ }
    }
    await this.child.status;
    await this.#pumps.catch(() => {});
  }
}

/** Run the command to completion. */
export async function namedpipe(args: string[], stdin?: string) {
  await using cli = new Cli(args, { stdin: stdin !== undefined });
  if (stdin !== undefined) await cli.write(stdin);
  return await cli.finish();
}
