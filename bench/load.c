/*
 * The load generator of `deno task bench`: one native client for every server, so the client is
 * never the bottleneck. Built with gcc on Linux (Unix domain sockets) and with mingw for Windows
 * (named pipes, run under Wine here).
 *
 *   load -p PATH -t rtt|thr|conn|idle [-m] [-c CLIENTS] [-d SECONDS] [-w SECONDS] [-W ROUND_TRIPS] [-n IDLE] [-s STOPFILE]
 *
 *   rtt   CLIENTS closed loops of: write a 64-byte request, read the 58-byte response
 *   thr   one closed loop of: write a 64 KiB message, read the 64 KiB echo and compare it whole
 *   conn  connect, one rtt round trip, disconnect, again
 *   idle  open IDLE connections (one round trip each so the server has surely accepted them),
 *         print "ready", hold them until STOPFILE exists, then close them
 *
 * -w and -W: the warm-up lasts at least SECONDS and at least ROUND_TRIPS round trips (all clients
 * together), at most MAX_WARMUP_SECONDS, and ends early once no round trip completed for STALL_SECONDS.
 *
 * -m: message mode (SOCK_SEQPACKET; PIPE_READMODE_MESSAGE). Without it the server is a byte stream
 * and the client reads until the expected number of bytes arrived, so one request is still one
 * round trip. Prints one line: "ok mode=rtt clients=16 ops=N seconds=S rate=R mbps=M".
 *
 * A server that stops serving is reported, not waited for: a client that has not completed one
 * round trip STALL_SECONDS after the measurement, or a pipe whose every instance stays busy that
 * long (Windows), ends the run with "stalled ..." and exit status 3.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
typedef HANDLE conn_t;
#define BAD_CONN INVALID_HANDLE_VALUE
#else
#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
typedef int conn_t;
#define BAD_CONN (-1)
#endif

#define REQUEST_BYTES 64
#define RESPONSE_BYTES 58
#define BULK_BYTES 65536
#define MAX_CLIENTS 64
#define STALL_SECONDS 5
#define EXIT_STALLED 3
#define MAX_WARMUP_SECONDS 20

static const char *path;
static int message_mode;

static void die(const char *what) {
  fprintf(stderr, "load: %s\n", what);
  fflush(stderr);
  exit(1);
}

/* ---- platform: clock, sleep, threads, connections ---- */
#ifdef _WIN32
static double now(void) {
  LARGE_INTEGER f, c;
  QueryPerformanceFrequency(&f);
  QueryPerformanceCounter(&c);
  return (double)c.QuadPart / (double)f.QuadPart;
}
static void sleep_ms(int ms) { Sleep(ms); }
static int file_exists(const char *p) { return GetFileAttributesA(p) != INVALID_FILE_ATTRIBUTES; }

static conn_t open_conn(void) {
  double deadline = now() + STALL_SECONDS;
  for (;;) {
    HANDLE h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    if (h != INVALID_HANDLE_VALUE) {
      DWORD mode = PIPE_READMODE_MESSAGE;
      if (message_mode && !SetNamedPipeHandleState(h, &mode, NULL, NULL)) die("SetNamedPipeHandleState failed");
      return h;
    }
    DWORD err = GetLastError();
    if (now() > deadline && err == ERROR_PIPE_BUSY) {
      printf("stalled: every instance of %s stayed busy for %d s\n", path, STALL_SECONDS);
      fflush(stdout);
      exit(EXIT_STALLED);
    }
    if (now() > deadline) {
      fprintf(stderr, "load: cannot open %s: error %lu\n", path, err);
      exit(1);
    }
    /* Every instance busy: wait for one, as a real client does. Not there yet: the server is between instances. */
    if (err == ERROR_PIPE_BUSY) WaitNamedPipeA(path, 1000);
    else Sleep(1);
  }
}
static void close_conn(conn_t c) { CloseHandle(c); }
static int send_all(conn_t c, const char *buf, int n) {
  DWORD done;
  return WriteFile(c, buf, n, &done, NULL) && (int)done == n ? 0 : -1;
}
static int recv_some(conn_t c, char *buf, int n) {
  DWORD done;
  if (!ReadFile(c, buf, n, &done, NULL) && GetLastError() != ERROR_MORE_DATA) return -1;
  return (int)done;
}

typedef HANDLE thread_t;
static thread_t start_thread(void *(*fn)(void *), void *arg) {
  return CreateThread(NULL, 0, (LPTHREAD_START_ROUTINE)(void *)fn, arg, 0, NULL);
}
static void join_thread(thread_t t) { WaitForSingleObject(t, INFINITE); }
#else
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}
static void sleep_ms(int ms) { usleep(ms * 1000); }
static int file_exists(const char *p) { return access(p, F_OK) == 0; }

