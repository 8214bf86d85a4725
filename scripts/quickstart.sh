#!/usr/bin/env bash
# Sets up everything on a fresh Debian 12 machine (as root) and starts the server with its
# embedded defaults: installs runtimes and npm deps, builds, imports a small busybox image
# (made offline from Debian's busybox-static) as busybox:latest, then serves on
# $CONTREE_LISTEN (default 127.0.0.1:8080) with data in $CONTREE_DATA_DIR (default /var/lib/contree).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

export CONTREE_DATA_DIR=${CONTREE_DATA_DIR:-/var/lib/contree}
BIN="node packages/server/bin/contree-server.js"
if ! $BIN images list --data-dir "$CONTREE_DATA_DIR" 2>/dev/null | grep -q 'busybox:latest'; then
  archive=$(mktemp /tmp/contree-busybox-XXXXXX.tar)
  bash scripts/make-busybox-image.sh "$archive" >/dev/null
  $BIN images import-archive "$archive" --tag busybox:latest --data-dir "$CONTREE_DATA_DIR"
  rm -f "$archive"
fi
exec bash scripts/in-private-mount-ns.sh $BIN serve "$@"
