/*
 * contree_sys: the few system calls the run path needs, without spawning a process for each.
 *
 * Why: fork() from a large Node process copies its page tables; on our paravirtualised VMs a
 * spawn of /bin/true costs 7 ms at 44 MB RSS and 25 ms at 450 MB (libuv forks on Linux).
 * A run used to spawn `mount`, the runtime and `umount`. Here:
 *  - spawn() uses posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK), no page-table copy) and a
 *    waiter thread per child that reports its wait status back on the event loop;
 *  - mount(), umount() and mountOverlay() (fsopen/fsconfig "lowerdir+", no 4 KiB option
 *    string limit) run on libuv's thread pool and settle a promise.
 * Errors carry `code` (the errno name) and `errno`, like Node's own system errors.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <node_api.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

#ifndef FSCONFIG_SET_FD
#define FSCONFIG_SET_FD 5
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#include <sys/ioctl.h>
#include <linux/loop.h>
#include <linux/quota.h>

#define CHECK(env, call)                                                  \
  do {                                                                    \
    if ((call) != napi_ok) {                                              \
      napi_throw_error((env), NULL, "contree_sys: N-API call failed");    \
      return NULL;                                                        \
    }                                                                     \
  } while (0)

/* ---------- small helpers ---------- */

static const char *errno_name(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case EACCES: return "EACCES";
    case ENOTDIR: return "ENOTDIR";
    case ENOSPC: return "ENOSPC";
    case ENOMEM: return "ENOMEM";
    case ENODEV: return "ENODEV";
    case ENOSYS: return "ENOSYS";
    case EEXIST: return "EEXIST";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ELOOP: return "ELOOP";
    case EROFS: return "EROFS";
    case EMFILE: return "EMFILE";
    case EAGAIN: return "EAGAIN";
    case E2BIG: return "E2BIG";
    case ESRCH: return "ESRCH";
    case EOVERFLOW: return "EOVERFLOW";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EDQUOT: return "EDQUOT";
    case ENOTTY: return "ENOTTY";
    case ENXIO: return "ENXIO";
    case EIO: return "EIO";
    default: return "EUNKNOWN";
  }
}

static napi_value make_error(napi_env env, int err, const char *what, const char *detail) {
  char msg[1024];
  if (detail != NULL && detail[0] != '\0')
    snprintf(msg, sizeof msg, "%s: %s (%s)", what, strerror(err), detail);
  else
    snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value m, code, e, n;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, m, &e);
  napi_create_int32(env, err, &n);
  napi_set_named_property(env, e, "errno", n);
  return e;
}

/* Copies a JS string argument; NULL for null/undefined. Caller frees. */
static char *get_string(napi_env env, napi_value v, int *ok) {
  napi_valuetype t;
  *ok = 1;
  if (napi_typeof(env, v, &t) != napi_ok) { *ok = 0; return NULL; }
  if (t == napi_null || t == napi_undefined) return NULL;
  if (t != napi_string) { *ok = 0; return NULL; }
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) { *ok = 0; return NULL; }
  char *s = malloc(len + 1);
  if (s == NULL) { *ok = 0; return NULL; }
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  if (strlen(s) != len) { free(s); *ok = 0; return NULL; } /* embedded NUL */
  return s;
}

/* NULL-terminated copy of a JS string array. Caller frees with free_strv. */
static char **get_strv(napi_env env, napi_value arr, uint32_t *count, int *ok) {
  bool is_arr;
  *ok = 0;
  if (napi_is_array(env, arr, &is_arr) != napi_ok || !is_arr) return NULL;
  uint32_t n;
  napi_get_array_length(env, arr, &n);
  char **v = calloc(n + 1, sizeof(char *));
  if (v == NULL) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    int sok;
    napi_get_element(env, arr, i, &el);
    v[i] = get_string(env, el, &sok);
    if (!sok || v[i] == NULL) {
      for (uint32_t j = 0; j < i; j++) free(v[j]);
      free(v);
      return NULL;
    }
  }
  if (count) *count = n;
  *ok = 1;
  return v;
}

static void free_strv(char **v) {
  if (v == NULL) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

/* ---------- async mount work ---------- */

enum op_kind { OP_MOUNT, OP_UMOUNT, OP_OVERLAY, OP_LOOP };

typedef struct {
  enum op_kind kind;
  napi_async_work work;
  napi_deferred deferred;
  char *source, *target, *fstype, *data, *upper, *workdir;
  char **lowers;
  char **options; /* "key" or "key=value" */
  unsigned long flags;
  int readonly;
  unsigned idmap_host, idmap_size; /* idmap_size 0: layers are not idmapped */
  int err;
  char detail[512];
} mount_op;

static void op_free(mount_op *op) {
  free(op->source); free(op->target); free(op->fstype); free(op->data);
  free(op->upper); free(op->workdir);
  free_strv(op->lowers); free_strv(op->options);
  free(op);
}

static int fsconfig_str(int fd, const char *key, const char *val) {
  return (int)syscall(SYS_fsconfig, fd, val == NULL ? FSCONFIG_SET_FLAG : FSCONFIG_SET_STRING, key, val, 0);
}

/* The kernel queues human-readable reasons on the fs context; keep the last one. */
static void read_fs_log(int fd, char *out, size_t cap) {
  char buf[256];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf - 1)) > 0) {
    buf[n] = '\0';
    if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = '\0';
    snprintf(out, cap, "%s", buf);
  }
}

