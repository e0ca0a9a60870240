/**
 * The relay's endpoints, socat-style: `KIND:ADDRESS[,OPTION=VALUE...]`, parsed into a record (this
 * file) and opened by `relay.ts`.
 *
 * | endpoint                 | what it is                                                        |
 * |--------------------------|-------------------------------------------------------------------|
 * | `-`                      | stdin and stdout                                                  |
 * | `pipe:NAME`              | connect to a named pipe (options: `mode`, `max-message-size`)     |
 * | `pipe-listen:NAME`       | serve a named pipe, one relay per client (`mode`, `max-instances`, `security`, `sddl`, `buffer-size`, `max-message-size`) |
 * | `tcp:HOST:PORT`          | connect over TCP (`[::1]:PORT` for IPv6)                          |
 * | `tcp-listen:[HOST:]PORT` | accept TCP connections; HOST defaults to 127.0.0.1 (loopback)     |
 * | `unix:PATH`              | connect to a Unix socket (`mode`)                                 |
 * | `unix-listen:PATH`       | accept on a Unix socket (`mode`, `security`)                      |
 *
 * `mode` is `byte` (default: what Docker, OpenSSH and most services use) or `message`.
 *
 * ```ts
 * import { parseEndpoint } from "./endpoint.ts";
 *
 * parseEndpoint("pipe-listen:myservice,max-instances=4"); // { kind: "pipe-listen", name: "myservice", ... }
 * ```
 *
 * @module
 */
import type { PipeMode, PipeSecurity } from "../pipe/types.ts";
import { UsageError } from "./exit_codes.ts";

/** One endpoint, as parsed. `text` is what the user wrote, for logs. */
export type Endpoint =
  | { kind: "stdio"; text: string }
  | { kind: "pipe"; text: string; name: string; mode: PipeMode; maxMessageSize?: number }
  | {
    kind: "pipe-listen";
    text: string;
    name: string;
    mode: PipeMode;
    maxInstances?: number;
    security: PipeSecurity;
    bufferSize?: number;
    maxMessageSize?: number;
  }
  | { kind: "tcp" | "tcp-listen"; text: string; host: string; port: number }
  | { kind: "unix"; text: string; path: string; mode: PipeMode }
  | { kind: "unix-listen"; text: string; path: string; mode: PipeMode; security: "user" | "everyone" };

/** Whether the endpoint accepts connections (one relay each) rather than making one. */
export function isListening(endpoint: Endpoint): boolean {
  return endpoint.kind.endsWith("-listen");
}

/** The options each kind accepts. */
const OPTIONS: Record<string, readonly string[]> = {
  "pipe": ["mode", "max-message-size"],
  "pipe-listen": ["mode", "max-instances", "security", "sddl", "buffer-size", "max-message-size"],
  "unix": ["mode"],
  "unix-listen": ["mode", "security"],
  "tcp": [],
  "tcp-listen": [],
};

/** The loopback address `tcp-listen:PORT` binds: other hosts only when named. */
export const DEFAULT_LISTEN_HOST = "127.0.0.1";

/**
 * Parse one endpoint.
 * @param text what the user wrote: `pipe:docker_engine`, `tcp-listen:2375`, `-`
 * @returns the endpoint
 * @throws {UsageError} for an unknown kind, a missing address or a bad option
 */
export function parseEndpoint(text: string): Endpoint {
  if (text === "-" || text.toLowerCase() === "stdio") return { kind: "stdio", text };
  const colon = text.indexOf(":");
  const kind = colon < 0 ? "" : text.slice(0, colon).toLowerCase();
  if (!(kind in OPTIONS)) {
    throw new UsageError(
      `Invalid endpoint "${text}": expected -, pipe:NAME, pipe-listen:NAME, tcp:HOST:PORT, ` +
        "tcp-listen:[HOST:]PORT, unix:PATH or unix-listen:PATH",
    );
  }
  const [address, ...rest] = text.slice(colon + 1).split(",");
  if (address === "") throw new UsageError(`Invalid endpoint "${text}": the address is missing`);
  const options = new Map<string, string>();
  for (const option of rest) {
    const [key, ...value] = option.split("=");
    if (!OPTIONS[kind].includes(key)) {
      const known = OPTIONS[kind].length ? OPTIONS[kind].join(", ") : "none";
      throw new UsageError(`Invalid endpoint "${text}": unknown option "${key}" (${kind} takes: ${known})`);
    }
    options.set(key, value.join("="));
  }
  const mode = choice(text, options, "mode", ["byte", "message"] as const, "byte");
  const number = (key: string, min: number, max: number) => {
    const value = options.get(key);
    if (value === undefined) return undefined;
    const n = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!(n >= min && n <= max)) {
      throw new UsageError(`Invalid endpoint "${text}": ${key} must be a whole number from ${min} to ${max}`);
    }
    return n;
  };
  switch (kind) {
    case "pipe":
      return { kind, text, name: address, mode, maxMessageSize: number("max-message-size", 1, 2 ** 30) };
    case "pipe-listen": {
      const preset = choice(text, options, "security", ["user", "everyone"] as const, "user");
      const sddl = options.get("sddl");
      if (sddl !== undefined && options.has("security")) {
        throw new UsageError(`Invalid endpoint "${text}": give security or sddl, not both`);
      }
      return {
        kind,
        text,
        name: address,
        mode,
        maxInstances: number("max-instances", 1, 255),
        security: sddl === undefined ? preset : { sddl },
        bufferSize: number("buffer-size", 0, 2 ** 30),
        maxMessageSize: number("max-message-size", 1, 2 ** 30),
      };
    }
    case "unix":
      return { kind, text, path: address, mode };
    case "unix-listen":
      return {
        kind,
        text,
        path: address,
        mode,
        security: choice(text, options, "security", ["user", "everyone"] as const, "user"),
      };
    default:
      return {
        kind: kind as "tcp" | "tcp-listen",
        text,
        ...hostAndPort(text, address, kind === "tcp-listen"),
      };
  }
}

/** `HOST:PORT`, `[IPv6]:PORT`, or for a listener just `PORT` (on loopback). */
function hostAndPort(text: string, address: string, listening: boolean): { host: string; port: number } {
  const match = /^(?:(?:\[([^\]]+)\]|([^:\[\]]+)):)?(\d{1,5})$/.exec(address);
  const host = match?.[1] ?? match?.[2] ?? (listening ? DEFAULT_LISTEN_HOST : undefined);
  const port = Number(match?.[3]);
  if (!match || host === undefined || port > 65535 || (!listening && port === 0)) {
    throw new UsageError(
      `Invalid endpoint "${text}": expected ${
        listening ? "[HOST:]PORT" : "HOST:PORT"
      } with a port up to 65535`,
    );
  }
  return { host, port };
}

function choice<T extends string>(
  text: string,
  options: Map<string, string>,
  key: string,
  allowed: readonly T[],
  fallback: T,
): T {
  const value = options.get(key);
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T)) {
    throw new UsageError(
      `Invalid endpoint "${text}": ${key} must be ${allowed.join(" or ")}, not "${value}"`,
    );
  }
  return value as T;
}
