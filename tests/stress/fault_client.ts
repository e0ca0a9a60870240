/**
 * A client process that `run.ts` kills with SIGKILL (`kill -9`; TerminateProcess under Wine) once
 * its fault is in place, so the server meets a peer that vanishes without closing anything.
 *
 * ```sh
 * deno run -A tests/stress/fault_client.ts KIND NAME BUFFER_SIZE MAX_MESSAGE_SIZE READY_FILE
 * ```
 * Kinds:
 * - `idle`: three connections that never send.
 * - `no-read`: sends without reading until a write stalls (the pipe and the server's reply are full).
 * - `mid-message`: large messages back to back, replies read: the kill lands inside a message or a
 *   reply (on Windows a message bigger than the pipe buffer is in flight for a while).
 * - `mid-reply`: one maximum-size message after another, never read: the server is blocked in the
 *   middle of writing its reply when the kill comes.
 * - `byte-stream`: a byte-mode stream cut wherever the kill lands (half a message).
 * - `connect-storm`: connects and leaves as fast as it can, so the kill lands mid-connect.
 *
 * `READY_FILE` is created when the fault is in place. The process ends by itself after 60 s.
 *
 * @module
 */
import { connect } from "../../mod.ts";
import type { PipeConn } from "../../mod.ts";
import { Random } from "./_messages.ts";

const SELF_LIMIT_MS = 60_000;
const STALL_MS = 300;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Write until one write has not completed after STALL_MS. */
async function fill(conn: PipeConn, chunk: Uint8Array): Promise<void> {
  for (let sent = 0; sent < 64 * 1024 * 1024; sent += chunk.length) {
    const written = conn.writeMessage(chunk);
    const stalled = await Promise.race([written.then(() => false), sleep(STALL_MS).then(() => true)]);
    if (stalled) {
      written.catch(() => {});
      return;
    }
  }
}

async function main(args: string[]): Promise<number> {
  const [kind, name, bufferText, maxText, readyFile] = args;
  const bufferSize = Number(bufferText);
  const maxMessageSize = Number(maxText);
  const random = new Random(Deno.pid);
  setTimeout(() => Deno.exit(4), SELF_LIMIT_MS);
  const ready = () => Deno.writeTextFileSync(readyFile, `${Deno.pid}\n`);
  const open = (mode: "message" | "byte" = "message") =>
    connect({ name: mode === "byte" ? `${name}_byte` : name, mode, timeout: 20_000 });

  switch (kind) {
    case "idle": {
      const conns = [await open(), await open(), await open("byte")];
      ready();
      await sleep(SELF_LIMIT_MS);
      await Promise.all(conns.map((conn) => conn.close()));
      return 0;
    }
    case "no-read": {
      const conn = await open();
      await fill(conn, random.bytes(4 * bufferSize));
      ready();
      await sleep(SELF_LIMIT_MS);
      return 0;
    }
    case "mid-reply": {
      const conn = await open();
      await fill(conn, random.bytes(maxMessageSize));
      ready();
      await sleep(SELF_LIMIT_MS);
      return 0;
    }
    case "connect-storm": {
      let first = true;
      for (const end = Date.now() + SELF_LIMIT_MS; Date.now() < end;) {
        const conn = await open(random.chance(0.3) ? "byte" : "message");
        if (random.chance(0.5)) await conn.writeMessage(random.bytes(random.int(0, 100)));
        await conn.close();
        if (first) ready();
        first = false;
      }
      return 0;
    }
    case "mid-message":
    case "byte-stream": {
      const mode = kind === "byte-stream" ? "byte" : "message";
      const conn = await open(mode);
      const message = random.bytes(kind === "byte-stream" ? 16 * bufferSize : maxMessageSize);
      // Replies are drained, so the writes never stall: the kill lands inside a transfer.
      const drain = (async () => {
        while (await conn.readMessage() !== null) { /* drain */ }
      })().catch(() => {});
      await conn.writeMessage(message);
      ready();
      for (const end = Date.now() + SELF_LIMIT_MS; Date.now() < end;) await conn.writeMessage(message);
      await conn.close();
      await drain;
      return 0;
    }
  }
  console.error(`Unknown fault kind "${kind}"`);
  return 2;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
