/**
 * The servers `deno task bench` compares, and how each is started and framed. Message-mode peers
 * answer each 64-byte message with one 58-byte message; byte-stream peers (Node `net`,
 * `Deno.listen`) answer every 64 bytes received with 58 bytes, and the client reads until all 58
 * arrived. In echo mode (the 64 KiB throughput figure) every peer sends back what it received.
 *
 * @module
 */
import { winePath } from "../tests/wine/windows_deno.ts";
import type { LinuxTools, WineTools } from "./setup.ts";

export type Platform = "linux" | "wine";
export type ServerMode = "reply" | "echo";

/** One server in the comparison. */
export interface Peer {
  id: string;
  label: string;
  platform: Platform;
  /** The native C server: every ratio is to it. */
  baseline: boolean;
  /** The client uses message mode (SOCK_SEQPACKET / PIPE_READMODE_MESSAGE). */
  message: boolean;
  /** The server's command line for an address (socket path or `\\.\pipe\NAME`) and a mode. */
  argv(address: string, mode: ServerMode): string[];
  /**
   * Known to serve only a few clients at once: also measured with {@linkcode FEW_CLIENTS} clients
   * (reported under the table), and with `--quick` only with one client, since every stalled figure
   * costs the load generator's stall bound.
   */
  fewClients?: boolean;
  /**
   * Measured on the 64 KiB echo figure only: another way of writing a server with the same library,
   * which changes only that figure (namedpipe's `read(buffer)` echo beside its default row).
   */
  echoOnly?: boolean;
}

/** The extra client count for peers with `fewClients`: one more than Deno's four pipe instances. */
export const FEW_CLIENTS = 5;

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const script = (name: string) => `${ROOT}/bench/servers/${name}`;

/** The Linux peers; a missing `node` drops only its own peer. */
export function linuxPeers(tools: LinuxTools): Peer[] {
  const deno = Deno.execPath();
  const peers: Peer[] = [
    {
      id: "linux-c",
      label: "C `SOCK_SEQPACKET`, epoll",
      platform: "linux",
      baseline: true,
      message: true,
      argv: (address, mode) => [tools.seqpacketServer, address, mode],
    },
    {
      id: "linux-namedpipe",
      label: "namedpipe (Linux backend)",
      platform: "linux",
      baseline: false,
      message: true,
      argv: (address, mode) => [deno, "run", "-A", script("namedpipe_server.ts"), address, mode],
    },
    {
      // Not the default row: the echo written with read(buffer), as pipe/types.ts recommends for a
      // server that does not keep what it reads (no fresh array per message).
      id: "linux-namedpipe-read",
      label: "namedpipe, echo by `read(buffer)` (not the default)",
      platform: "linux",
      baseline: false,
      message: true,
      echoOnly: true,
      argv: (address) => [deno, "run", "-A", script("namedpipe_server.ts"), address, "echo-read"],
    },
    {
      id: "linux-deno",
      label: "Deno `Deno.listen`, Unix socket (stream)",
      platform: "linux",
      baseline: false,
      message: false,
      argv: (address, mode) => [deno, "run", "-A", script("deno_unix_server.ts"), address, mode],
    },
  ];
  peers.push({
    id: "linux-deno-node",
    label: "Deno `node:net`, Unix socket (stream)",
    platform: "linux",
    baseline: false,
    message: false,
    argv: (address, mode) => [deno, "run", "-A", script("node_server.mjs"), address, mode],
  });
  if (tools.node) {
    peers.push({
      id: "linux-node",
      label: "Node `net`, Unix socket (stream)",
      platform: "linux",
      baseline: false,
      message: false,
      argv: (address, mode) => [tools.node!, script("node_server.mjs"), address, mode],
    });
  }
  return peers;
}

/** The Windows peers, run under Wine in the bench's prefix. */
export function winePeers(tools: WineTools, wine: string): Peer[] {
  return [
    {
      id: "wine-c",
      label: "C, thread per client, message mode",
      platform: "wine",
      baseline: true,
      message: true,
      argv: (address, mode) => [wine, tools.pipeServerExe, address, mode],
    },
    {
      id: "wine-c-iocp",
      label: "C, overlapped, one completion port, message mode",
      platform: "wine",
      baseline: false,
      message: true,
      argv: (address, mode) => [wine, tools.pipeIocpServerExe, address, mode],
    },
    {
      id: "wine-namedpipe",
      label: "namedpipe (Windows Deno)",
      platform: "wine",
      baseline: false,
      message: true,
      argv: (address, mode) => [
        wine,
        tools.deno.exe,
        "run",
        "-A",
        winePath(script("namedpipe_server.ts")),
        address,
        mode,
      ],
    },
    {
      id: "wine-deno-node",
      label: "Deno `node:net`, pipe (byte mode)",
      platform: "wine",
      baseline: false,
      message: false,
      fewClients: true,
      argv: (address, mode) => [
        wine,
        tools.deno.exe,
        "run",
        "-A",
        winePath(script("node_server.mjs")),
        address,
        mode,
      ],
    },
    {
      id: "wine-node",
      label: "Node.js for Windows `net`, pipe (byte mode)",
      platform: "wine",
      baseline: false,
      message: false,
      argv: (address, mode) => [wine, tools.nodeExe, winePath(script("node_server.mjs")), address, mode],
    },
  ];
}
