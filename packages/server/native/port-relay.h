/*
 * contree-init connect PORT
 *
 * The in-sandbox end of an exposed port (api/port-proxy.ts): connects to PORT on the sandbox's
 * own loopback (127.0.0.1, else ::1) and relays bytes between that connection and stdio, stdin
 * to the socket and the socket to stdout, until both directions have ended. It runs inside the
 * sandbox as an exec'd process (sandbox.exec), so it sees only what the sandbox sees: with
 * networking disabled that is the sandbox's loopback and nothing else, on every driver (gVisor's
 * netstack included). It opens no listening socket and reaches nothing outside the sandbox.
 *
 * Non-blocking, one bounded buffer per direction: a direction reads only once its buffer is
 * written out, so a peer that stops reading stops the other side (backpressure), and a sandboxed
 * server that writes its answer before it has read the whole request cannot deadlock the relay.
 * EOF on stdin is passed on as a half-close (shutdown(SHUT_WR)). Once the server's side has
 * ended and all it sent is on stdout, the relay exits (0): the runtime's exec client holds a
 * copy of the stdout pipe until its process exits, so the host sees the end only then. 111:
 * nothing listens on PORT; 2: a bad argument.
 */
#ifndef CONTREE_PORT_RELAY_H
#define CONTREE_PORT_RELAY_H
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RELAY_BUF 65536

struct relay_dir {
  int from, to;
  char buf[RELAY_BUF];
  size_t len, off;
  int eof, done;
};

static int relay_connect(int port) {
  struct sockaddr_in a4;
  memset(&a4, 0, sizeof a4);
  a4.sin_family = AF_INET;
  a4.sin_port = htons((unsigned short)port);
  a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s >= 0 && connect(s, (struct sockaddr *)&a4, sizeof a4) == 0) return s;
  if (s >= 0) close(s);
  struct sockaddr_in6 a6;
  memset(&a6, 0, sizeof a6);
  a6.sin6_family = AF_INET6;
  a6.sin6_port = htons((unsigned short)port);
  a6.sin6_addr = in6addr_loopback;
  s = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s >= 0 && connect(s, (struct sockaddr *)&a6, sizeof a6) == 0) return s;
  if (s >= 0) close(s);
  return -1;
}

/* One step of a direction: flush what is buffered, else read more. Returns -1 on a hard error. */
static int relay_step(struct relay_dir *d) {
  if (d->len > d->off) {
    ssize_t n = write(d->to, d->buf + d->off, d->len - d->off);
    if (n < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    d->off += (size_t)n;
    if (d->off == d->len) d->off = d->len = 0;
    return 0;
  }
  if (d->eof) return 0;
  ssize_t n = read(d->from, d->buf, RELAY_BUF);
  if (n < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
  if (n == 0) {
    d->eof = 1;
    return 0;
  }
  d->len = (size_t)n;
  d->off = 0;
  return 0;
}

/* A direction whose source ended and whose buffer is written out passes the EOF on, once. */
static void relay_finish(struct relay_dir *d, int to_is_sock) {
  if (d->done || !d->eof || d->len > d->off) return;
  d->done = 1;
  if (to_is_sock) shutdown(d->to, SHUT_WR);
  else close(d->to);
}

static int port_relay(const char *arg) {
  char *end;
  long port = strtol(arg, &end, 10);
  if (*arg == '\0' || *end != '\0' || port < 1 || port > 65535) return 2;
  signal(SIGPIPE, SIG_IGN);
  int s = relay_connect((int)port);
  if (s < 0) return 111;
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
  fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
  static struct relay_dir up, down;
  up.from = 0;
  up.to = s;
  down.from = s;
  down.to = 1;
  while (!down.done) {
    struct pollfd p[4];
    int n = 0, iu = -1, id = -1, ou = -1, od = -1;
    if (!up.done) {
      if (up.len > up.off) { p[n] = (struct pollfd){ .fd = s, .events = POLLOUT }; ou = n++; }
      else if (!up.eof) { p[n] = (struct pollfd){ .fd = 0, .events = POLLIN }; iu = n++; }
    }
    if (!down.done) {
      if (down.len > down.off) { p[n] = (struct pollfd){ .fd = 1, .events = POLLOUT }; od = n++; }
      else if (!down.eof) { p[n] = (struct pollfd){ .fd = s, .events = POLLIN }; id = n++; }
    }
    if (poll(p, (nfds_t)n, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if ((iu >= 0 && p[iu].revents) || (ou >= 0 && p[ou].revents))
      if (relay_step(&up) < 0) up.eof = 1, up.len = up.off = 0;
    if ((id >= 0 && p[id].revents) || (od >= 0 && p[od].revents))
      if (relay_step(&down) < 0) down.eof = 1, down.len = down.off = 0;
    relay_finish(&up, 1);
    relay_finish(&down, 0);
  }
  close(s);
  return 0;
}
#endif
