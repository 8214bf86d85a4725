#!/usr/bin/env bash
# Runs a command in a private mount namespace. On cgroup-v1 "hybrid" hosts (a cgroup2 mount
# with controllers beside v1) crun refuses to start; hiding that mount from the server's own
# namespace fixes it without touching the host. Mounts made inside (run rootfs overlays) also
# vanish with the namespace if the server dies, so a crash never leaks them to the host.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then exec "$@"; fi
exec unshare --mount --propagation private -- sh -c '
  # cgroupfs files report size 0, so test for content, not size. crun still writes its pids
  # under the hidden path: a small tmpfs there keeps that off the host.
  if grep -q " /sys/fs/cgroup/unified cgroup2 " /proc/self/mounts && grep -q . /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; then
    umount /sys/fs/cgroup/unified && mount -t tmpfs -o size=64m,mode=755 crun-hide /sys/fs/cgroup/unified || true
  fi
  exec "$@"' sh "$@"
