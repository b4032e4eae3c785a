#!/usr/bin/env bash
# PING throughput of the shared scaffolding (service) against redis-server, side by side.
#   bench/ping.sh [runs] [requests]
# Prints the median requests/s of each at -P 1 and -P 16 (50 clients) and the ratio
# infralab / redis. Redis is single-threaded; infralab runs on tokio's multi-threaded runtime.
. "$(dirname "$0")/lib.sh"
RUNS=${1:-5}
N=${2:-200000}
OURS=7400
PEER=7401

cargo build --release -q -p service --example ping --manifest-path "$BENCH_ROOT/Cargo.toml"
"$BENCH_ROOT/target/release/examples/ping" --port "$OURS" 2>/dev/null &
PIDS+=($!)
wait_port "$OURS"
start_redis "$PEER"

echo "ping_mbulk, $N requests, 50 clients, median of $RUNS runs (peer: $(redis-server --version | awk '{print $3}'))"
compare "PING_MBULK -P 1" "$OURS" "$PEER" ping_mbulk "$RUNS" -n "$N" -P 1
compare "PING_MBULK -P 16" "$OURS" "$PEER" ping_mbulk "$RUNS" -n "$((N * 5))" -P 16
