#!/usr/bin/env bash
# Raw run pipeline driven by a shell, the baseline for the server's Node-driven pipeline:
#   mkdir run dirs → mount overlay (lower = busybox image) → <runtime> run sh -c 'echo hi > /out'
#   → umount → mv upper into the layer store.
# Prints the median (min–max) wall time per runtime over N runs, plus the script alone (no sandbox).
#
# usage: sudo bench/run-latency/raw-pipeline.sh [-n RUNS] [crun] [runc] [runsc]
# Needs root, busybox-static, jq and the runtimes. Leaves nothing behind (trap cleanup).
set -euo pipefail

N=30
while getopts n: opt; do
  case $opt in
    n) N=$OPTARG ;;
    *) echo "usage: $0 [-n RUNS] [runtime...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
RUNTIMES=("$@")
[ ${#RUNTIMES[@]} -eq 0 ] && RUNTIMES=(none crun runc runsc)

WORK=$(mktemp -d /tmp/raw-pipeline.XXXXXX)
cleanup() {
  # Unmount anything still mounted under WORK (interrupted run), then remove it.
  { grep -o " $WORK[^ ]*" /proc/self/mountinfo || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Image: static busybox with its applets.
IMG=$WORK/layers/base
mkdir -p "$IMG"/{bin,proc,sys,dev,tmp,etc,root}
cp /bin/busybox "$IMG/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$IMG/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$IMG/etc/passwd"

# One template bundle config; root.path is relative so each run dir is a bundle.
TEMPLATE=$WORK/config.json
(cd "$WORK" && runc spec && jq '.root.path="rootfs" | .root.readonly=false | .process.terminal=false
  | .process.args=["/bin/sh","-c","echo hi > /out"]' config.json > c && mv c "$TEMPLATE")

# crun refuses cgroup-v1 hybrid mode unless the cgroup2 mount is hidden (isolation-lab §2).
CRUN=(crun --root "$WORK/crun")
# (cgroupfs files report size 0, so test the content, not -s.) The tmpfs keeps crun from writing
# into the host's /sys/fs/cgroup tmpfs under the hidden mount.
if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
  CRUN=(unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified && mount -t tmpfs -o size=256k crun-hide /sys/fs/cgroup/unified; exec "$@"' sh crun --root "$WORK/crun")
fi

now_ns() { date +%s%N; }

one_run() { # $1 runtime, $2 index
  local rt=$1 i=$2 id="bench-$$-$1-$2" R="$WORK/runs/$1-$2"
  mkdir -p "$R/upper" "$R/work" "$R/rootfs"
  mount -t overlay overlay -o "lowerdir=$IMG,upperdir=$R/upper,workdir=$R/work" "$R/rootfs"
  cp "$TEMPLATE" "$R/config.json"
  case $rt in
    none) ;;
    crun) "${CRUN[@]}" run --bundle "$R" "$id" ;;
    runc) runc --root "$WORK/runc" run --bundle "$R" "$id" ;;
    runsc) runsc --root "$WORK/runsc" --network=none --overlay2=none run --bundle "$R" "$id" | cat ;;
  esac
  umount "$R/rootfs"
  mv "$R/upper" "$WORK/layers/$id"
}

median() { sort -n | awk '{a[NR]=$1} END {printf "%.1f (%.1f–%.1f) ms", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2), a[1], a[NR]}'; }

for rt in "${RUNTIMES[@]}"; do
  if [ "$rt" != none ] && ! command -v "$rt" >/dev/null; then echo "$rt: not installed"; continue; fi
  for w in 1 2 3; do one_run "$rt" "warm$w" >/dev/null; done
  times=()
  for i in $(seq 1 "$N"); do
    t0=$(now_ns); one_run "$rt" "$i" >/dev/null; t1=$(now_ns)
    times+=($(( (t1 - t0) / 1000 )))
  done
  [ "$rt" = none ] || [ -f "$WORK/layers/bench-$$-$rt-1/out" ] || { echo "$rt: the run did not write /out" >&2; exit 1; }
  label=$rt; [ "$rt" = none ] && label="script alone"
  printf '%-13s %s  N=%s\n' "$label" "$(printf '%s\n' "${times[@]}" | awk '{print $1/1000}' | median)" "$N"
done
