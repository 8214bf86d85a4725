/*
 * cgexec [-k] PROCS_FILE... -- PATH ARGV0 [ARG...]
 *
 * Joins the given cgroups (writes "0", meaning "this process", to each cgroup.procs file), then
 * executes PATH (looked up on $PATH when it has no slash) with ARGV0 and ARGs. Used to start crun inside a sandbox's cgroup so that crun
 * need not manage cgroups itself (its --cgroup-manager=disabled saves ~5 ms per sandbox): the
 * container inherits the cgroups at fork time, with no window where it runs outside them.
 *
 * Fails closed: if any cgroup cannot be joined, nothing is executed (exit 126).
 * Every fd above 2 is marked close-on-exec first; PATH may be /proc/self/fd/N (a sealed copy
 * the caller passed down), which the kernel opens before it closes those fds. With -k, fd 3
 * stays open: the sandbox init's report pipe, which the runtime passes on (`--preserve-fds`).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static int join(const char *procs) {
  int fd = open(procs, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, "0", 1);
  int e = errno;
  close(fd);
  errno = e;
  return n == 1 ? 0 : -1;
}

int main(int argc, char **argv) {
  int i = 1;
  int keep3 = i < argc && strcmp(argv[i], "-k") == 0;
  if (keep3) i++;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (join(argv[i]) != 0) {
      fprintf(stderr, "cgexec: cannot join %s: %s\n", argv[i], strerror(errno));
      return 126;
    }
  }
  /* Needed after the cgroups: "--", PATH and ARGV0. */
  if (i + 2 >= argc) {
    fprintf(stderr, "usage: cgexec [-k] PROCS_FILE... -- PATH ARGV0 [ARG...]\n");
    return 126;
  }
  const char *path = argv[i + 1];
  char **args = &argv[i + 2];
  unsigned first = keep3 ? 4U : 3U;
  if (syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = (int)first; fd < 1024; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  execvp(path, args);
  fprintf(stderr, "cgexec: cannot execute %s: %s\n", path, strerror(errno));
  return 126;
}
