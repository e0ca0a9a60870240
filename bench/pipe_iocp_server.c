/*
 * The second native Windows peer of `deno task bench`: a message-mode named pipe server on one
 * thread with overlapped I/O and an I/O completion port — namedpipe's own design, written in C.
 * Next to the thread-per-client server it shows what that design costs at best, and it holds
 * idle clients without a thread each. Built with mingw; runs under Wine here.
 *
 *   pipe_iocp_server.exe \\.\pipe\NAME reply|echo
 *
 * reply: every message is answered with the 58-byte default response; echo: sent back as is.
 * Four instances are kept listening (libuv's default); an instance whose client left is
 * disconnected and listens again. Every operation posts its packet (no
 * FILE_SKIP_COMPLETION_PORT_ON_SUCCESS), packets are taken 64 at a time.
 * Prints "ready" once the first instances listen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#define LISTENERS 4
#define BUFFER 65536
#define STATUS_BUFFER_OVERFLOW_ 0x80000005 /* the message goes on: ERROR_MORE_DATA */

enum state { CONNECTING, READING, WRITING };

/* One pipe instance; `ov` comes first so a packet's OVERLAPPED* is the instance. */
struct instance {
  OVERLAPPED ov;
  HANDLE h;
  enum state state;
  char *buf;
  DWORD size, got;
};

static const char *path;
static int echo;
static char response[58];
static HANDLE port;
static int listening;

static void arm_connect(struct instance *p);

static struct instance *new_instance(void) {
  struct instance *p = calloc(1, sizeof *p);
  p->h = CreateNamedPipeA(path, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED,
                          PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                          PIPE_UNLIMITED_INSTANCES, BUFFER, BUFFER, 0, NULL);
  if (p->h == INVALID_HANDLE_VALUE || !CreateIoCompletionPort(p->h, port, 0, 0)) {
    fprintf(stderr, "CreateNamedPipe failed: %lu\n", GetLastError());
    exit(1);
  }
  p->size = BUFFER;
  p->buf = malloc(p->size);
  return p;
}

/* The client left or failed: free the instance for the next client. */
static void drop_client(struct instance *p) {
  DisconnectNamedPipe(p->h);
  arm_connect(p);
}

static void start_read(struct instance *p) {
  p->state = READING;
  memset(&p->ov, 0, sizeof p->ov);
  /* Success and ERROR_MORE_DATA also post a packet: the work is done there. */
  if (!ReadFile(p->h, p->buf + p->got, p->size - p->got, NULL, &p->ov)) {
    DWORD e = GetLastError();
    if (e != ERROR_IO_PENDING && e != ERROR_MORE_DATA) drop_client(p);
  }
}

static void start_write(struct instance *p, const char *data, DWORD n) {
  p->state = WRITING;
  memset(&p->ov, 0, sizeof p->ov);
  if (!WriteFile(p->h, data, n, NULL, &p->ov) && GetLastError() != ERROR_IO_PENDING) drop_client(p);
}

static void connected(struct instance *p) {
  if (listening < LISTENERS) arm_connect(new_instance());
  p->got = 0;
  start_read(p);
}

static void arm_connect(struct instance *p) {
  p->state = CONNECTING;
  memset(&p->ov, 0, sizeof p->ov);
  listening++;
  if (ConnectNamedPipe(p->h, &p->ov) || GetLastError() == ERROR_IO_PENDING) return; /* a packet follows */
  listening--;
  if (GetLastError() == ERROR_PIPE_CONNECTED) connected(p); /* a client was already there: no packet */
  else drop_client(p);                                     /* ERROR_NO_DATA: it came and went */
}

static void complete(struct instance *p, DWORD status, DWORD n) {
  switch (p->state) {
  case CONNECTING:
    listening--;
    if (status == 0) connected(p);
    else drop_client(p);
    break;
  case READING:
    p->got += n;
    if (status == STATUS_BUFFER_OVERFLOW_) { /* bigger than the buffer: grow, read the rest */
      p->size *= 2;
      p->buf = realloc(p->buf, p->size);
      start_read(p);
    } else if (status != 0) {
      drop_client(p);
    } else if (echo) {
      start_write(p, p->buf, p->got);
    } else {
      start_write(p, response, sizeof response);
    }
    break;
  case WRITING:
    if (status != 0) {
      drop_client(p);
    } else {
      p->got = 0;
      start_read(p);
    }
    break;
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: pipe_iocp_server \\\\.\\pipe\\NAME reply|echo\n");
    return 2;
  }
  path = argv[1];
  echo = strcmp(argv[2], "echo") == 0;
  const char *text = "Default response from server"; /* UTF-16LE with its NUL: 58 bytes */
  for (int i = 0; text[i]; i++) response[2 * i] = text[i];
  port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
  for (int i = 0; i < LISTENERS; i++) arm_connect(new_instance());
  printf("ready\n");
  fflush(stdout);
  OVERLAPPED_ENTRY entries[64];
  for (;;) {
    ULONG n;
    if (!GetQueuedCompletionStatusEx(port, entries, 64, &n, INFINITE, FALSE)) continue;
    for (ULONG i = 0; i < n; i++) {
      OVERLAPPED *ov = entries[i].lpOverlapped;
      /* The NTSTATUS of the operation: GetLastError has nothing to say about a dequeued packet. */
      complete((struct instance *)ov, (DWORD)ov->Internal, entries[i].dwNumberOfBytesTransferred);
    }
  }
}
