/*
 * watchdog DEADLINE_MS RUNTIME_PID RUNTIME_START CGROUP_DIR [FREEZER_DIR]
 *
 * Enforces a sandbox's timeout without the server. Started by the server in its own session (so
 * a SIGKILL of the server, or of its process group, leaves it running) right after the runtime
 * process RUNTIME_PID. It waits until RUNTIME_PID exits (the sandbox ended: exit quietly) or
 * until DEADLINE_MS (milliseconds of CLOCK_MONOTONIC, which does not jump with the wall clock)
 * has passed: then it kills everything in the sandbox's cgroup directory (and its
 * subdirectories, where runtimes put their own child cgroup), and the runtime process with it,
 * and exits.
 *
 * The kill goes by cgroup, never by a pid read earlier: cgroup v2's cgroup.kill where there is
 * one (the kernel kills the whole subtree, forks included); on v1 the sandbox's FREEZER_DIR is
 * frozen first, so the listed pids cannot exit and be reused, nor fork, before the SIGKILLs,
 * then thawed. Without either, the listed tasks are killed pass after pass.
 *
 * The runtime is watched through a pidfd, taken only if the pid still is the process the server
 * started (RUNTIME_START: its start time in /proc/PID/stat, read by the server before it could
 * reap it): a pid reused meanwhile is never watched nor signalled. A cgroup directory that
 * vanished (the server, or start-up reclaim, removed the sandbox) also ends the watch.
 *
 * Fds the server passed open (the sandbox's user-id range lock) are held until it exits.
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

/* 0 once cgroup.kill did the killing: the tasks are then only counted until they are gone. */
static int signal_listed = 1;

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
        if (signal_listed) kill((pid_t)pid, SIGKILL);
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

/* Field 22 of /proc/PID/stat (start time in clock ticks since boot), or -1. */
static long long start_time(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  /* The command name (field 2) may hold spaces and parentheses: count from its last ')'. */
  char *p = strrchr(buf, ')');
  if (p == NULL) return -1;
  for (int field = 2; field < 22; field++) {
    p = strchr(p + 1, ' ');
    if (p == NULL) return -1;
  }
  return strtoll(p + 1, NULL, 10);
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  close(fd);
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Freezes a v1 freezer cgroup; 1 once FROZEN is reported, 0 if it cannot be frozen. */
static int freeze(const char *dir) {
  char state[4096], buf[32];
  snprintf(state, sizeof state, "%s/freezer.state", dir);
  if (write_file(state, "FROZEN") != 0) return 0;
  for (int i = 0; i < 500; i++) {
    int fd = open(state, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0 && strncmp(buf, "FROZEN", 6) == 0) return 1;
    usleep(2000);
  }
  /* Still FREEZING: the kills below go on anyway (SIGKILL reaches freezing tasks). */
  return 1;
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
  if (argc < 5) {
    fprintf(stderr, "usage: watchdog DEADLINE_MS RUNTIME_PID RUNTIME_START CGROUP_DIR [FREEZER_DIR]\n");
    return 2;
  }
  long long deadline = strtoll(argv[1], NULL, 10);
  pid_t runtime = (pid_t)strtol(argv[2], NULL, 10);
  long long started = strtoll(argv[3], NULL, 10);
  const char *cgroup = argv[4];
  const char *freezer = argc > 5 ? argv[5] : NULL;
  /* The server's stdio pipes go away with it; nothing here needs them. */
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) {
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
  }
  int pidfd = (int)syscall(SYS_pidfd_open, runtime, 0);
  if (pidfd < 0) return 0; /* already gone: the sandbox ended */
  /* Checked after the pidfd pins a process: if that is not the runtime, the runtime is gone. */
  if (start_time(runtime) != started) return 0;

  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) break;
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    /* Wake at least once a second to notice a removed cgroup. */
    int r = poll(&p, 1, left > 1000 ? 1000 : (int)left);
    if (r > 0) return 0; /* the runtime exited */
    if (access(cgroup, F_OK) != 0) return 0;
  }

  /* Past the deadline: the kernel kills the whole subtree where it can (cgroup v2). */
  char kill_file[4096];
  snprintf(kill_file, sizeof kill_file, "%s/cgroup.kill", cgroup);
  int by_kernel = write_file(kill_file, "1") == 0;
  if (by_kernel) signal_listed = 0;
  int frozen = !by_kernel && freezer != NULL && freeze(freezer);
  /* Then every task still listed (a frozen one cannot exit and leave its pid to another). */
  for (int pass = 0; pass < 200; pass++) {
    int any = kill_tree(cgroup, 0) > 0;
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    if (frozen) {
      char state[4096];
      snprintf(state, sizeof state, "%s/freezer.state", freezer);
      write_file(state, "THAWED");
      frozen = 0;
    }
    if (!any) break;
    usleep(20000);
    /* Before each later pass: freeze again, tasks forked meanwhile are listed frozen. */
    if (!by_kernel && freezer != NULL) frozen = freeze(freezer);
  }
  if (frozen) {
    char state[4096];
    snprintf(state, sizeof state, "%s/freezer.state", freezer);
    write_file(state, "THAWED");
  }
  return 0;
}
