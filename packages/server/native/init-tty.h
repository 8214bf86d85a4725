/*
 * The terminal of a `tty: true` process (init.c modes "run-tty" and "exec-tty").
 *
 * The pseudo-terminal is the sandbox's own: opened through /dev/ptmx of the sandbox's devpts
 * (crun/runc mount a private `newinstance` one; gVisor has its own in the Sentry), never a host
 * pty. PROGRAM gets the slave as stdin, stdout and stderr, in a session of its own with the
 * slave as its controlling terminal, so the line discipline (echo, ^C → SIGINT of the
 * foreground process group, window size) is the kernel's (or the Sentry's).
 *
 * The init relays between the host's pipes and the master:
 *  - master → fd 1: one output stream (the host records it as stdout; stderr stays empty);
 *  - fd 0 → master: frames from the host, `TAG LEN_HI LEN_LO PAYLOAD`: tag 'D' data bytes,
 *    'R' a window size (rows, cols: 16-bit big-endian each); other tags are skipped. The host
 *    writes every byte of that pipe; a sandboxed process that opens it through /proc can only
 *    type into, or resize, a terminal it already owns.
 *  - fd 0 at EOF: the terminal's EOF character (when in canonical mode), as `script` does; the
 *    terminal stays open until PROGRAM ends.
 * Input waits in a bounded buffer while the terminal does not take it, and fd 0 is not read
 * meanwhile (the host's pipe fills, which is its backpressure); output is written to fd 1 with
 * blocking writes (a host that stops reading stops the program at the pty's buffer).
 */
#ifndef CONTREE_INIT_TTY_H
#define CONTREE_INIT_TTY_H
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define TTY_MAX_DIM 1000

struct tty {
  int master;
  int slave;
  unsigned short rows, cols;
  /* This process generates the terminal's signals (see tty_isig). */
  int isig;
  /* PROGRAM, once started (its process group has its pid). */
  pid_t child;
  char name[32];
};

/* "ROWSxCOLS" or "ROWSxCOLS+isig", each 1..TTY_MAX_DIM. */
static int tty_parse_size(const char *s, struct tty *t) {
  unsigned r = 0, c = 0;
  char x = 0;
  int used = 0;
  if (sscanf(s, "%u%c%u%n", &r, &x, &c, &used) != 3 || x != 'x') return -1;
  if (strcmp(s + used, "+isig") == 0)
    t->isig = 1;
  else if (s[used] != '\0')
    return -1;
  if (r < 1 || r > TTY_MAX_DIM || c < 1 || c > TTY_MAX_DIM) return -1;
  t->rows = (unsigned short)r;
  t->cols = (unsigned short)c;
  return 0;
}

/* The sandbox's pty pair; errno set on failure. */
static int tty_open(struct tty *t) {
  t->master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (t->master < 0) t->master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (t->master < 0) return -1;
  int unlock = 0, n = -1;
  if (ioctl(t->master, TIOCSPTLCK, &unlock) != 0 || ioctl(t->master, TIOCGPTN, &n) != 0) return -1;
  snprintf(t->name, sizeof t->name, "/dev/pts/%d", n);
  t->slave = open(t->name, O_RDWR | O_NOCTTY);
  if (t->slave < 0) return -1;
  struct winsize ws = {.ws_row = t->rows, .ws_col = t->cols};
  if (ioctl(t->master, TIOCSWINSZ, &ws) != 0) return -1;
  /* Generating signals needs the foreground process group, which only a process of the
     terminal's session may ask for: this process leads the session, PROGRAM joins it. */
  if (t->isig && ((getsid(0) != getpid() && setsid() < 0) || ioctl(t->slave, TIOCSCTTY, 0) != 0)) t->isig = 0;
  return 0;
}

/*
 * In the child before exec: on 0, 1, 2 the slave, the controlling terminal of PROGRAM's own
 * session, or (isig) of this process's session, with PROGRAM's process group in the foreground
 * (every signal is blocked here, so no SIGTTOU stops it).
 */
