/*
 * execvp's PATH search for the static helpers that start a sandbox's command (init.c,
 * statx-fix.c): both must answer like a shell, and neither may take glibc's execvp, whose
 * fallback runs a file without a #! line through /bin/sh.
 */
#ifndef CONTREE_EXEC_SEARCH_H
#define CONTREE_EXEC_SEARCH_H
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Executes args[0] (through PATH from the environment when it has no '/'); returns only on
 * failure, with why: ENOENT when nothing was found, else the first reason a program that was
 * found could not run (the search goes on past it, as execvp's does).
 */
static int exec_search(char **args) {
  const char *prog = args[0];
  if (*prog == '\0') return ENOENT;
  if (strchr(prog, '/') != NULL) {
    execv(prog, args);
    return errno == ENOTDIR ? ENOENT : errno;
  }
  const char *path = getenv("PATH");
  if (path == NULL || *path == '\0') path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  int err = ENOENT;
  char buf[PATH_MAX];
  for (const char *p = path; p != NULL;) {
    const char *end = strchr(p, ':');
    size_t len = end == NULL ? strlen(p) : (size_t)(end - p);
    int n = len == 0 ? snprintf(buf, sizeof buf, "%s", prog) : snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, prog);
    if (n > 0 && (size_t)n < sizeof buf) {
      execv(buf, args);
      if (errno != ENOENT && errno != ENOTDIR && err == ENOENT) err = errno;
    }
    p = end == NULL ? NULL : end + 1;
  }
  return err;
}

#endif
