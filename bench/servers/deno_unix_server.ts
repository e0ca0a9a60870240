/**
 * The `Deno.listen` peer of `deno task bench`: a Unix stream socket, framed by length like the
 * Node peer: every 64 bytes received are answered with the 58-byte default response (reply), or
 * every chunk is written back as it arrives (echo).
 *
 *   deno run -A bench/servers/deno_unix_server.ts PATH reply|echo
 *
 * @module
 */
const REQUEST = 64;
// UTF-16LE "Default response from server" with its NUL: 58 bytes.
const RESPONSE = new Uint8Array([..."Default response from server\0"].flatMap((c) => [c.charCodeAt(0), 0]));

async function writeAll(conn: Deno.Conn, bytes: Uint8Array) {
  for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
}

async function serve(conn: Deno.Conn, echo: boolean) {
  const buf = new Uint8Array(65536);
  let pending = 0; // bytes of a request not yet answered
  try {
    for (let n; (n = await conn.read(buf)) !== null;) {
      if (echo) {
        await writeAll(conn, buf.subarray(0, n));
        continue;
      }
      for (pending += n; pending >= REQUEST; pending -= REQUEST) await writeAll(conn, RESPONSE);
    }
  } catch {
    // The client left mid-write: nothing to do.
  } finally {
    conn.close();
  }
}

async function main([path, mode]: string[]) {
  await Deno.remove(path).catch(() => {});
  const listener = Deno.listen({ transport: "unix", path });
  console.log("ready");
  for await (const conn of listener) serve(conn, mode === "echo");
}

if (import.meta.main) await main(Deno.args);
