#!/usr/bin/env bash
# Builds the `infralab:local` image FROM scratch out of the host-built release binary and
# the shared libraries `ldd` says it needs. Used by docker/offline.yml and the compose test.
#   docker/build-offline.sh            build the release binary and the image from it
#   docker/build-offline.sh BINARY     use an existing binary (the compose test passes its own)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
binary="${1:-}"
if [ -z "$binary" ]; then
  cargo build --release -q --bin infralab
  binary=target/release/infralab
fi
rootfs="$root/docker/rootfs"
rm -rf "$rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/tmp" "$rootfs/data"
cp "$binary" "$rootfs/usr/local/bin/infralab"
# Every library the binary links, and the dynamic loader, at the same paths as on the host.
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
docker build -q -t infralab:local -f docker/offline.Dockerfile docker >/dev/null
echo "built infralab:local from $(du -sh "$rootfs" | cut -f1) of host files"
