/**
 * The Node.js peer of `deno task bench`: `net.createServer` on a Unix socket (Linux) or on
 * `\\.\pipe\NAME` (Node.js for Windows). Both are byte streams, so the round trip is framed by
 * length: every 64 bytes received are answered with the 58-byte default response (reply), or
 * every chunk is written back as it arrives (echo). The same script is the Deno `node:net` peer.
 *
 *   node node_server.mjs PATH reply|echo
 *   deno run -A node_server.mjs PATH reply|echo
 *
 * @module
 */
import net from "node:net";
import fs from "node:fs";

const [path, mode] = process.argv.slice(2);
const REQUEST = 64;
const RESPONSE = Buffer.from("Default response from server\0", "utf16le"); // 58 bytes

if (process.platform !== "win32") fs.rmSync(path, { force: true });
const server = net.createServer((socket) => {
  let pending = 0; // bytes of a request not yet answered
  socket.on("data", (chunk) => {
    if (mode === "echo") return void socket.write(chunk);
    pending += chunk.length;
    while (pending >= REQUEST) {
      pending -= REQUEST;
      socket.write(RESPONSE);
    }
  });
  socket.on("error", () => socket.destroy());
});
server.listen(path, () => console.log("ready"));