static conn_t open_conn(void) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) die("socket path too long");
  strcpy(addr.sun_path, path);
  double deadline = now() + 5;
  for (;;) {
    int fd = socket(AF_UNIX, (message_mode ? SOCK_SEQPACKET : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket failed");
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) return fd;
    int err = errno;
    close(fd);
    if (now() > deadline) {
      fprintf(stderr, "load: cannot connect to %s: %s\n", path, strerror(err));
      exit(1);
    }
    /* EAGAIN: the backlog is full; ECONNREFUSED/ENOENT: the server is not there yet. */
    usleep(100);
  }
}
static void close_conn(conn_t c) { close(c); }
static int send_all(conn_t c, const char *buf, int n) {
  while (n > 0) {
    ssize_t k = send(c, buf, n, MSG_NOSIGNAL);
    if (k <= 0) return -1;
    buf += k;
    n -= k;
  }
  return 0;
}
static int recv_some(conn_t c, char *buf, int n) { return (int)recv(c, buf, n, 0); }

typedef pthread_t thread_t;
static thread_t start_thread(void *(*fn)(void *), void *arg) {
  pthread_t t;
  if (pthread_create(&t, NULL, fn, arg) != 0) die("pthread_create failed");
  return t;
}
static void join_thread(thread_t t) { pthread_join(t, NULL); }
#endif

/* ---- the protocol ---- */
static char request[REQUEST_BYTES];
static char expected[RESPONSE_BYTES];

/* UTF-16LE with its NUL, like the HelloWorld sample: 31 + 1 characters make 64 bytes. */
static void utf16(char *out, const char *text, int bytes) {
  memset(out, 0, bytes);
  for (int i = 0; text[i] && 2 * i + 1 < bytes; i++) out[2 * i] = text[i];
}

/* Read exactly n bytes: one read in message mode, as many as it takes on a byte stream. */
static int recv_n(conn_t c, char *buf, int n) {
  int got = 0;
  while (got < n) {
    int k = recv_some(c, buf + got, n - got);
    if (k <= 0) return -1;
    got += k;
    if (message_mode && got != n) return -1; /* a message of the wrong size */
  }
  return 0;
}

/*
 * One round trip. Bulk: `out` is sent and its echo read into `in` and compared whole; the first 8
 * bytes carry a count that changes every time, so a stale or repeated echo cannot pass.
 */
static int round_trip(conn_t c, char *in, char *out, int bulk) {
  if (bulk) {
    static __thread unsigned long long round;
    round++;
    memcpy(out, &round, sizeof round);
    if (send_all(c, out, BULK_BYTES) || recv_n(c, in, BULK_BYTES)) return -1;
    return memcmp(in, out, BULK_BYTES) ? -3 : 0;
  }
  if (send_all(c, request, REQUEST_BYTES) || recv_n(c, in, RESPONSE_BYTES)) return -1;
  return memcmp(in, expected, RESPONSE_BYTES) ? -2 : 0;
}

/* ---- workers: each counts its round trips until told to stop ---- */
struct worker {
  volatile long ops;
  char pad[56]; /* keep counters on separate cache lines */
};
static struct worker workers[MAX_CLIENTS];
static volatile int stop;
static char kind[8];

static void *work(void *arg) {
  struct worker *w = arg;
  int bulk = strcmp(kind, "thr") == 0, reconnect = strcmp(kind, "conn") == 0;
  char *in = malloc(BULK_BYTES), *out = malloc(BULK_BYTES);
  for (int i = 0; i < BULK_BYTES; i++) out[i] = (char)(i * 7 + 3); /* every byte value, no run */
  conn_t c = reconnect ? BAD_CONN : open_conn();
  while (!stop) {
    if (reconnect) c = open_conn();
    int r = round_trip(c, in, out, bulk);
    if (r == -2) die("the response is not the 58-byte default response");
    if (r == -3) die("the 64 KiB echo differs from the message sent");
    if (r) die("the server closed the connection or failed");
    if (reconnect) close_conn(c);
    __atomic_add_fetch(&w->ops, 1, __ATOMIC_RELAXED);
  }
  if (!reconnect) close_conn(c);
  free(in);
  free(out);
  return NULL;
}

static long total_ops(int clients) {
  long n = 0;
  for (int i = 0; i < clients; i++) n += __atomic_load_n(&workers[i].ops, __ATOMIC_RELAXED);
  return n;
}