static void tty_attach(struct tty *t) {
  if (t->isig) {
    if (setpgid(0, 0) != 0 || tcsetpgrp(t->slave, getpid()) != 0) _exit(126);
  } else if (setsid() < 0 || ioctl(t->slave, TIOCSCTTY, 0) != 0) {
    _exit(126);
  }
  for (int fd = 0; fd < 3; fd++)
    if (dup2(t->slave, fd) < 0) _exit(126);
  if (t->slave > 2) close(t->slave);
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Frames from the host: parser state and the input the terminal has not taken yet. */
struct tty_in {
  unsigned char hdr[3];
  int hdr_len;
  unsigned left;    /* payload bytes of the current frame still to come */
  unsigned char tag;
  unsigned char ctl[4];
  unsigned ctl_len;
  char pending[65536 + 16];
  size_t pend_off, pend_len;
};

/*
 * gVisor releases whose line discipline does not generate signals (runsc 20221219: ^C reaches
 * the program as a byte): with ISIG on, the INTR, QUIT and SUSP characters are taken out of the
 * input here and their signal sent to the foreground process group, echoed as ^C when ECHOCTL
 * says so, and pending input flushed unless NOFLSH, as Linux's n_tty does. Returns whether `c`
 * was such a character.
 */
static int tty_isig(struct tty *t, struct tty_in *in, const struct termios *tio, unsigned char c) {
  int sig = 0;
  if (c == _POSIX_VDISABLE) return 0;
  if (c == tio->c_cc[VINTR]) sig = SIGINT;
  else if (c == tio->c_cc[VQUIT]) sig = SIGQUIT;
  else if (c == tio->c_cc[VSUSP]) sig = SIGTSTP;
  if (sig == 0) return 0;
  if (!(tio->c_lflag & NOFLSH)) in->pend_off = in->pend_len = 0;
  if ((tio->c_lflag & ECHO) && (tio->c_lflag & ECHOCTL)) {
    char echo[2] = {'^', (char)(c ^ 0x40)};
    (void)!write(1, echo, 2);
  }
  /* Asked through the slave (gVisor answers ENOTTY on the master), opened for the question only:
     held open it would keep the pty from ending when PROGRAM does. */
  pid_t fg = -1;
  int fd = open(t->name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd >= 0) {
    fg = tcgetpgrp(fd);
    close(fd);
  }
  /* On Linux PROGRAM leads its own session, so its process group is orphaned and a ^Z to it is
     discarded; here its parent shares the session, so that is done by hand (else the program
     would stop with no shell to continue it). */
  if (fg > 0 && !(sig == SIGTSTP && fg == t->child)) kill(-fg, sig);
  return 1;
}

/* Parses `n` bytes read from fd 0; data goes to `pending`, resizes to the master at once. */
static void tty_frames(struct tty *t, struct tty_in *in, const unsigned char *p, size_t n) {
  while (n > 0) {
    if (in->hdr_len < 3) {
      in->hdr[in->hdr_len++] = *p++;
      n--;
      if (in->hdr_len == 3) {
        in->tag = in->hdr[0];
        in->left = ((unsigned)in->hdr[1] << 8) | in->hdr[2];
        in->ctl_len = 0;
        if (in->left == 0) in->hdr_len = 0;
      }
      continue;
    }
    size_t take = n < in->left ? n : in->left;
    struct termios tio;
    if (in->tag == 'D' && t->isig && tcgetattr(t->master, &tio) == 0 && (tio.c_lflag & ISIG)) {
      for (size_t i = 0; i < take; i++)
        if (!tty_isig(t, in, &tio, p[i])) in->pending[in->pend_len++] = (char)p[i];
    } else if (in->tag == 'D') {
      memcpy(in->pending + in->pend_len, p, take);
      in->pend_len += take;
    } else if (in->tag == 'R') {
      for (size_t i = 0; i < take && in->ctl_len < sizeof in->ctl; i++) in->ctl[in->ctl_len++] = p[i];
    }
    p += take;
    n -= take;
    in->left -= (unsigned)take;
    if (in->left == 0) {
      if (in->tag == 'R' && in->ctl_len == 4) {
        unsigned r = ((unsigned)in->ctl[0] << 8) | in->ctl[1];
        unsigned c = ((unsigned)in->ctl[2] << 8) | in->ctl[3];
        if (r >= 1 && r <= TTY_MAX_DIM && c >= 1 && c <= TTY_MAX_DIM) {
          struct winsize ws = {.ws_row = (unsigned short)r, .ws_col = (unsigned short)c};
          ioctl(t->master, TIOCSWINSZ, &ws);
        }
      }
      in->hdr_len = 0;
    }
  }
}

/* The terminal's EOF character, when its line discipline is canonical (else nothing means EOF). */
static void tty_eof(struct tty *t, struct tty_in *in) {
  struct termios tio;
  if (tcgetattr(t->master, &tio) != 0 || !(tio.c_lflag & ICANON)) return;
  in->pending[in->pend_len++] = (char)tio.c_cc[VEOF];
}

/*
 * Relays until `child` has been reaped (its wait status in *status), then passes on what the
 * terminal still holds. SIGCHLD must be blocked; `sfd` is a signalfd for it.
 */
static void tty_relay(struct tty *t, int sfd, pid_t child, int *status) {
  static struct tty_in in;
  static char buf[16384];
  t->child = child;
  int in_open = 1, out_ok = 1, reaped = 0;
  fcntl(t->master, F_SETFL, fcntl(t->master, F_GETFL) | O_NONBLOCK);
  while (!reaped) {
    struct pollfd p[3] = {
        {.fd = t->master, .events = POLLIN | (in.pend_len > in.pend_off ? POLLOUT : 0)},
        {.fd = sfd, .events = POLLIN},
        /* New input only once the terminal took the last (bounded buffer). */
        {.fd = in_open && in.pend_len == in.pend_off ? 0 : -1, .events = POLLIN},
    };
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      /* Cannot happen with valid fds; the program's end is still what to report. */
      while (waitpid(child, status, 0) < 0 && errno == EINTR) {
      }
      return;
    }
    if (p[0].revents & POLLIN) {
      ssize_t n = read(t->master, buf, sizeof buf);
      /* A host that went away: keep draining, so the program is not stopped on a full pty. */
      if (n > 0 && out_ok && write_all(1, buf, (size_t)n) != 0) out_ok = 0;
    }
    if ((p[0].revents & POLLOUT) && in.pend_len > in.pend_off) {
      ssize_t w = write(t->master, in.pending + in.pend_off, in.pend_len - in.pend_off);
      if (w > 0) in.pend_off += (size_t)w;
      if (in.pend_off == in.pend_len) in.pend_off = in.pend_len = 0;
    }
    if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) {
      /* At most what fits: the buffer is empty here and a frame adds its payload only. */
      ssize_t n = read(0, buf, sizeof buf);
      if (n > 0) {
        tty_frames(t, &in, (const unsigned char *)buf, (size_t)n);
      } else if (n == 0 || errno != EINTR) {
        in_open = 0;
        tty_eof(t, &in);
      }
    }
    if (p[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      (void)!read(sfd, &si, sizeof si);
      for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, WNOHANG);
        if (w <= 0) break;
        if (w == child) {
          *status = st;
          reaped = 1;
        }
      }
    }
  }
  /* What the program wrote before it ended; the pty ends (EIO/HUP) once no one holds the slave,
     and a background process that still does gets a short grace and at most 1 MiB. */
  for (int i = 0; i < 64; i++) {
    struct pollfd p = {.fd = t->master, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0 || !(p.revents & POLLIN)) break;
    ssize_t n = read(t->master, buf, sizeof buf);
    if (n <= 0) break;
    if (out_ok && write_all(1, buf, (size_t)n) != 0) out_ok = 0;
  }
}

#endif