/*
 * A user namespace that maps ids 0..size-1 to host ids host..host+size-1, as an fd (for
 * MOUNT_ATTR_IDMAP). A namespace lives only as long as a process or an fd holds it: a child is
 * cloned into it (sharing our memory, so no page-table copy), its maps are written, the fd is
 * opened, and the child is killed and reaped. unshare() cannot do this: it refuses threaded
 * callers. Returns -1 with errno set.
 */
static int hold_forever(void *arg) {
  (void)arg;
  for (;;) syscall(SYS_pause);
  return 0;
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  int e = errno;
  close(fd);
  errno = e;
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int make_userns(unsigned host, unsigned size, char *detail, size_t cap) {
  size_t stack_size = 64 * 1024;
  char *stack = malloc(stack_size);
  if (stack == NULL) return -1;
  pid_t pid = clone(hold_forever, stack + stack_size, CLONE_VM | CLONE_NEWUSER | SIGCHLD, NULL);
  if (pid < 0) {
    int e = errno;
    free(stack);
    snprintf(detail, cap, "clone(CLONE_NEWUSER)");
    errno = e;
    return -1;
  }
  char path[64], map[64];
  int fd = -1, e = 0;
  snprintf(map, sizeof map, "0 %u %u\n", host, size);
  snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
  if (write_file(path, map) != 0) { e = errno; snprintf(detail, cap, "uid_map"); }
  snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
  if (e == 0 && write_file(path, map) != 0) { e = errno; snprintf(detail, cap, "gid_map"); }
  snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
  if (e == 0 && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) { e = errno; snprintf(detail, cap, "ns/user"); }
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR) {}
  free(stack);
  errno = e;
  return e == 0 ? fd : -1;
}

/* A detached copy of the mount at `path` (optionally idmapped): the overlay is given fds to
   these, so its options in /proc/mounts name no host path ("/" for a layer). */
static int detached(const char *path, int userns, char *detail, size_t cap) {
  int t = (int)syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (t < 0) { snprintf(detail, cap, "open_tree"); return -1; }
  if (userns >= 0) {
    struct mount_attr a;
    memset(&a, 0, sizeof a);
    a.attr_set = MOUNT_ATTR_IDMAP;
    a.userns_fd = (unsigned long long)userns;
    if (syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH, &a, sizeof a) != 0) {
      int e = errno;
      close(t);
      snprintf(detail, cap, "mount_setattr(MOUNT_ATTR_IDMAP)");
      errno = e;
      return -1;
    }
  }
  return t;
}

/*
 * overlayfs does its own work in the upper (work dir, whiteouts, copy-up) with the credentials
 * of whoever created the mount. Through an idmapped upper, host uid 0 has no mapping (EOVERFLOW),
 * so the mount is created with fsuid/fsgid = the range's first host id (in-image root), all
 * capabilities kept. setfsuid() and capset() change only the calling thread.
 */
struct saved_creds { struct __user_cap_header_struct h; struct __user_cap_data_struct d[2]; };

static int become_range_root(unsigned host, struct saved_creds *s) {
  memset(s, 0, sizeof *s);
  s->h.version = _LINUX_CAPABILITY_VERSION_3;
  if (syscall(SYS_capget, &s->h, s->d) != 0) return -1;
  setfsgid(host);
  setfsuid(host);
  /* fsuid 0 → non-0 dropped the file-system capabilities from the effective set: restore them. */
  if (syscall(SYS_capset, &s->h, s->d) != 0) {
    int e = errno;
    setfsuid(0);
    setfsgid(0);
    errno = e;
    return -1;
  }
  return 0;
}

static void back_to_root(void) {
  /* fsuid back to 0 puts the file-system capabilities back into the effective set. */
  setfsuid(0);
  setfsgid(0);
}

static int same_parent(const char *a, const char *b, char *parent, size_t cap) {
  const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
  if (sa == NULL || sb == NULL || sa == a || sa - a != sb - b || strncmp(a, b, (size_t)(sa - a)) != 0) return 0;
  if ((size_t)(sa - a) >= cap) return 0;
  memcpy(parent, a, (size_t)(sa - a));
  parent[sa - a] = '\0';
  return 1;
}

