#!/usr/bin/env bash
# Builds the `infralab:local` image FROM scratch out of a host-built `infralab` binary and
# the shared libraries `ldd` says it needs, for docker/offline.yml (machines with a Docker
# engine but no registry). The whole offline path is one block in README.md.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: docker/build-offline.sh [--debug] [BINARY]

  BINARY    put this infralab binary in the image instead of building one
  --debug   build and use the debug binary (fast to build) instead of the release one

Without BINARY, cargo builds `infralab` and the binary is taken from cargo's target
directory: $CARGO_TARGET_DIR, or build.target-dir in .cargo/config.toml, or ./target
(as `cargo metadata` reports it).
USAGE
}

profile=release
binary=
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --debug) profile=debug ;;
    -*) echo "docker/build-offline.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
    *) binary="$arg" ;;
  esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ -z "$binary" ]; then
  if [ "$profile" = release ]; then
    cargo build --release --locked -q --bin infralab
  else
    cargo build --locked -q --bin infralab
  fi
  # Where cargo put it: the target directory as cargo itself resolves it.
  target_dir="$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
  binary="$target_dir/$profile/infralab"
fi
if [ ! -x "$binary" ]; then
  echo "docker/build-offline.sh: no infralab binary at $binary" >&2
  exit 1
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
echo "built infralab:local from $binary ($(du -sh "$rootfs" | cut -f1) of host files)"
