#!/bin/bash
# curl-pull.sh REGISTRY_URL REPO REF OUTDIR [ARCH=amd64] : the raw baseline for bench/import/run.ts.
# Pulls one image the way a minimal client would (docs/images-offline.md Appendix D): manifest with
# the full Accept list, index → linux/ARCH manifest (digest checked), config and layers with one
# curl, all checked with one sha256sum -c, then every layer extracted in order with GNU tar into
# OUTDIR/rootfs. No auth, no whiteouts, no retries: a lower bound for what the server does.
# Few processes on purpose: on a busy machine each fork/exec costs more than the bytes.
set -euo pipefail
R=$1; N=$2; REF=$3; O=$4; ARCH=${5:-amd64}
ACCEPT='application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json'
mkdir -p "$O/blobs" "$O/rootfs"

manifest() { # REF -> $O/m.json; sets ct to its content type
  curl -fsS -H "Accept: $ACCEPT" -D "$O/h.txt" -o "$O/m.json" "$R/v2/$N/manifests/$1"
  ct=""
  while IFS=": " read -r k v; do if [ "${k,,}" = content-type ]; then ct=${v%$'\r'}; fi; done < "$O/h.txt"
}

manifest "$REF"
case $ct in
  *index*|*list*)
    d=$(jq -r --arg a "$ARCH" '[.manifests[] | select(.platform.os == "linux" and .platform.architecture == $a)][0].digest' "$O/m.json")
    [ "$d" != null ] || { echo "no linux/$ARCH manifest" >&2; exit 1; }
    manifest "$d"
    echo "${d#sha256:}  $O/m.json" > "$O/sums" ;;
  *) : > "$O/sums" ;;
esac
mapfile -t digests < <(jq -r '.config.digest, .layers[].digest' "$O/m.json")
args=()
for d in "${digests[@]}"; do
  args+=(-o "$O/blobs/${d#sha256:}" "$R/v2/$N/blobs/$d")
  echo "${d#sha256:}  $O/blobs/${d#sha256:}" >> "$O/sums"
done
curl -fsS "${args[@]}"
sha256sum --quiet --strict -c "$O/sums"
for d in "${digests[@]:1}"; do
  tar --extract --file="$O/blobs/${d#sha256:}" --directory="$O/rootfs" --numeric-owner --same-permissions \
      --xattrs --xattrs-include='*'
done