static void do_overlay(mount_op *op) {
  int userns = -1, dir = -1, up = -1, wk = -1, fs = -1, mnt = -1;
  int nl = 0;
  for (char **l = op->lowers; *l; l++) nl++;
  int *lower = calloc((size_t)nl, sizeof(int));
  if (lower == NULL) { op->err = ENOMEM; return; }
  for (int i = 0; i < nl; i++) lower[i] = -1;
  char parent[4096];
  int rc = 0;
  unsigned int attrs = op->readonly ? MOUNT_ATTR_RDONLY : 0;

  if (op->idmap_size > 0 && (userns = make_userns(op->idmap_host, op->idmap_size, op->detail, sizeof op->detail)) < 0)
    rc = -1;
  for (int i = 0; rc == 0 && i < nl; i++)
    if ((lower[i] = detached(op->lowers[i], userns, op->detail, sizeof op->detail)) < 0) rc = -1;
  if (rc == 0 && op->upper) {
    /* upper and work must be on one mount: one detached copy of their common parent. */
    if (!same_parent(op->upper, op->workdir, parent, sizeof parent)) {
      errno = EINVAL;
      snprintf(op->detail, sizeof op->detail, "upper and work must be siblings");
      rc = -1;
    } else if ((dir = detached(parent, userns, op->detail, sizeof op->detail)) < 0) {
      rc = -1;
    } else {
      up = openat(dir, strrchr(op->upper, '/') + 1, O_PATH | O_DIRECTORY | O_CLOEXEC);
      wk = openat(dir, strrchr(op->workdir, '/') + 1, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (up < 0 || wk < 0) { snprintf(op->detail, sizeof op->detail, "upper/work"); rc = -1; }
    }
  }
  if (rc != 0) op->err = errno;

  if (rc == 0) {
    fs = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
    if (fs < 0) { op->err = errno; snprintf(op->detail, sizeof op->detail, "fsopen"); rc = -1; }
  }
  if (rc == 0) {
    rc = fsconfig_str(fs, "source", "overlay");
    /* Layers as fds need kernel 6.13; before it overlayfs takes only strings (EINVAL). The fds
     * exist for idmapped layers: without an idmap the same directories by path mount alike. */
    int by_path = 0;
    if (rc == 0 && nl > 0) {
      rc = (int)syscall(SYS_fsconfig, fs, FSCONFIG_SET_FD, "lowerdir+", NULL, lower[0]);
      if (rc != 0 && errno == EINVAL && userns < 0) by_path = 1;
    }
    if (by_path) {
      rc = 0;
      for (int i = 0; rc == 0 && i < nl; i++) rc = fsconfig_str(fs, "lowerdir+", op->lowers[i]);
      if (rc == 0 && op->upper) rc = fsconfig_str(fs, "upperdir", op->upper);
      if (rc == 0 && op->upper) rc = fsconfig_str(fs, "workdir", op->workdir);
    } else {
      for (int i = 1; rc == 0 && i < nl; i++)
        rc = (int)syscall(SYS_fsconfig, fs, FSCONFIG_SET_FD, "lowerdir+", NULL, lower[i]);
      if (rc == 0 && up >= 0) rc = (int)syscall(SYS_fsconfig, fs, FSCONFIG_SET_FD, "upperdir", NULL, up);
      if (rc == 0 && wk >= 0) rc = (int)syscall(SYS_fsconfig, fs, FSCONFIG_SET_FD, "workdir", NULL, wk);
    }
    for (char **o = op->options; rc == 0 && o && *o; o++) {
      char *eq = strchr(*o, '=');
      /* Per-mount flags, not overlay parameters: they go to fsmount(). */
      if (strcmp(*o, "nodev") == 0) attrs |= MOUNT_ATTR_NODEV;
      else if (strcmp(*o, "nosuid") == 0) attrs |= MOUNT_ATTR_NOSUID;
      else if (strcmp(*o, "noexec") == 0) attrs |= MOUNT_ATTR_NOEXEC;
      else if (eq == NULL) rc = fsconfig_str(fs, *o, NULL);
      else {
        *eq = '\0';
        rc = fsconfig_str(fs, *o, eq + 1);
        *eq = '=';
      }
    }
    if (rc == 0) {
      struct saved_creds sc;
      if (userns >= 0 && become_range_root(op->idmap_host, &sc) != 0) {
        rc = -1;
      } else {
        rc = (int)syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0);
        int e = errno;
        if (userns >= 0) back_to_root();
        errno = e;
      }
    }
    if (rc != 0) {
      op->err = errno;
      read_fs_log(fs, op->detail, sizeof op->detail);
    }
  }
  if (rc == 0) {
    mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs);
    if (mnt < 0) {
      op->err = errno;
      read_fs_log(fs, op->detail, sizeof op->detail);
    } else if (syscall(SYS_move_mount, mnt, "", AT_FDCWD, op->target, MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      op->err = errno;
      snprintf(op->detail, sizeof op->detail, "move_mount");
    }
  }
  for (int i = 0; i < nl; i++) if (lower[i] >= 0) close(lower[i]);
  free(lower);
  int fds[] = {userns, dir, up, wk, fs, mnt};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) if (fds[i] >= 0) close(fds[i]);
}

/*
 * Attaches `source` (a filesystem image) to a free loop device with LO_FLAGS_AUTOCLEAR and
 * mounts it: the device detaches itself when the last reference goes, i.e. on umount, or right
 * here when the mount fails, and with the mount when a crashed server's mount namespace dies.
 */
static void do_loop_mount(mount_op *op) {
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0) { op->err = errno; snprintf(op->detail, sizeof op->detail, "/dev/loop-control"); return; }
  int img = open(op->source, O_RDWR | O_CLOEXEC);
  if (img < 0) { op->err = errno; snprintf(op->detail, sizeof op->detail, "image"); close(ctl); return; }
  op->err = EBUSY;
  /* Another process may take the free device between GET_FREE and CONFIGURE: try again. */
  for (int tries = 0; tries < 32 && op->err == EBUSY; tries++) {
    int n = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (n < 0) { op->err = errno; snprintf(op->detail, sizeof op->detail, "LOOP_CTL_GET_FREE"); break; }
    char dev[64];
    snprintf(dev, sizeof dev, "/dev/loop%d", n);
    int lfd = open(dev, O_RDWR | O_CLOEXEC);
    if (lfd < 0) { op->err = errno; snprintf(op->detail, sizeof op->detail, "%s", dev); break; }
    struct loop_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fd = (unsigned int)img;
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    if (ioctl(lfd, LOOP_CONFIGURE, &cfg) != 0) {
      op->err = errno;
      snprintf(op->detail, sizeof op->detail, "LOOP_CONFIGURE");
      close(lfd);
      continue;
    }
    op->err = 0;
    if (mount(dev, op->target, op->fstype, op->flags, op->data) != 0) {
      /* The device was ours: its mount failing (EBUSY included) is the image's or the
       * target's fault, which another device would not cure. Detach now, and report. */
      op->err = errno;
      snprintf(op->detail, sizeof op->detail, "mount %s", dev);
      ioctl(lfd, LOOP_CLR_FD, 0);
    }
    close(lfd);
    break;
  }
  close(img);
  close(ctl);
}

