#!/bin/bash
# make-busybox-image.sh OUT.tar : a tiny busybox image built offline from Debian's busybox-static.
#
#   sudo apt-get install busybox-static jq        # once; GNU tar, gzip and sha256sum are already there
#   scripts/make-busybox-image.sh /tmp/busybox.tar
#   contree-server images import-archive /tmp/busybox.tar --tag busybox:latest
#
# The rootfs is /bin/busybox plus one symlink per applet (what `busybox --install -s` makes),
# /etc/passwd, /etc/group, /root (0700), /tmp and /var/tmp (1777) and empty /proc /sys /dev mount
# points, every file owned by root. OUT.tar is an OCI layout with a Docker-25-style manifest.json
# beside it, so `docker load`, `skopeo copy oci-archive:` and contree-server all read it.
# The output is deterministic: the same busybox binary and SOURCE_DATE_EPOCH give the same bytes.
#
#   env BUSYBOX=/path/to/static/busybox   another binary (default /bin/busybox)
#   env SOURCE_DATE_EPOCH=1700000000       mtime of every file and the image's "created"
set -euo pipefail
umask 022

die() { echo "make-busybox-image: $*" >&2; exit 1; }
[ $# -eq 1 ] && [ -n "$1" ] || die "usage: $0 OUT.tar"
OUT=$(realpath -m "$1")
BB=${BUSYBOX:-/bin/busybox}
HERE=$(dirname "$(realpath "$0")")
OCILIB=$HERE/../packages/server/test/fixtures/ocilib.sh

for tool in jq sha256sum gzip; do command -v "$tool" >/dev/null || die "$tool is missing (apt-get install $tool)"; done
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is required"
[ -x "$BB" ] || die "$BB not found: apt-get install busybox-static"
# A dynamically linked busybox would not run in a rootfs without libc.
if ldd "$BB" >/dev/null 2>&1; then die "$BB is dynamically linked; install busybox-static"; fi
[ -f "$OCILIB" ] || die "ocilib.sh not found at $OCILIB"
[ -d "$(dirname "$OUT")" ] || die "directory $(dirname "$OUT") does not exist"

# shellcheck source=../packages/server/test/fixtures/ocilib.sh
. "$OCILIB"
# Owners are forced to root (the script may run as any user) and host xattrs/ACLs are left out,
# so the layer only depends on the binary and SOURCE_DATE_EPOCH.
oci_tar() {
  local D=$1
  ( cd "$D" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort ) |
    tar --create --file=- --directory="$D" --no-recursion --verbatim-files-from --files-from=- \
        --format=posix --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' \
        --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH"
}

case $(dpkg --print-architecture 2>/dev/null || uname -m) in
  amd64|x86_64) ARCH=amd64 VARIANT="" ;;
  arm64|aarch64) ARCH=arm64 VARIANT=v8 ;;
  armhf) ARCH=arm VARIANT=v7 ;;
  armel) ARCH=arm VARIANT=v5 ;;
  i386|i686) ARCH=386 VARIANT="" ;;
  ppc64el|ppc64le) ARCH=ppc64le VARIANT="" ;;
  s390x) ARCH=s390x VARIANT="" ;;
  riscv64) ARCH=riscv64 VARIANT="" ;;
  *) die "unknown architecture $(uname -m)" ;;
esac

W=$(mktemp -d "${TMPDIR:-/tmp}/make-busybox-image.XXXXXX")
trap 'rm -rf "$W"' EXIT

# ---- rootfs ----
R=$W/rootfs
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,tmp,var/tmp,proc,sys,dev}
chmod 1777 "$R/tmp" "$R/var/tmp"
chmod 0700 "$R/root"
install -m 0755 "$BB" "$R/bin/busybox"
"$BB" --list-full | LC_ALL=C sort | while read -r applet; do
  [ "$applet" = bin/busybox ] && continue
  case $applet in /*|*..*|'') die "odd applet path: $applet" ;; esac
  case $applet in */*) [ -d "$R/${applet%/*}" ] || mkdir -p "$R/${applet%/*}" ;; esac
  ln -s /bin/busybox "$R/$applet"
done
[ -L "$R/bin/sh" ] || die "$BB has no sh applet"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$R/etc/group"
echo busybox > "$R/etc/hostname"

# ---- OCI layout + Docker 25 manifest.json ----
L=$W/layout
oci_init "$L"
layer=$(oci_layer "$L" "$R" gzip)
desc=$(oci_image "$L" "" "$ARCH" "$VARIANT" '["/bin/sh"]' "$layer")
jq -c --argjson d "$desc" '.manifests = [$d + {annotations: {
    "io.containerd.image.name": "docker.io/library/busybox:latest",
    "org.opencontainers.image.ref.name": "latest"}}]' "$L/index.json" > "$L/index.json.tmp"
mv "$L/index.json.tmp" "$L/index.json"
man=$L/blobs/sha256/$(jq -r '.digest | ltrimstr("sha256:")' <<< "$desc")
jq -c '[{Config: ("blobs/sha256/" + (.config.digest | ltrimstr("sha256:"))),
         RepoTags: ["busybox:latest"],
         Layers: [.layers[].digest | "blobs/sha256/" + ltrimstr("sha256:")]}]' "$man" > "$L/manifest.json"

( cd "$L" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort ) |
  tar --create --file="$W/out.tar" --directory="$L" --no-recursion --verbatim-files-from --files-from=- \
      --format=posix --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' \
      --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH"
mv -f "$W/out.tar" "$OUT"
echo "wrote $OUT ($(stat -c %s "$OUT") bytes, linux/$ARCH${VARIANT:+/$VARIANT}, manifest $(jq -r .digest <<< "$desc"))" >&2
