/*
 * statx-fix PROGRAM [ARG...]
 *
 * Entry point of gVisor sandboxes whose kernel (runsc 20221219) rejects AT_NO_AUTOMOUNT, a
 * flag glibc and coreutils pass to statx(2) (and glibc's own statx emulation to newfstatat(2)):
 * `ls`, `stat` and `cp` fail with EINVAL in every Debian-based image. In a sandbox there are
 * no automount points, so the flag means nothing there; this program removes it.
 *
 * How: it forks PROGRAM under ptrace with a seccomp filter that returns SECCOMP_RET_TRACE only
 * for statx/newfstatat calls carrying AT_NO_AUTOMOUNT; at that stop it clears the bit in the
 * flags register and lets the call run. Every other call runs at full speed, untraced.
 * Descendants are traced too (PTRACE_O_TRACEFORK/VFORK/CLONE): a RET_TRACE without a tracer
 * would answer ENOSYS. When PROGRAM exits, this process exits with its status (128+N for a
 * signal N, which is how the runtime reports a signal death anyway).
 *
 * Signals: as the sandbox's pid 1 it ignores them (the server signals every process with
 * `runsc kill --all`, so PROGRAM gets them directly); as an `exec`'d process, which is what
 * `runsc exec` signals, it passes each signal on to PROGRAM. It closes its own stdio once
 * PROGRAM runs, so a pipe sees EOF when PROGRAM closes it.
 *
 * Limits: processes in the sandbox are already traced, so they cannot be traced again (strace
 * and gdb inside report EPERM) and /proc/PID/status shows the tracer; PROGRAM runs as pid 2;
 * a SIGSTOP sent to a traced process is swallowed; when an `exec`'d PROGRAM exits, processes
 * it left in the background end with it (PTRACE_O_EXITKILL).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec-search.h"

#if !defined(__x86_64__)
#error "statx-fix: x86_64 only (the only architecture of this gVisor release here)"
#endif

#ifndef AT_NO_AUTOMOUNT
#define AT_NO_AUTOMOUNT 0x800
#endif

#define ARG_LO(n) (offsetof(struct seccomp_data, args) + 8 * (n))

static int install_filter(void) {
  struct sock_filter prog[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_statx, 0, 2),
      /* statx(dirfd, path, flags, mask, buf): flags is argument 2. */
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(2)),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, AT_NO_AUTOMOUNT, 3, 4),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_newfstatat, 0, 3),
      /* newfstatat(dirfd, path, buf, flags): flags is argument 3. */
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(3)),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, AT_NO_AUTOMOUNT, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog fprog = {.len = sizeof prog / sizeof prog[0], .filter = prog};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog);
}

static void exec_program(char **args) {
  int e = exec_search(args);
  fprintf(stderr, "%s: %s\n", args[0], strerror(e));
  _exit(e == ENOENT ? 127 : 126);
}

/* Clears AT_NO_AUTOMOUNT in the flags argument of the stopped call. */
static void fix_call(pid_t pid) {
  struct user_regs_struct r;
  if (ptrace(PTRACE_GETREGS, pid, 0, &r) != 0) return;
  if (r.orig_rax == SYS_statx) r.rdx &= ~(unsigned long long)AT_NO_AUTOMOUNT;
  else if (r.orig_rax == SYS_newfstatat) r.r10 &= ~(unsigned long long)AT_NO_AUTOMOUNT;
  else return;
  ptrace(PTRACE_SETREGS, pid, 0, &r);
}

static pid_t main_pid;

static void forward(int sig) {
  kill(main_pid, sig);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: statx-fix PROGRAM [ARG...]\n");
    return 126;
  }
  main_pid = fork();
  if (main_pid < 0) {
    perror("statx-fix: fork");
    return 126;
  }
  if (main_pid == 0) {
    /* Stop until the parent has attached, so that no call escapes the tracer. */
    if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0 || raise(SIGSTOP) != 0 || install_filter() != 0) {
      fprintf(stderr, "statx-fix: cannot set up tracing: %s\n", strerror(errno));
      _exit(126);
    }
    exec_program(&argv[1]);
  }
  /* Only the parent: PROGRAM keeps the dispositions it was started with. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = getpid() == 1 ? SIG_IGN : forward;
  sa.sa_flags = SA_RESTART;
  sigfillset(&sa.sa_mask);
  for (int s = 1; s < SIGRTMIN; s++)
    if (s != SIGKILL && s != SIGSTOP && s != SIGCHLD) sigaction(s, &sa, NULL);
  int status;
  if (waitpid(main_pid, &status, __WALL) != main_pid || !WIFSTOPPED(status)) {
    fprintf(stderr, "statx-fix: child did not stop\n");
    return 126;
  }
  long opts = PTRACE_O_TRACESECCOMP | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |
              PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;
  if (ptrace(PTRACE_SETOPTIONS, main_pid, 0, opts) != 0) {
    fprintf(stderr, "statx-fix: PTRACE_SETOPTIONS: %s\n", strerror(errno));
    kill(main_pid, SIGKILL);
    return 126;
  }
  ptrace(PTRACE_CONT, main_pid, 0, 0);
  if (syscall(SYS_close_range, 0U, ~0U, 0U) != 0)
    for (int fd = 0; fd < 1024; fd++) close(fd);
  for (;;) {
    pid_t pid = waitpid(-1, &status, __WALL);
    if (pid < 0) {
      if (errno == EINTR) continue;
      return 126;
    }
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      if (pid != main_pid) continue;
      /* The sandbox ends with its main process, as it would without this program. */
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (!WIFSTOPPED(status)) continue;
    int sig = WSTOPSIG(status);
    int event = status >> 16;
    if (sig == SIGTRAP && event == PTRACE_EVENT_SECCOMP) {
      fix_call(pid);
      sig = 0;
    } else if (sig == SIGTRAP && event != 0) {
      sig = 0; /* fork/vfork/clone/exec events: new tasks are traced with the same options */
    } else if (sig == SIGSTOP && event == 0) {
      /* New tasks start with a SIGSTOP the tracer must swallow; a real SIGSTOP is lost, as
         under any ptrace supervisor without PTRACE_SEIZE. */
      sig = 0;
    }
    ptrace(PTRACE_CONT, pid, 0, sig);
  }
}