static void op_execute(napi_env env, void *data) {
  (void)env;
  mount_op *op = data;
  op->err = 0;
  switch (op->kind) {
    case OP_MOUNT:
      if (mount(op->source, op->target, op->fstype, op->flags, op->data) != 0) op->err = errno;
      break;
    case OP_UMOUNT:
      if (umount2(op->target, (int)op->flags) != 0) op->err = errno;
      break;
    case OP_OVERLAY:
      do_overlay(op);
      break;
    case OP_LOOP:
      do_loop_mount(op);
      break;
  }
}

static void op_complete(napi_env env, napi_status status, void *data) {
  mount_op *op = data;
  if (status != napi_ok) op->err = ECANCELED;
  if (op->err == 0) {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, op->deferred, undef);
  } else {
    const char *what = op->kind == OP_UMOUNT ? "umount" : "mount";
    napi_reject_deferred(env, op->deferred, make_error(env, op->err, what, op->detail));
  }
  napi_delete_async_work(env, op->work);
  op_free(op);
}

static napi_value queue_op(napi_env env, mount_op *op) {
  napi_value promise, name;
  CHECK(env, napi_create_promise(env, &op->deferred, &promise));
  napi_create_string_utf8(env, "contree_sys.mount", NAPI_AUTO_LENGTH, &name);
  CHECK(env, napi_create_async_work(env, NULL, name, op_execute, op_complete, op, &op->work));
  CHECK(env, napi_queue_async_work(env, op->work));
  return promise;
}

static napi_value bad_args(napi_env env, mount_op *op, const char *msg) {
  if (op) op_free(op);
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

/* Reads exactly `n` arguments into `a` and allocates an op of `kind`; NULL with a JS exception
   pending when the call is malformed. */
static mount_op *new_op(napi_env env, napi_callback_info info, size_t n, napi_value *a, enum op_kind kind,
                        const char *usage) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok || argc < n) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  mount_op *op = calloc(1, sizeof *op);
  if (op == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  op->kind = kind;
  return op;
}

/* mount(source|null, target, fstype|null, flags, data|null) → Promise<void> */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  napi_value a[5];
  mount_op *op = new_op(env, info, 5, a, OP_MOUNT, "mount(source, target, fstype, flags, data)");
  if (op == NULL) return NULL;
  int ok1, ok2, ok3, ok4;
  op->source = get_string(env, a[0], &ok1);
  op->target = get_string(env, a[1], &ok2);
  op->fstype = get_string(env, a[2], &ok3);
  op->data = get_string(env, a[4], &ok4);
  double flags;
  if (!ok1 || !ok2 || !ok3 || !ok4 || op->target == NULL || napi_get_value_double(env, a[3], &flags) != napi_ok)
    return bad_args(env, op, "mount: bad arguments");
  op->flags = (unsigned long)flags;
  return queue_op(env, op);
}

/* umount(target, flags) → Promise<void> */
static napi_value js_umount(napi_env env, napi_callback_info info) {
  napi_value a[2];
  mount_op *op = new_op(env, info, 2, a, OP_UMOUNT, "umount(target, flags)");
  if (op == NULL) return NULL;
  int ok;
  op->target = get_string(env, a[0], &ok);
  int32_t flags;
  if (!ok || op->target == NULL || napi_get_value_int32(env, a[1], &flags) != napi_ok)
    return bad_args(env, op, "umount: bad arguments");
  op->flags = (unsigned long)flags;
  return queue_op(env, op);
}

/* mountOverlay(target, lowers[], upper|null, work|null, options[], readonly, idmapHost, idmapSize)
   → Promise<void>; idmapSize 0 = layers not idmapped. */
static napi_value js_mount_overlay(napi_env env, napi_callback_info info) {
  napi_value a[8];
  mount_op *op = new_op(env, info, 8, a, OP_OVERLAY,
                        "mountOverlay(target, lowers, upper, work, options, readonly, idmapHost, idmapSize)");
  if (op == NULL) return NULL;
  int ok1, ok2, ok3, ok4, ok5;
  bool ro;
  op->target = get_string(env, a[0], &ok1);
  op->lowers = get_strv(env, a[1], NULL, &ok2);
  op->upper = get_string(env, a[2], &ok3);
  op->workdir = get_string(env, a[3], &ok4);
  op->options = get_strv(env, a[4], NULL, &ok5);
  if (!ok1 || !ok2 || !ok3 || !ok4 || !ok5 || op->target == NULL || op->lowers[0] == NULL ||
      napi_get_value_bool(env, a[5], &ro) != napi_ok || napi_get_value_uint32(env, a[6], &op->idmap_host) != napi_ok ||
      napi_get_value_uint32(env, a[7], &op->idmap_size) != napi_ok || (op->upper == NULL) != (op->workdir == NULL))
    return bad_args(env, op, "mountOverlay: bad arguments");
  op->readonly = ro;
  return queue_op(env, op);
}

