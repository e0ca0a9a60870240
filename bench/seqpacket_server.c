/*
 * The native Linux peer of `deno task bench`: a SOCK_SEQPACKET server on one epoll thread, the
 * physical limit of message-mode Unix sockets on this machine.
 *
 *   seqpacket_server PATH reply|echo
 *
 * reply: every message is answered with the 58-byte default response; echo: sent back as is.
 * Prints "ready" once it listens.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_MESSAGE (1 << 20)

static void die(const char *what) {
  perror(what);
  exit(1);
}

/* Our clients keep one message in flight, so a full send buffer is rare: wait for room then. */
static void send_message(int fd, const char *buf, size_t n) {
  while (send(fd, buf, n, MSG_NOSIGNAL) < 0) {
    if (errno != EAGAIN) return; /* the client is gone; its hang-up comes through epoll */
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    poll(&p, 1, 1000);
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: seqpacket_server PATH reply|echo\n");
    return 2;
  }
  int echo = strcmp(argv[2], "echo") == 0;
  char response[58] = {0};
  const char *text = "Default response from server"; /* UTF-16LE with its NUL: 58 bytes */
  for (int i = 0; text[i]; i++) response[2 * i] = text[i];

  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", argv[1]);
  unlink(argv[1]);
  int listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listener < 0) die("socket");
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  if (listen(listener, 4096) < 0) die("listen");

  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  char *buf = malloc(MAX_MESSAGE);
  printf("ready\n");
  fflush(stdout);

  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == listener) {
        int c;
        while ((c = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      /* Level-triggered, one message per wake-up: a closed-loop client never has two waiting, so
       * reading until EAGAIN would only add a syscall. Our clients send no empty messages: 0 is EOF. */
      ssize_t k = recv(fd, buf, MAX_MESSAGE, 0);
      if (k > 0) {
        if (echo) send_message(fd, buf, k);
        else send_message(fd, response, sizeof response);
      } else if (k == 0 || errno != EAGAIN) {
        close(fd); /* closing removes it from the epoll set */
      }
    }
  }
}
