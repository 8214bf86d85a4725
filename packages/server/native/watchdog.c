/*
 * watchdog DEADLINE_MS RUNTIME_PID CGROUP_DIR...
 *
 * Enforces a sandbox's timeout without the server. Started by the server in its own session (so
 * a SIGKILL of the server, or of its process group, leaves it running) right after the runtime
 * process RUNTIME_PID. It waits until RUNTIME_PID exits (the sandbox ended: exit quietly) or
 * until DEADLINE_MS (milliseconds of CLOCK_MONOTONIC, which does not jump with the wall clock)
 * has passed: then it SIGKILLs every task in the sandbox's cgroup directories (and their
 * subdirectories, where runtimes put their own child cgroup) until they are empty, and the
 * runtime process with them, and exits.
 *
 * The runtime is watched through a pidfd: a recycled pid can never be signalled by mistake. A
 * cgroup directory that vanished (the server, or start-up reclaim, removed the sandbox) also
 * ends the watch.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Kills every task listed in one cgroup.procs file; returns how many were listed (-1: no file). */
static int kill_listed(const char *procs) {
  int fd = open(procs, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[8192];
  int listed = 0;
  ssize_t n;
  size_t have = 0;
  while ((n = read(fd, buf + have, sizeof buf - 1 - have)) > 0) {
    have += (size_t)n;
    buf[have] = '\0';
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
      *nl = '\0';
      long pid = strtol(line, NULL, 10);
      if (pid > 1) {
        kill((pid_t)pid, SIGKILL);
        listed++;
      }
      line = nl + 1;
    }
    have = strlen(line);
    memmove(buf, line, have);
  }
  close(fd);
  return listed;
}

/* Kills the tasks of a cgroup directory and of its subdirectories; returns how many were listed. */
static int kill_tree(const char *dir, int depth) {
  char path[4096];
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  int listed = kill_listed(path);
  if (listed < 0) listed = 0;
  if (depth >= 4) return listed;
  DIR *d = opendir(dir);
  if (d == NULL) return listed;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    listed += kill_tree(path, depth + 1);
  }
  closedir(d);
  return listed;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: watchdog DEADLINE_MS RUNTIME_PID CGROUP_DIR...\n");
    return 2;
  }
  long long deadline = strtoll(argv[1], NULL, 10);
  pid_t runtime = (pid_t)strtol(argv[2], NULL, 10);
  /* The server's stdio pipes go away with it; nothing here needs them. */
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) {
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
  }
  int pidfd = (int)syscall(SYS_pidfd_open, runtime, 0);
  if (pidfd < 0) return 0; /* already gone: the sandbox ended */

  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) break;
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    /* Wake at least once a second to notice a removed cgroup. */
    int r = poll(&p, 1, left > 1000 ? 1000 : (int)left);
    if (r > 0) return 0; /* the runtime exited */
    if (access(argv[3], F_OK) != 0) return 0;
  }

  /* Past the deadline: empty every cgroup (tasks forking meanwhile are caught by the next pass). */
  for (int pass = 0; pass < 200; pass++) {
    int any = 0;
    for (int i = 3; i < argc; i++)
      if (kill_tree(argv[i], 0) > 0) any = 1;
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    if (!any) break;
    usleep(20000);
  }
  return 0;
}