/* mountLoop(image, target, fstype, flags, data|null) → Promise<void> */
static napi_value js_mount_loop(napi_env env, napi_callback_info info) {
  napi_value a[5];
  mount_op *op = new_op(env, info, 5, a, OP_LOOP, "mountLoop(image, target, fstype, flags, data)");
  if (op == NULL) return NULL;
  int ok1, ok2, ok3, ok4;
  op->source = get_string(env, a[0], &ok1);
  op->target = get_string(env, a[1], &ok2);
  op->fstype = get_string(env, a[2], &ok3);
  op->data = get_string(env, a[4], &ok4);
  double flags;
  if (!ok1 || !ok2 || !ok3 || !ok4 || op->source == NULL || op->target == NULL || op->fstype == NULL ||
      napi_get_value_double(env, a[3], &flags) != napi_ok)
    return bad_args(env, op, "mountLoop: bad arguments");
  op->flags = (unsigned long)flags;
  return queue_op(env, op);
}

/* ---------- project quotas (XFS, ext4 with the project feature) ---------- */

/* struct fsxattr and its ioctls, declared here: <linux/fs.h> clashes with <sys/mount.h>. */
struct cs_fsxattr {
  __u32 fsx_xflags;
  __u32 fsx_extsize;
  __u32 fsx_nextents;
  __u32 fsx_projid;
  __u32 fsx_cowextsize;
  unsigned char fsx_pad[8];
};
#define CS_FS_IOC_FSGETXATTR _IOR('X', 31, struct cs_fsxattr)
#define CS_FS_IOC_FSSETXATTR _IOW('X', 32, struct cs_fsxattr)
#define CS_FS_XFLAG_PROJINHERIT 0x00000200
#ifndef SYS_quotactl_fd
#define SYS_quotactl_fd 443
#endif

