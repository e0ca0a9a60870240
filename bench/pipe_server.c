/*
 * The native Windows peer of `deno task bench`: a message-mode named pipe server, thread per
 * client, plain blocking ReadFile/WriteFile — the least work per message Win32 allows, so the
 * honest upper bound for a pipe server. Built with mingw; runs under Wine here.
 *
 *   pipe_server.exe \\.\pipe\NAME reply|echo
 *
 * reply: every message is answered with the 58-byte default response; echo: sent back as is.
 * Each thread owns one pipe instance and serves its clients one after another, reusing the
 * instance with DisconnectNamedPipe (as Microsoft's samples do), so a connection costs no thread
 * or instance creation. When fewer than four instances are left listening (libuv's default) a
 * listening thread starts one more, so clients arriving together do not see ERROR_PIPE_BUSY.
 * Prints "ready" once the first instances exist.
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

/* Answer one client's messages until it leaves. */
static void serve(HANDLE h, char **buf, DWORD *size) {
  for (;;) {
    DWORD got = 0, n;
    /* One message; ERROR_MORE_DATA means it is bigger than the buffer: grow and read the rest. */
    for (;;) {
      if (ReadFile(h, *buf + got, *size - got, &n, NULL)) {
        got += n;
        break;
      }
      if (GetLastError() != ERROR_MORE_DATA) return; /* broken pipe: the client left */
      got += n;
      *size *= 2;
      *buf = realloc(*buf, *size);
    }
    BOOL ok = echo ? WriteFile(h, *buf, got, &n, NULL) : WriteFile(h, response, sizeof response, &n, NULL);
    if (!ok) return;
  }
}

static volatile LONG listening; /* instances waiting in ConnectNamedPipe, or about to */
static DWORD WINAPI instance_thread(LPVOID ready);

/* Counted before the thread runs, so two threads never both decide to add the same instance.
 * Small stacks: 1,000 idle clients are 1,000 threads. */
static void add_instance(HANDLE ready) {
  InterlockedIncrement(&listening);
  HANDLE t = CreateThread(NULL, 65536, instance_thread, ready, STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
  if (!t) {
    fprintf(stderr, "CreateThread failed: %lu\n", GetLastError());
    exit(1);
  }
  CloseHandle(t);
}

static DWORD WINAPI instance_thread(LPVOID ready) {
  HANDLE h = create_instance();
  if (ready) SetEvent(ready);
  DWORD size = BUFFER;
  char *buf = malloc(size);
  for (;;) { /* runs until the process is killed */
    BOOL ok = ConnectNamedPipe(h, NULL) || GetLastError() == ERROR_PIPE_CONNECTED;
    if (InterlockedDecrement(&listening) < LISTENERS) add_instance(NULL);
    if (ok) serve(h, &buf, &size); /* otherwise ERROR_NO_DATA: the client came and went */
    DisconnectNamedPipe(h);
    InterlockedIncrement(&listening);
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
  HANDLE ready = CreateEventA(NULL, FALSE, FALSE, NULL);
  for (int i = 0; i < LISTENERS; i++) {
    add_instance(ready);
    WaitForSingleObject(ready, INFINITE);
  }
  printf("ready\n");
  fflush(stdout);
  Sleep(INFINITE);
  return 0;
}
