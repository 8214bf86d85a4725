/*
 * contree-init MODE REPORT PROGRAM [ARG...]
 * contree-init MODE-tty REPORT ROWSxCOLS[+isig] PROGRAM [ARG...]
 * contree-init connect PORT   (an exposed port's in-sandbox relay: port-relay.h)
 *
 * The entry point of every sandboxed process, on every driver, for the main process (MODE
 * "run") and for exec'd ones (MODE "exec"). It forks PROGRAM, waits for it with wait4 and
 * tells the host what really happened: exit code or terminating signal and the `struct
 * rusage` of PROGRAM and everything this process reaped.
 *
 *  - PROGRAM is resolved through PATH from the environment, like execvp. A program that cannot
 *    be found exits 127 with `contree: NAME: not found` on stderr, one that cannot be executed
 *    126 with the reason, as a shell does: never the runtime's own internals.
 *  - REPORT is "fd:N" (an inherited pipe, crun/runc `--preserve-fds`), an absolute path of a
 *    file to create (runsc, which passes no extra fds: a small per-sandbox tmpfs), or "-". One
 *    line: `contree-init/1 CODE SIGNAL` and the 16 rusage fields (µs, KiB, counts), written once
 *    PROGRAM has ended. It is opened before PROGRAM starts and is close-on-exec.
 *  - Signals. "exec": the host signals this process (the runtime reports its pid); the usual
 *    signals are passed on to PROGRAM, and PROGRAM dies with this process (PDEATHSIG) if it is
 *    killed. It is a subreaper, so what PROGRAM leaves behind is reaped (and counted) here.
 *    "run": the host signals every process in the sandbox's cgroup itself, so PROGRAM already
 *    got the signal: passing it on would deliver it twice. As pid 1 this process reaps orphans.
 *  - This process exits with PROGRAM's code, or 128+N for signal N (a pid 1 cannot die by its
 *    own signal), which is what the runtimes report for a signal death anyway. The host prefers
 *    the report, which names the signal.
 *  - Stdio is closed once PROGRAM runs, so a pipe sees EOF when PROGRAM closes its end. Other
 *    fds are left alone: the runtimes pass none but the report's, and each syscall is dear
 *    under gVisor's ptrace platform (a close() sweep of 1,024 fds cost ~100 ms there).
 *
 *  - "-tty" modes give PROGRAM a pseudo-terminal of the sandbox's own and relay it over stdio
 *    (init-tty.h); everything else is the same.
 *
 * Trust: PROGRAM runs as the same user as this process and can write a report of its own
 * (or kill this process): the figures describe only what PROGRAM could influence anyway. The
 * host treats the report as hostile input; cgroup CPU and memory figures stay authoritative.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec-search.h"
#include "init-tty.h"
#include "port-relay.h"

static volatile pid_t child;

/* Signals an "exec" init passes on to PROGRAM. */
static int handled(int s) {
  switch (s) {
    case SIGKILL: case SIGSTOP: case SIGCHLD: case SIGPIPE:
    /* Faults of this process itself keep their default action. */
    case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE: case SIGTRAP: case SIGSYS:
      return 0;
    default:
      return 1;
  }
}

static pid_t self;

static void forward(int sig) {
  /* The vfork child between unmasking and exec still has this handler: the signal is its own,
     with its default action, not one to pass on (or lose). */
  if (getpid() != self) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  if (child > 0) kill(child, sig);
}

static void say(const char *prog, const char *what) {
  /* One write: lines from concurrent processes do not interleave. */
  char buf[512];
  int n = snprintf(buf, sizeof buf, "contree: %s: %s\n", prog, what);
  if (n > 0) (void)!write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* A shell's answers: 127 not found, 126 found but not executable. */
static void exec_program(char **args) {
  int err = exec_search(args);
  if (err == ENOENT) {
    say(args[0], "not found");
    _exit(127);
  }
  say(args[0], strerror(err));
  _exit(126);
}

static int open_report(const char *spec) {
  if (strcmp(spec, "-") == 0) return -1;
  if (strncmp(spec, "fd:", 3) == 0) {
    char *end;
    long fd = strtol(spec + 3, &end, 10);
    if (*end != '\0' || fd < 3 || fd > INT_MAX) return -1;
    if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) != 0) return -1;
    return (int)fd;
  }
  if (spec[0] != '/') return -1;
  return open(spec, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
}