static int get_u32_arg(napi_env env, napi_value v, uint32_t *out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

/* setProjectId(dir, projectId) → undefined: the project id, with PROJINHERIT so that
   everything created below inherits it. */
static napi_value js_set_project_id(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  int ok = 0;
  char *dir = argc < 2 ? NULL : get_string(env, a[0], &ok);
  uint32_t id;
  if (dir == NULL || !get_u32_arg(env, a[1], &id)) {
    free(dir);
    napi_throw_type_error(env, NULL, "setProjectId(dir, projectId)");
    return NULL;
  }
  int e = 0;
  const char *step = "open";
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct cs_fsxattr fsx;
  if (fd < 0) e = errno;
  if (e == 0 && ioctl(fd, CS_FS_IOC_FSGETXATTR, &fsx) != 0) { e = errno; step = "FS_IOC_FSGETXATTR"; }
  if (e == 0) {
    fsx.fsx_projid = id;
    fsx.fsx_xflags |= CS_FS_XFLAG_PROJINHERIT;
    if (ioctl(fd, CS_FS_IOC_FSSETXATTR, &fsx) != 0) { e = errno; step = "FS_IOC_FSSETXATTR"; }
  }
  if (fd >= 0) close(fd);
  free(dir);
  if (e != 0) {
    napi_throw(env, make_error(env, e, "setProjectId", step));
    return NULL;
  }
  napi_value undef;
  napi_get_undefined(env, &undef);
  return undef;
}

/* setProjectLimit(path, projectId, limitBytes) → undefined: the project's block hard limit on
   the filesystem holding `path` (0 = none). */
static napi_value js_set_project_limit(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value a[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  int ok = 0;
  char *p = argc < 3 ? NULL : get_string(env, a[0], &ok);
  uint32_t id;
  double bytes;
  if (p == NULL || !get_u32_arg(env, a[1], &id) || napi_get_value_double(env, a[2], &bytes) != napi_ok ||
      bytes < 0) {
    free(p);
    napi_throw_type_error(env, NULL, "setProjectLimit(path, projectId, limitBytes)");
    return NULL;
  }
  int e = 0;
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) e = errno;
  if (e == 0) {
    struct if_dqblk dq;
    memset(&dq, 0, sizeof dq);
    /* Block limits are in 1 KiB units (QIF_DQBLKSIZE). */
    dq.dqb_bhardlimit = (__u64)((bytes + 1023) / 1024);
    dq.dqb_valid = QIF_BLIMITS;
    if (syscall(SYS_quotactl_fd, fd, QCMD(Q_SETQUOTA, PRJQUOTA), id, &dq) != 0) e = errno;
  }
  if (fd >= 0) close(fd);
  free(p);
  if (e != 0) {
    napi_throw(env, make_error(env, e, "setProjectLimit", "quotactl_fd"));
    return NULL;
  }
  napi_value undef;
  napi_get_undefined(env, &undef);
  return undef;
}

/* projectQuota(path, projectId) → {usedBytes, usedInodes, limitBytes} of a project on path's filesystem. */
static napi_value js_project_quota(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  int ok = 0;
  char *p = argc < 2 ? NULL : get_string(env, a[0], &ok);
  uint32_t id;
  if (p == NULL || !get_u32_arg(env, a[1], &id)) {
    free(p);
    napi_throw_type_error(env, NULL, "projectQuota(path, projectId)");
    return NULL;
  }
  int e = 0;
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  struct if_dqblk dq;
  memset(&dq, 0, sizeof dq);
  if (fd < 0) e = errno;
  else if (syscall(SYS_quotactl_fd, fd, QCMD(Q_GETQUOTA, PRJQUOTA), id, &dq) != 0) e = errno;
  if (fd >= 0) close(fd);
  free(p);
  if (e != 0) {
    napi_throw(env, make_error(env, e, "projectQuota", "quotactl_fd"));
    return NULL;
  }
  napi_value r, used, inodes, limit;
  napi_create_object(env, &r);
  napi_create_double(env, (double)dq.dqb_curspace, &used);
  napi_create_double(env, (double)dq.dqb_curinodes, &inodes);
  napi_create_double(env, (double)dq.dqb_bhardlimit * 1024.0, &limit);
  napi_set_named_property(env, r, "usedBytes", used);
  napi_set_named_property(env, r, "usedInodes", inodes);
  napi_set_named_property(env, r, "limitBytes", limit);
  return r;
}

/* ---------- spawn ---------- */

typedef struct {
  pid_t pid;
  napi_threadsafe_function tsfn;
} waiter;

typedef struct {
  int status;
} exit_msg;

/*
 * Field 22 of /proc/PID/stat (start time in clock ticks since boot) into out, "" when unreadable.
 * Read for a child before its waiter thread exists: until then nothing can reap it, so the pid
 * still names this child (a zombie at worst) and a watchdog can later tell it from a reused pid.
 */
static void proc_start_time(pid_t pid, char *out, size_t cap) {
  out[0] = '\0';
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return;
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (p == NULL) return;
  p += 2; /* past ") ": field 3 */
  for (int field = 3; field < 22 && *p != '\0'; p++)
    if (*p == ' ') field++;
  size_t len = strcspn(p, " \n");
  if (len == 0 || len >= cap) return;
  memcpy(out, p, len);
  out[len] = '\0';
}

static void *wait_thread(void *arg) {
  waiter *w = arg;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(w->pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  exit_msg *m = malloc(sizeof *m);
  if (m != NULL) {
    /* ECHILD (someone else reaped it): report as killed, the caller only learns it ended. */
    m->status = r < 0 ? SIGKILL : status;
    napi_call_threadsafe_function(w->tsfn, m, napi_tsfn_blocking);
  }
  napi_release_threadsafe_function(w->tsfn, napi_tsfn_release);
  free(w);
  return NULL;
}

/* Runs on the event loop: callback(code|null, signal|null). */
static void call_exit(napi_env env, napi_value cb, void *ctx, void *data) {
  (void)ctx;
  exit_msg *m = data;
  if (env != NULL && m != NULL) {
    napi_value args[2], undef;
    napi_get_undefined(env, &undef);
    if (WIFEXITED(m->status)) {
      napi_create_int32(env, WEXITSTATUS(m->status), &args[0]);
      napi_get_null(env, &args[1]);
    } else {
      napi_get_null(env, &args[0]);
      napi_create_int32(env, WIFSIGNALED(m->status) ? WTERMSIG(m->status) : SIGKILL, &args[1]);
    }
    napi_call_function(env, undef, cb, 2, args, NULL);
  }
  free(m);
}

static void close_pair(int p[2]) {
  if (p[0] >= 0) close(p[0]);
  if (p[1] >= 0) close(p[1]);
}

/*
 * spawn(file, argv[], envp[], cwd|null, pipeStdin, setsid, onExit[, inheritFds[][, reportPipe]]) →
 *   { pid, stdin: fd|-1, stdout: fd, stderr: fd, report: fd|-1 }
 * The returned fds are the parent's ends, close-on-exec; the caller owns them. `inheritFds`
 * stay open, at the same numbers, in this child only (their close-on-exec flag is cleared in
 * the child alone, by dup2(fd, fd)). `reportPipe`: one more pipe whose write end is the child's
 * fd 3 (what an OCI runtime's `--preserve-fds=1` hands to the sandbox's init).
 */
static napi_value js_spawn(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value a[9];
  CHECK(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  if (argc < 7) {
    napi_throw_type_error(env, NULL, "spawn(file, argv, envp, cwd, pipeStdin, setsid, onExit)");
    return NULL;
  }
  int ok1, ok2, ok3, ok4;
  bool pipe_stdin, new_session;
  char *file = get_string(env, a[0], &ok1);
  char **argv = get_strv(env, a[1], NULL, &ok2);
  char **envp = get_strv(env, a[2], NULL, &ok3);
  char *cwd = get_string(env, a[3], &ok4);
  napi_valuetype cbt;
  napi_typeof(env, a[6], &cbt);
  if (!ok1 || !ok2 || !ok3 || !ok4 || file == NULL || argv[0] == NULL || cbt != napi_function ||
      napi_get_value_bool(env, a[4], &pipe_stdin) != napi_ok ||
      napi_get_value_bool(env, a[5], &new_session) != napi_ok) {
    free(file); free(cwd); free_strv(argv); free_strv(envp);
    napi_throw_type_error(env, NULL, "spawn: bad arguments");
    return NULL;
  }

  int keep[16];
  uint32_t nkeep = 0;
  if (argc >= 8) {
    bool is_arr = false;
    napi_valuetype kt;
    napi_typeof(env, a[7], &kt);
    if (kt != napi_undefined && (napi_is_array(env, a[7], &is_arr) != napi_ok || !is_arr)) {
      free(file); free(cwd); free_strv(argv); free_strv(envp);
      napi_throw_type_error(env, NULL, "spawn: inheritFds must be an array");
      return NULL;
    }
    if (is_arr) {
      napi_get_array_length(env, a[7], &nkeep);
      if (nkeep > 16) nkeep = 16;
      for (uint32_t k = 0; k < nkeep; k++) {
        napi_value el;
        napi_get_element(env, a[7], k, &el);
        if (napi_get_value_int32(env, el, &keep[k]) != napi_ok || keep[k] < 3) {
          free(file); free(cwd); free_strv(argv); free_strv(envp);
          napi_throw_type_error(env, NULL, "spawn: inheritFds must be fds above 2");
          return NULL;
        }
      }
    }
  }

  bool report_pipe = false;
  if (argc >= 9) {
    napi_valuetype rt;
    napi_typeof(env, a[8], &rt);
    if (rt != napi_undefined && napi_get_value_bool(env, a[8], &report_pipe) != napi_ok) {
      free(file); free(cwd); free_strv(argv); free_strv(envp);
      napi_throw_type_error(env, NULL, "spawn: reportPipe must be a boolean");
      return NULL;
    }
  }
  for (uint32_t k = 0; report_pipe && k < nkeep; k++) {
    if (keep[k] == 3) {
      free(file); free(cwd); free_strv(argv); free_strv(envp);
      napi_throw_type_error(env, NULL, "spawn: fd 3 is taken by the report pipe");
      return NULL;
    }
  }

  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, rep[2] = {-1, -1};
  int e = 0;
  if ((pipe_stdin && pipe2(in, O_CLOEXEC) != 0) || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 ||
      (report_pipe && pipe2(rep, O_CLOEXEC) != 0))
    e = errno;

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  pid_t pid = -1;
  if (e == 0) {
    if (pipe_stdin) posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    else posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    if (cwd != NULL) posix_spawn_file_actions_addchdir_np(&fa, cwd);
    for (uint32_t k = 0; k < nkeep; k++) posix_spawn_file_actions_adddup2(&fa, keep[k], keep[k]);
    if (report_pipe) posix_spawn_file_actions_adddup2(&fa, rep[1], 3);
    /* Node ignores SIGPIPE and libuv blocks signals around forks: children start clean.
       Every bit set, not sigfillset(): that leaves out glibc's two internal signals, which
       posix_spawn would then start as ignored in the child (and so in the sandbox). */
    sigset_t all, none;
    memset(&all, 0xff, sizeof all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    short fl = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
    if (new_session) fl |= POSIX_SPAWN_SETSID;
    posix_spawnattr_setflags(&attr, fl);
    e = posix_spawnp(&pid, file, &fa, &attr, argv, envp);
  }
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (in[0] >= 0) close(in[0]);
  if (out[1] >= 0) close(out[1]);
  if (err[1] >= 0) close(err[1]);
  if (rep[1] >= 0) close(rep[1]);
  in[0] = out[1] = err[1] = rep[1] = -1;

  char *what = file;
  if (e != 0) {
    close_pair(in); close_pair(out); close_pair(err); close_pair(rep);
    napi_throw(env, make_error(env, e, "spawn", what));
    free(file); free(cwd); free_strv(argv); free_strv(envp);
    return NULL;
  }
  free(file); free(cwd); free_strv(argv); free_strv(envp);

  char started[32];
  proc_start_time(pid, started, sizeof started);
  waiter *w = malloc(sizeof *w);
  napi_value name;
  napi_create_string_utf8(env, "contree_sys.exit", NAPI_AUTO_LENGTH, &name);
  if (w == NULL || napi_create_threadsafe_function(env, a[6], NULL, name, 0, 1, NULL, NULL, NULL, call_exit,
                                                   &w->tsfn) != napi_ok) {
    /* Cannot report its exit: do not leave it running unreaped. */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    free(w);
    close_pair(in); close_pair(out); close_pair(err); close_pair(rep);
    napi_throw_error(env, NULL, "spawn: could not watch the child");
    return NULL;
  }
  w->pid = pid;
  pthread_t th;
  pthread_attr_t ta;
  pthread_attr_init(&ta);
  pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&ta, 64 * 1024);
  if (pthread_create(&th, &ta, wait_thread, w) != 0) {
    pthread_attr_destroy(&ta);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    napi_release_threadsafe_function(w->tsfn, napi_tsfn_abort);
    free(w);
    close_pair(in); close_pair(out); close_pair(err); close_pair(rep);
    napi_throw_error(env, NULL, "spawn: could not start a waiter thread");
    return NULL;
  }
  pthread_attr_destroy(&ta);

  napi_value res, v;
  napi_create_object(env, &res);
  napi_create_int32(env, pid, &v);
  napi_set_named_property(env, res, "pid", v);
  napi_create_int32(env, in[1], &v);
  napi_set_named_property(env, res, "stdin", v);
  napi_create_int32(env, out[0], &v);
  napi_set_named_property(env, res, "stdout", v);
  napi_create_int32(env, err[0], &v);
  napi_set_named_property(env, res, "stderr", v);
  napi_create_int32(env, rep[0], &v);
  napi_set_named_property(env, res, "report", v);
  if (started[0] != '\0') napi_create_string_utf8(env, started, NAPI_AUTO_LENGTH, &v);
  else napi_get_null(env, &v);
  napi_set_named_property(env, res, "startTime", v);
  return res;
}

/* ---------- sealed executable copies ---------- */

/*
 * sealedCopy(path) → fd: a close-on-exec memfd holding the file's bytes, sealed against any
 * change. OCI runtimes (crun, runc) re-copy their own binary on every start so a container
 * cannot overwrite the host binary through /proc/self/exe (CVE-2019-5736), unless they already
 * run from such a sealed memfd: one copy at start-up instead of one per sandbox.
 */
static napi_value js_sealed_copy(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  int ok;
  char *path = argc < 1 ? NULL : get_string(env, a[0], &ok);
  if (path == NULL) {
    napi_throw_type_error(env, NULL, "sealedCopy(path)");
    return NULL;
  }
  int e = 0, fd = -1;
  int src = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (src < 0 || fstat(src, &st) != 0) e = errno;
  if (e == 0) {
    fd = memfd_create("contree-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) e = errno;
  }
  off_t off = 0;
  while (e == 0 && off < st.st_size) {
    ssize_t n = sendfile(fd, src, &off, (size_t)(st.st_size - off));
    if (n < 0 && errno != EINTR) e = errno;
    else if (n == 0) e = EIO;
  }
  if (e == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0) e = errno;
  if (src >= 0) close(src);
  if (e != 0) {
    if (fd >= 0) close(fd);
    napi_throw(env, make_error(env, e, "sealedCopy", path));
    free(path);
    return NULL;
  }
  free(path);
  napi_value r;
  napi_create_int32(env, fd, &r);
  return r;
}

/* ---------- advisory locks ---------- */

/*
 * tryLock(path) → fd | -1: an exclusive flock on `path` (created if missing), held until the fd
 * is closed or the process dies (the kernel drops it then: no stale locks after a crash);
 * -1 when another holder has it.
 */
static napi_value js_try_lock(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  int ok;
  char *path = argc < 1 ? NULL : get_string(env, a[0], &ok);
  if (path == NULL) {
    napi_throw_type_error(env, NULL, "tryLock(path)");
    return NULL;
  }
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    napi_throw(env, make_error(env, errno, "tryLock", path));
    free(path);
    return NULL;
  }
  free(path);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    if (e != EWOULDBLOCK) {
      napi_throw(env, make_error(env, e, "tryLock", "flock"));
      return NULL;
    }
    fd = -1;
  }
  napi_value r;
  napi_create_int32(env, fd, &r);
  return r;
}

/* ---------- a TCP connection inside another network namespace (exposed ports) ---------- */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

typedef struct {
  int nsfd, port, fd, err;
} netns_connect_op;

/* A thread of its own enters the netns (setns is per thread) and dies with it: the socket stays
   in the netns it was created in, the server's threads never leave theirs. */
static void *netns_connect_thread(void *arg) {
  netns_connect_op *op = arg;
  if (setns(op->nsfd, CLONE_NEWNET) != 0) {
    op->err = errno;
    return NULL;
  }
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) {
    op->err = errno;
    return NULL;
  }
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)op->port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
    op->err = errno;
    close(s);
    return NULL;
  }
  op->fd = s;
  return NULL;
}

