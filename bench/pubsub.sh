#!/usr/bin/env bash
# Pub/sub fan-out of infralab against redis-server, side by side, with one client harness
# (crates/pubsub/examples/pubsub_load.rs):
#   bench/pubsub.sh [runs] [harness flags...]
# One publisher to 1, 10 and 100 subscribers, 16-byte and 1 KiB payloads. Prints the
# median delivered messages/s and publish-to-receive latency (p50, p99) of each server
# and the ratio infralab / redis. Both run with their default output buffer limits
# (pubsub 32mb 8mb 60); the harness keeps the publisher within a window of the slowest
# subscriber so neither limit is reached.
. "$(dirname "$0")/lib.sh"
RUNS=${1:-5}
shift || true
OURS=7410
PEER=7411
TARGET=${CARGO_TARGET_DIR:-$BENCH_ROOT/target}

cargo build --release -q -p infralab --manifest-path "$BENCH_ROOT/Cargo.toml"
cargo build --release -q -p pubsub --example pubsub_load --manifest-path "$BENCH_ROOT/Cargo.toml"
"$TARGET/release/infralab" pubsub --port "$OURS" 2>/dev/null &
PIDS+=($!)
wait_port "$OURS"
start_redis "$PEER"

echo "pub/sub fan-out, median of $RUNS runs (peer: redis-server $(redis-server --version | awk '{print $3}'), $(nproc) CPUs)"
"$TARGET/release/examples/pubsub_load" --runs "$RUNS" \
  --server "infralab=127.0.0.1:$OURS" --server "redis=127.0.0.1:$PEER" "$@"
