/**
 * The text after each `--help`: examples first, since they teach fastest, then the exit codes.
 *
 * @module
 */
import { EXIT_CODES_HELP } from "./exit_codes.ts";

/** After `namedpipe --help`. */
export const MAIN_EXAMPLES = `
Examples:
  namedpipe serve                      the seed's HelloWorld server, many clients, until Ctrl+C
  namedpipe serve --once               exactly the seed: one client, then exit
  namedpipe send                       send "Default request from client", print the reply
  namedpipe send --name Echo hello     send "hello" to \\\\.\\pipe\\Echo
  printf 'one\\ntwo\\n' | namedpipe send -   send each line, print each reply
  namedpipe list                       the pipes that exist (never connects to them)
  namedpipe relay tcp-listen:2375 pipe:docker_engine
                                       publish a pipe on loopback TCP (see relay --help)
  namedpipe wait --timeout 5000 Echo   exit 0 once \\\\.\\pipe\\Echo can take a client, 3 if it cannot

Run "namedpipe <command> --help" for every option of a command.

${EXIT_CODES_HELP}
`;

/** After `namedpipe serve --help`. */
export const SERVE_EXAMPLES = `
Examples:
  namedpipe serve                          \\\\.\\pipe\\HelloWorld: log each request, answer
                                           "Default response from server", until Ctrl+C
  namedpipe serve --once                   like the seed: one client, then exit
  namedpipe serve --name Echo --echo       answer every request with its own bytes
  namedpipe serve --response "Hi there"    answer "Hi there" (UTF-16LE with a NUL)
  namedpipe serve --log-format json        one JSON object a line on stderr, for log collectors
  namedpipe serve --sddl "D:P(A;;GA;;;SY)(A;;GA;;;S-1-5-21-...)(A;;0x12019B;;;AU)"
                                           Windows: you (your SID: whoami /user) and SYSTEM
                                           in full; other signed-in users may connect, read
                                           and write, but not create instances (no 0x4)

  namedpipe serve --allow-group docker-users --allow-user alice
                                           serve alice and docker-users' members only; refuse
                                           everyone else (you too) and log who was refused

Security: by default only the current user (and SYSTEM) may open the pipe, and remote clients are
refused. --allow-user/--allow-group open it to exactly those (Windows: ACEs in the DACL; Linux: the
socket's mode and group) and refuse anyone else at connect. --allow-everyone reproduces the seed's
NULL DACL: anyone may connect. Avoid it. Each client is logged with its pid and user.

Stop with Ctrl+C (SIGINT), SIGTERM, or on Windows Ctrl+Break (SIGBREAK): clients are closed, a
summary is logged, the exit code is 0.

${EXIT_CODES_HELP}
`;

/** After `namedpipe send --help`. */
export const SEND_EXAMPLES = `
Examples:
  namedpipe send                           like the seed's client: prints "Default response from server"
  namedpipe send Hello there               send "Hello there" (UTF-16LE with a NUL)
  namedpipe send --count 3                 send the default request 3 times on one connection
  namedpipe send --encoding hex "48 00 69 00"
                                           send these 4 bytes, print the reply as hex
  namedpipe send --encoding utf8 --name Echo ping
  namedpipe send -                         type lines; each is sent, each reply printed (Ctrl+D ends)
  seq 5 | namedpipe send -                 send "1" to "5", print 5 replies
  namedpipe send --encoding raw < req.bin > reply.bin
                                           send stdin's bytes as one message, write the reply's bytes
  namedpipe send --server HOST --name HelloWorld
                                           Windows: a pipe on another machine (if it allows it)
  namedpipe send --server-user nobody      also trust a server run by "nobody" (or a SID / DOMAIN\\user)
  reply=$(namedpipe send --timeout 500) || echo "exit $?"

Replies go to stdout, one line each (raw: the bytes as they are); diagnostics go to stderr.

Before sending anything, send checks who serves the name: the server must run as you or as
root/SYSTEM/Administrators, since anyone may create a name first. Otherwise it exits 4 naming the
user that holds it; --server-user USER or --trust-any-server widen the check.

${EXIT_CODES_HELP}
`;

