#!/bin/bash
# make-debian.sh CACHE_DIR REGISTRY_HOST : Debian bookworm minbase as a one-layer OCI image, pushed to
# REGISTRY_HOST as bench/debian:bookworm. The debootstrap rootfs and the OCI layout are cached in
# CACHE_DIR (first run ~1-2 min, needs the apt mirror; later runs only push).
set -euo pipefail
C=$(realpath -m "$1"); REG=$2
HERE=$(dirname "$(realpath "$0")")
. "$HERE/../../packages/server/test/fixtures/ocilib.sh"
mkdir -p "$C"
if [ ! -f "$C/layout.done" ]; then
  if [ ! -f "$C/rootfs.done" ]; then
    [ -n "${MIRROR:-}" ] || MIRROR=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | grep -E '^(URIs:|deb )' | grep -oE 'https?://[^ ]+' | grep -v -- '-security' | head -1 || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
    rm -rf "$C/rootfs"; mkdir -p "$C/debcache"
    echo "debootstrap minbase from $MIRROR (cached in $C)..." >&2
    debootstrap --variant=minbase --cache-dir="$C/debcache" bookworm "$C/rootfs" "$MIRROR" > "$C/debootstrap.log"
    R=$C/rootfs
    rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb "$R"/var/log/* "$R"/dev/* "$R"/run/* "$R"/tmp/*
    mkdir -p "$R/var/lib/apt/lists/partial" "$R/var/cache/apt/archives/partial"; : > "$R/etc/machine-id"
    touch "$C/rootfs.done"
  fi
  rm -rf "$C/layout"; oci_init "$C/layout"
  A=$(dpkg --print-architecture); V=""; [ "$A" = arm64 ] && V=v8
  oci_image "$C/layout" debian "$A" "$V" '["/bin/bash"]' "$(oci_layer "$C/layout" "$C/rootfs" gzip)" > /dev/null
  touch "$C/layout.done"
fi
skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$C/layout:debian" "docker://$REG/bench/debian:bookworm"