static void hold_idle(int n, const char *stopfile, double max_seconds) {
  conn_t *conns = malloc(sizeof(conn_t) * n);
  char in[RESPONSE_BYTES];
  for (int i = 0; i < n; i++) {
    conns[i] = open_conn();
    if (round_trip(conns[i], in, NULL, 0)) die("idle connection: round trip failed");
  }
  printf("ready n=%d\n", n);
  fflush(stdout);
  double deadline = now() + max_seconds;
  while (!file_exists(stopfile) && now() < deadline) sleep_ms(10);
  for (int i = 0; i < n; i++) close_conn(conns[i]);
  printf("ok mode=idle clients=%d\n", n);
  fflush(stdout); /* before exit: a Wine process's exit-time flush has been seen to lose it */
}

int main(int argc, char **argv) {
  int clients = 1, idle = 1000;
  long warm_ops = 0;
  double duration = 1, warmup = 0.2;
  const char *stopfile = NULL;
  strcpy(kind, "rtt");
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-m")) message_mode = 1;
    else if (!v) die("an option lacks its value");
    else if (!strcmp(a, "-p")) path = v, i++;
    else if (!strcmp(a, "-t")) snprintf(kind, sizeof kind, "%s", v), i++;
    else if (!strcmp(a, "-c")) clients = atoi(v), i++;
    else if (!strcmp(a, "-d")) duration = atof(v), i++;
    else if (!strcmp(a, "-w")) warmup = atof(v), i++;
    else if (!strcmp(a, "-W")) warm_ops = atol(v), i++;
    else if (!strcmp(a, "-n")) idle = atoi(v), i++;
    else if (!strcmp(a, "-s")) stopfile = v, i++;
    else die("unknown option");
  }
  if (!path) die("usage: load -p PATH -t rtt|thr|conn|idle [-m] [-c N] [-d S] [-w S] [-W N] [-n N] [-s FILE]");
  if (clients < 1 || clients > MAX_CLIENTS) die("-c must be 1..64");
  utf16(request, "Bench request from the C client", REQUEST_BYTES);
  utf16(expected, "Default response from server", RESPONSE_BYTES);

  if (!strcmp(kind, "idle")) {
    if (!stopfile) die("idle needs -s STOPFILE");
    hold_idle(idle, stopfile, 120);
    return 0;
  }
  if (strcmp(kind, "rtt") && strcmp(kind, "thr") && strcmp(kind, "conn")) die("-t must be rtt, thr, conn or idle");

  thread_t threads[MAX_CLIENTS];
  for (int i = 0; i < clients; i++) threads[i] = start_thread(work, &workers[i]);
  /* Count between two snapshots, so connection set-up and warm-up stay out of the figure. */
  double started = now();
  sleep_ms((int)(warmup * 1000));
  long seen = total_ops(clients);
  double progress = now();
  while (seen < warm_ops && now() - started < MAX_WARMUP_SECONDS && now() - progress < STALL_SECONDS) {
    sleep_ms(10);
    long n = total_ops(clients);
    if (n != seen) seen = n, progress = now();
  }
  long before = total_ops(clients);
  double t0 = now();
  /* The bench samples the server's CPU time between these two lines (bench/procs.ts cpuSample). */
  printf("measuring\n");
  fflush(stdout);
  sleep_ms((int)(duration * 1000));
  long after = total_ops(clients);
  double seconds = now() - t0;
  printf("measured\n");
  fflush(stdout);
  /* A client still at 0 round trips is given STALL_SECONDS more; then the server has stalled. */
  for (double give_up = now() + STALL_SECONDS;;) {
    int idle_clients = 0;
    for (int i = 0; i < clients; i++) idle_clients += __atomic_load_n(&workers[i].ops, __ATOMIC_RELAXED) == 0;
    if (!idle_clients) break;
    if (now() > give_up) {
      printf("stalled: %d of %d clients completed no round trip in %.1f s\n", idle_clients, clients,
             now() - started);
      fflush(stdout);
      exit(EXIT_STALLED); /* the stuck threads go with the process */
    }
    sleep_ms(50);
  }
  stop = 1;
  for (int i = 0; i < clients; i++) join_thread(threads[i]);
  long ops = after - before;
  double rate = ops / seconds;
  double mbps = !strcmp(kind, "thr") ? rate * BULK_BYTES / 1e6 : 0;
  printf("ok mode=%s clients=%d ops=%ld seconds=%.3f rate=%.1f mbps=%.2f\n", kind, clients, ops, seconds, rate,
         mbps);
  fflush(stdout);
  return 0;
}