/** After `namedpipe list --help`. */
export const LIST_EXAMPLES = `
Examples:
  namedpipe list                       every pipe: NAME, INSTANCES, MAX, ... (columns the platform
                                       reports), one line each
  namedpipe list 'docker*'             names matching a pattern (* any run, ? one character;
                                       Windows ignores case)
  namedpipe list --json HelloWorld     one JSON array: name, path, instances, maxInstances, and on
                                       Linux mode, uid, owner, fileMode
  namedpipe list /run/app.sock         Linux: also this socket, if something listens on it

Nothing is connected to: a server sees no client. Windows lists \\\\.\\pipe\\ (INSTANCES open
now, MAX allowed, 255 = unlimited); Wine cannot list it, so there name one pipe exactly.
Linux lists the listening CoreFxPipe_* sockets in the temp directory (where bare names live:
$TMPDIR or /tmp) with MODE (byte or message), OWNER and PERMS; INSTANCES and MAX are the listen
backlog (clients waiting, and its size). A socket file nobody listens on is not listed.
With a PATTERN or a path, finding nothing exits 3.

${EXIT_CODES_HELP}
`;

/** After `namedpipe wait --help`. */
export const WAIT_EXAMPLES = `
Examples:
  namedpipe wait HelloWorld                exit 0 once a server can take a client (5 s at most)
  namedpipe serve --name Echo --echo & namedpipe wait --timeout 10000 Echo && namedpipe send --name Echo hi
  namedpipe wait --timeout 0 Echo || echo "not up"     check once, do not wait

Nothing is connected to: the server sees no client. Windows: WaitNamedPipe (an instance is free);
Linux: a socket listens at the pipe's path with room in its backlog.
Exit 0 when the pipe is ready, 3 when the timeout passed first.

${EXIT_CODES_HELP}
`;

/** After `namedpipe relay --help`. */
export const RELAY_EXAMPLES = `
Endpoints (socat-style; options after commas):
  -                         stdin and stdout
  pipe:NAME                 connect to \\\\.\\pipe\\NAME (Linux: the socket of that name);
                            ,mode=byte|message (default byte) ,max-message-size=B
  pipe-listen:NAME          serve the pipe: one relay per client, until Ctrl+C; ,mode= ,max-instances=N
                            ,security=user|everyone (default user: you and SYSTEM) ,sddl=SDDL
                            ,buffer-size=B ,max-message-size=B
  tcp:HOST:PORT             connect over TCP ([::1]:PORT for IPv6)
  tcp-listen:[HOST:]PORT    accept TCP connections; on 127.0.0.1 unless HOST is given
  unix:PATH                 connect to a Unix socket (not on Windows); ,mode=message for SOCK_SEQPACKET
  unix-listen:PATH          accept on a Unix socket (not on Windows); ,mode= ,security=user|everyone

Examples:
  socat UNIX-LISTEN:/tmp/ssh-agent.sock,fork EXEC:"namedpipe.exe relay - pipe:openssh-ssh-agent"
                            WSL: the Windows OpenSSH agent for Linux ssh (npiperelay's job)
  namedpipe relay tcp-listen:2375 pipe:docker_engine
                            Docker from a TCP tool: DOCKER_HOST=tcp://127.0.0.1:2375
  namedpipe relay pipe-listen:myservice unix:/run/myservice.sock
                            a Unix-socket service published as a pipe only you (and SYSTEM) may open
  namedpipe relay --wait - pipe:myservice
                            stdin/stdout to a pipe, waiting for its server to start

End of stream (--eof): when one side ends,
  auto        (default) pass it on as a half-close where the other side can carry one, else close
              both sides: a byte-mode pipe on Windows has no half-close
  half-close  pass it on (sockets: shutdown; message pipes: a zero-length message; -: stdout closed)
              and relay the other way until it ends too
  close       close both sides at once (npiperelay -ep -ei)
--linger MS ends the other direction at most MS after the first end (socat -t). A zero-length
message read from a message pipe is its end of stream (--empty-message eof, the default; it is what
a half-close sends) or is relayed as a message (--empty-message pass).

One line is logged per relayed connection: the peer, bytes each way, the duration.
Exit: 0 when both sides ended (a listener: when stopped), 6 when the relay broke (a side was
killed or reset), 3 when an endpoint to connect to is not there.

${EXIT_CODES_HELP}
`;