static void report(int fd, int code, int sig) {
  if (fd < 0) return;
  struct rusage ru;
  if (getrusage(RUSAGE_CHILDREN, &ru) != 0) memset(&ru, 0, sizeof ru);
  char buf[512];
  int n = snprintf(buf, sizeof buf,
                   "contree-init/1 %d %d %lld %lld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld\n", code,
                   sig, (long long)ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec,
                   (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec, ru.ru_maxrss, ru.ru_ixrss,
                   ru.ru_idrss, ru.ru_isrss, ru.ru_minflt, ru.ru_majflt, ru.ru_nswap, ru.ru_inblock, ru.ru_oublock,
                   ru.ru_msgsnd, ru.ru_msgrcv, ru.ru_nsignals, ru.ru_nvcsw, ru.ru_nivcsw);
  if (n > 0 && (size_t)n < sizeof buf) (void)!write(fd, buf, (size_t)n);
  close(fd);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "connect") == 0) return port_relay(argv[2]);
  const char *mode = argc > 1 ? argv[1] : "";
  int exec_mode = strncmp(mode, "exec", 4) == 0;
  int tty_mode = strcmp(mode, "run-tty") == 0 || strcmp(mode, "exec-tty") == 0;
  struct tty tty = {.master = -1, .slave = -1, .isig = 0};
  if (argc < 4 + tty_mode || !(tty_mode || strcmp(mode, "run") == 0 || strcmp(mode, "exec") == 0) ||
      (tty_mode && tty_parse_size(argv[3], &tty) != 0)) {
    say("init", "usage: contree-init run|exec|run-tty|exec-tty REPORT [ROWSxCOLS] PROGRAM [ARG...]");
    return 126;
  }
  char **program = &argv[3 + tty_mode];
  int rfd = open_report(argv[2]);
  if (exec_mode) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

  /* Everything blocked across vfork. In "run" mode this process keeps it so: the host's signals
     go to every process of the cgroup, and a blocked one stays pending, so this process outlives
     a TERM to report PROGRAM's end, with no handler to install (each syscall is dear under
     gVisor's ptrace platform). In "exec" mode the usual signals are caught and passed on; the
     child needs no reset, since exec gives caught signals their default action. */
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  /* The terminal relay learns of PROGRAM's end from a signalfd: SIGCHLD stays blocked. */
  int sfd = -1;
  if (tty_mode) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sfd = signalfd(-1, &chld, SFD_CLOEXEC);
    if (sfd < 0 || tty_open(&tty) != 0) {
      say("init", "no terminal in this sandbox");
      return 126;
    }
  }
  if (exec_mode) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sigfillset(&sa.sa_mask);
    for (int s = 1; s < SIGRTMIN; s++)
      if (handled(s)) sigaction(s, &sa, NULL);
  }
  pid_t ppid = getpid();
  self = ppid;
  /* vfork, not fork: under gVisor's ptrace platform a new address space is a new host stub
     process, and the child replaces its address space at once anyway (fork cost ~40 ms per run
     there). The child only sets its own death signal and mask and execs or _exits; it writes
     nothing this process reads. */
  pid_t pid = vfork();
  if (pid < 0) {
    say("init", strerror(errno));
    return 126;
  }
  if (pid == 0) {
    if (exec_mode) {
      prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
      if (getppid() != ppid) _exit(137);
    }
    if (tty_mode) tty_attach(&tty);
    /* PROGRAM starts with the mask this process was given; SIGPIPE was never changed. */
    sigprocmask(SIG_SETMASK, &old, NULL);
    exec_program(program);
  }
  child = pid;
  /* Only stdio: the runtimes pass no other fds but the report's (close-on-exec already). The
     terminal relay keeps stdin and stdout until PROGRAM has ended. */
  if (tty_mode) {
    close(tty.slave);
  } else {
    close(0);
    close(1);
  }
  close(2);
  /* A report to a host that stopped reading must not kill this process: EPIPE, not SIGPIPE. */
  if (exec_mode || tty_mode) signal(SIGPIPE, SIG_IGN);
  if (exec_mode) {
    sigset_t keep = old;
    if (tty_mode) sigaddset(&keep, SIGCHLD);
    sigprocmask(SIG_SETMASK, &keep, NULL);
  }

  int status = 0;
  if (tty_mode) {
    tty_relay(&tty, sfd, pid, &status);
    close(0);
    close(1);
  }
  for (; !tty_mode;) {
    pid_t w = wait4(-1, &status, 0, NULL);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      /* Cannot happen while the child lives; report what we know rather than spin. */
      status = 126 << 8;
      break;
    }
  }
  child = 0;
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : -1;
  report(rfd, code, sig);
  return code;
}
