/*
 * The native Windows peer of `deno task bench`: a message-mode named pipe server, thread per
 * client, plain blocking ReadFile/WriteFile — the least work per message Win32 allows, so the
 * honest upper bound for a pipe server. Built with mingw; runs under Wine here.
 *
 *   pipe_server.exe \\.\pipe\NAME reply|echo
 *
 * reply: every message is answered with the 58-byte default response; echo: sent back as is.
 * Four accept threads keep four instances listening (libuv's default), so clients arriving
 * together do not see ERROR_PIPE_BUSY. Prints "ready" once the instances exist.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#define LISTENERS 4
#define BUFFER 65536

static const char *path;
static int echo;
static char response[58];

static HANDLE create_instance(void) {
  HANDLE h = CreateNamedPipeA(path, PIPE_ACCESS_DUPLEX,
                              PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                              PIPE_UNLIMITED_INSTANCES, BUFFER, BUFFER, 0, NULL);
  if (h == INVALID_HANDLE_VALUE) {
    fprintf(stderr, "CreateNamedPipe failed: %lu\n", GetLastError());
    exit(1);
  }
  return h;
}

static DWORD WINAPI serve(LPVOID arg) {
  HANDLE h = arg;
  DWORD size = BUFFER;
  char *buf = malloc(size);
  for (;;) {
    DWORD got = 0, n;
    /* One message; ERROR_MORE_DATA means it is bigger than the buffer: grow and read the rest. */
    for (;;) {
      if (ReadFile(h, buf + got, size - got, &n, NULL)) {
        got += n;
        break;
      }
      if (GetLastError() != ERROR_MORE_DATA) goto done; /* broken pipe: the client left */
      got += n;
      size *= 2;
      buf = realloc(buf, size);
    }
    BOOL ok = echo ? WriteFile(h, buf, got, &n, NULL) : WriteFile(h, response, sizeof response, &n, NULL);
    if (!ok) break;
  }
done:
  DisconnectNamedPipe(h);
  CloseHandle(h);
  free(buf);
  return 0;
}

/* Each accept thread owns one listening instance; the next one is created before the connected
 * one is handed to its thread, so the name never disappears. */
static DWORD WINAPI accept_loop(LPVOID arg) {
  HANDLE h = arg;
  for (;;) { /* runs until the process is killed */
    if (ConnectNamedPipe(h, NULL) || GetLastError() == ERROR_PIPE_CONNECTED) {
      HANDLE next = create_instance();
      HANDLE t = CreateThread(NULL, 0, serve, h, 0, NULL);
      if (t) CloseHandle(t);
      h = next;
    } else { /* ERROR_NO_DATA: the client came and went */
      DisconnectNamedPipe(h);
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: pipe_server \\\\.\\pipe\\NAME reply|echo\n");
    return 2;
  }
  path = argv[1];
  echo = strcmp(argv[2], "echo") == 0;
  const char *text = "Default response from server"; /* UTF-16LE with its NUL: 58 bytes */
  for (int i = 0; text[i]; i++) response[2 * i] = text[i];
  HANDLE threads[LISTENERS];
  for (int i = 0; i < LISTENERS; i++) threads[i] = CreateThread(NULL, 0, accept_loop, create_instance(), 0, NULL);
  printf("ready\n");
  fflush(stdout);
  WaitForMultipleObjects(LISTENERS, threads, TRUE, INFINITE);
  return 0;
}