/*
 * netnsConnect(nsFd, port) → fd: a non-blocking TCP socket created in the network namespace
 * `nsFd` refers to, connecting (or connected) to 127.0.0.1:port there. Never blocks on the
 * peer: a connection still in progress completes (or fails) on the socket.
 */
static napi_value js_netns_connect(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  int32_t nsfd = -1, port = 0;
  if (argc < 2 || napi_get_value_int32(env, a[0], &nsfd) != napi_ok ||
      napi_get_value_int32(env, a[1], &port) != napi_ok || nsfd < 0 || port < 1 || port > 65535) {
    napi_throw_type_error(env, NULL, "netnsConnect(nsFd, port)");
    return NULL;
  }
  netns_connect_op op = {nsfd, port, -1, 0};
  pthread_t t;
  int e = pthread_create(&t, NULL, netns_connect_thread, &op);
  if (e != 0) {
    napi_throw(env, make_error(env, e, "netnsConnect", "pthread_create"));
    return NULL;
  }
  pthread_join(t, NULL);
  if (op.fd < 0) {
    napi_throw(env, make_error(env, op.err, "netnsConnect", "connect"));
    return NULL;
  }
  napi_value r;
  napi_create_int32(env, op.fd, &r);
  return r;
}

/* ---------- module ---------- */

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL},
      {"umount", NULL, js_umount, NULL, NULL, NULL, napi_default, NULL},
      {"mountOverlay", NULL, js_mount_overlay, NULL, NULL, NULL, napi_default, NULL},
      {"spawn", NULL, js_spawn, NULL, NULL, NULL, napi_default, NULL},
      {"sealedCopy", NULL, js_sealed_copy, NULL, NULL, NULL, napi_default, NULL},
      {"tryLock", NULL, js_try_lock, NULL, NULL, NULL, napi_default, NULL},
      {"mountLoop", NULL, js_mount_loop, NULL, NULL, NULL, napi_default, NULL},
      {"setProjectId", NULL, js_set_project_id, NULL, NULL, NULL, napi_default, NULL},
      {"setProjectLimit", NULL, js_set_project_limit, NULL, NULL, NULL, napi_default, NULL},
      {"projectQuota", NULL, js_project_quota, NULL, NULL, NULL, napi_default, NULL},
      {"netnsConnect", NULL, js_netns_connect, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
