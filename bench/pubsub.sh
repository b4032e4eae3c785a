#!/usr/bin/env bash
# Pub/sub fan-out of infralab against redis-server, side by side, with one client harness
# (crates/pubsub/examples/pubsub_load.rs):
#   bench/pubsub.sh [runs] [harness flags...]
# One publisher to 1, 10 and 100 subscribers, 16-byte and 1 KiB payloads. Prints the
# median delivered messages/s and publish-to-receive latency (p50, p99) of each server
# and the ratio infralab / redis. Both run with their default output buffer limits
# (pubsub 32mb 8mb 60); the harness keeps the publisher within a window of the slowest
# subscriber so neither limit is reached.
#
# Then the slow-subscriber row (crates/pubsub/examples/slow_subscriber.rs): one subscriber
# stops reading while a publisher sends SLOW_MESSAGES x SLOW_SIZE bytes (200,000 x 1 KiB) and
# a fast subscriber checks it gets every message in order. The stalled subscriber must be
# disconnected at the 32 MB hard limit; the row prints each server's peak RSS (VmHWM from
# /proc, a fresh server per run, so the peak is this scenario's) side by side, median of RUNS.
# SLOW_ONLY=1 runs only this row.
. "$(dirname "$0")/lib.sh"
RUNS=${1:-5}
shift || true
OURS=7410
PEER=7411
TARGET=${CARGO_TARGET_DIR:-$BENCH_ROOT/target}

SLOW_MESSAGES=${SLOW_MESSAGES:-200000}
SLOW_SIZE=${SLOW_SIZE:-1024}

cargo build --release -q -p infralab --manifest-path "$BENCH_ROOT/Cargo.toml"
cargo build --release -q -p pubsub --example pubsub_load --example slow_subscriber \
  --manifest-path "$BENCH_ROOT/Cargo.toml"

if [ -z "${SLOW_ONLY:-}" ]; then
  "$TARGET/release/infralab" pubsub --port "$OURS" 2>/dev/null &
  ours=$!
  PIDS+=("$ours")
  wait_port "$OURS"
  start_redis "$PEER"
  echo "pub/sub fan-out, median of $RUNS runs (peer: redis-server $(redis-server --version | awk '{print $3}'), $(nproc) CPUs)"
  "$TARGET/release/examples/pubsub_load" --runs "$RUNS" \
    --server "infralab=127.0.0.1:$OURS" --server "redis=127.0.0.1:$PEER" "$@"
  kill "$ours" "${PIDS[-1]}" 2>/dev/null || true
  wait 2>/dev/null || true
fi

# kib PID FIELD: a memory figure of a process from /proc/PID/status (VmRSS, VmHWM), in KiB.
kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# slow_run WHICH: one slow-subscriber run against a fresh server; prints "peak-MB base-MB".
slow_run() {
  local pid
  if [ "$1" = infralab ]; then
    "$TARGET/release/infralab" pubsub --port "$OURS" 2>/dev/null &
    pid=$!
    wait_port "$OURS"
    port=$OURS
  else
    redis-server --port "$PEER" --save '' --appendonly no >/dev/null 2>&1 &
    pid=$!
    wait_port "$PEER"
    port=$PEER
  fi
  local base result
  base=$(kib "$pid" VmRSS)
  result=$("$TARGET/release/examples/slow_subscriber" --addr "127.0.0.1:$port" \
    --messages "$SLOW_MESSAGES" --size "$SLOW_SIZE")
  case "$result" in
    *"in-order stalled-disconnected yes") ;;
    *) echo "$1: $result" >&2 ;;
  esac
  awk -v p="$(kib "$pid" VmHWM)" -v b="$base" 'BEGIN { printf "%.1f %.1f\n", p / 1024, b / 1024 }'
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

echo "slow subscriber: $SLOW_MESSAGES x $SLOW_SIZE B published, one subscriber stalled, one reading; server peak RSS, median of $RUNS runs"
ours_runs=() peer_runs=()
for i in $(seq 1 "$RUNS"); do
  if ((i % 2)); then
    ours_runs+=("$(slow_run infralab)")
    peer_runs+=("$(slow_run redis)")
  else
    peer_runs+=("$(slow_run redis)")
    ours_runs+=("$(slow_run infralab)")
  fi
done
peak() { printf '%s\n' "$@" | awk '{ print $1 }'; }
base() { printf '%s\n' "$@" | awk '{ print $2 }'; }
mo=$(median $(peak "${ours_runs[@]}"))
mp=$(median $(peak "${peer_runs[@]}"))
printf 'peak RSS: infralab %.1f MB  redis %.1f MB  ratio %.2f   (at start: %s MB | %s MB; runs: %s | %s)\n' \
  "$mo" "$mp" "$(awk -v x="$mo" -v y="$mp" 'BEGIN { print (y > 0) ? x / y : 0 }')" \
  "$(median $(base "${ours_runs[@]}"))" "$(median $(base "${peer_runs[@]}"))" \
  "$(peak "${ours_runs[@]}" | xargs)" "$(peak "${peer_runs[@]}" | xargs)"
