#!/usr/bin/env bash
# Installs what the server and its tests need on Debian 12 (run as root): sandbox runtimes,
# the offline registry and image tools, a C compiler (the native addon, native/), then the npm
# dependencies, and builds the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(runc crun runsc iproute2 iptables nftables busybox-static jq zstd attr libcap2-bin
      docker-registry skopeo apache2-utils debootstrap rsync curl ca-certificates gcc libc6-dev
      chromium openssl)
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "==> build"
npm run --silent build
