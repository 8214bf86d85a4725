/*
 * contree-probe: run inside a candidate sandbox at start-up, it makes the system calls a
 * glibc/coreutils userland (Debian, Ubuntu, python:*-slim, node:*) makes, with the flags those
 * programs pass, straight through syscall(2) so that no libc fallback hides an answer.
 *
 * Each check has a policy:
 *   must    - the call must succeed (nothing in userland works around a failure);
 *   or-nosys - success, or ENOSYS: glibc and coreutils then fall back to an older call. Any
 *             other error (EINVAL for a flag the kernel does not know, EPERM from a filter) is
 *             passed to the program, and `ls`/`stat` fail with it;
 *   info    - reported, never fails the probe (callers handle every error).
 *
 * Output: one line per check ("name ok", "name ENOSYS", "name FAIL EINVAL"), then
 * "contree-probe ok" (exit 0) or "contree-probe failed: name EINVAL, ..." (exit 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AT_STATX_SYNC_AS_STAT
#define AT_STATX_SYNC_AS_STAT 0x0000
#endif
#ifndef AT_STATX_DONT_SYNC
#define AT_STATX_DONT_SYNC 0x4000
#endif
#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#define MEMBARRIER_CMD_QUERY 0

enum policy { MUST, OR_NOSYS, INFO };

static char failed[2048];
static int nfailed;

/* r is the raw syscall result (-1 with errno set on failure). */
static void report(const char *name, enum policy p, long r) {
  int e = errno;
  if (r >= 0) {
    printf("%s ok\n", name);
    return;
  }
  const char *en = strerrorname_np(e);
  if (en == NULL) en = "E?";
  if (e == ENOSYS && p != MUST) {
    printf("%s ENOSYS\n", name);
    return;
  }
  if (p == INFO) {
    printf("%s info %s\n", name, en);
    return;
  }
  printf("%s FAIL %s\n", name, en);
  size_t len = strlen(failed);
  snprintf(failed + len, sizeof failed - len, "%s%s %s", nfailed++ ? ", " : "", name, en);
}

static long statx_(int dirfd, const char *path, int flags, unsigned mask) {
  struct statx st;
  return syscall(SYS_statx, dirfd, path, flags, mask, &st);
}

extern const unsigned int __rseq_size __attribute__((weak));

int main(void) {
  const unsigned basic = STATX_BASIC_STATS;
  /* ls -l, stat, cp -a, find (gnulib's stat wrappers and coreutils' own statx calls). */
  report("statx", OR_NOSYS, statx_(AT_FDCWD, "/", AT_STATX_SYNC_AS_STAT, basic));
  report("statx-nofollow", OR_NOSYS, statx_(AT_FDCWD, "/", AT_SYMLINK_NOFOLLOW, basic));
  report("statx-noautomount", OR_NOSYS,
         statx_(AT_FDCWD, "/", AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, basic | STATX_BTIME));
  int dfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  report("statx-empty-path", OR_NOSYS, statx_(dfd, "", AT_EMPTY_PATH | AT_NO_AUTOMOUNT, basic));
  report("statx-btime", OR_NOSYS, statx_(AT_FDCWD, "/", 0, basic | STATX_BTIME));
  report("statx-mnt-id", OR_NOSYS, statx_(AT_FDCWD, "/", 0, basic | STATX_MNT_ID));
  report("statx-dont-sync", OR_NOSYS, statx_(AT_FDCWD, "/", AT_STATX_DONT_SYNC, basic));

  struct stat sb;
  /* glibc >= 2.33 implements fstat() as fstatat(fd, "", AT_EMPTY_PATH). */
  report("newfstatat-empty-path", MUST, syscall(SYS_newfstatat, dfd, "", &sb, AT_EMPTY_PATH));
  /* What glibc's statx() emulation calls when statx answers ENOSYS. */
  report("newfstatat-noautomount", MUST,
         syscall(SYS_newfstatat, AT_FDCWD, "/", &sb, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT));
  char dents[4096];
  report("getdents64", MUST, syscall(SYS_getdents64, dfd, dents, sizeof dents));
  if (dfd >= 0) close(dfd);

  struct rlimit rl;
  report("prlimit64", MUST, syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl));
  cpu_set_t cpus;
  report("sched_getaffinity", MUST, syscall(SYS_sched_getaffinity, 0, sizeof cpus, &cpus));
  char rnd[16];
  report("getrandom", OR_NOSYS, syscall(SYS_getrandom, rnd, sizeof rnd, GRND_NONBLOCK));
  report("faccessat2", OR_NOSYS, syscall(SYS_faccessat2, AT_FDCWD, "/", R_OK, AT_EACCESS));
  report("membarrier", OR_NOSYS, syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0));
  report("pidfd_open", OR_NOSYS, syscall(SYS_pidfd_open, getpid(), 0));

  /* glibc >= 2.34 creates threads and posix_spawn children with clone3, clone on ENOSYS. */
  struct clone_args ca;
  memset(&ca, 0, sizeof ca);
  ca.exit_signal = SIGCHLD;
  long pid = syscall(SYS_clone3, &ca, sizeof ca);
  if (pid == 0) syscall(SYS_exit_group, 0);
  int saved = errno;
  if (pid > 0) waitpid((pid_t)pid, NULL, 0);
  errno = saved;
  report("clone3", OR_NOSYS, pid);

  int fd = dup(1);
  report("close_range", OR_NOSYS, syscall(SYS_close_range, fd, fd, 0));
  fd = dup(1);
  report("close_range-cloexec", INFO, syscall(SYS_close_range, fd, fd, CLOSE_RANGE_CLOEXEC));
  close(fd);
  struct open_how {
    uint64_t flags, mode, resolve;
  } how = {O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0};
  long o2 = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
  report("openat2", INFO, o2);
  if (o2 >= 0) close((int)o2);
  /* glibc registers rseq at start (2.35+) and carries on without it on any error. */
  if (&__rseq_size != NULL) printf("rseq %s\n", __rseq_size > 0 ? "registered" : "info not-registered");

  if (nfailed == 0) {
    printf("contree-probe ok\n");
    return 0;
  }
  printf("contree-probe failed: %s\n", failed);
  return 1;
}
