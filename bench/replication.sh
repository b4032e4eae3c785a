#!/usr/bin/env bash
# "Sync replication makes writes slower", measured: SET throughput on a kv primary with
# no replica, one async replica, and one sync replica (--sync-replicas 1), with
# redis-benchmark -c 50 at -P 1 and -P 16; plus the async replica's lag (INFO
# replication lag_ms, sampled during the load) and redis-server with one replica as peer.
#   bench/replication.sh [runs] [requests]
#
# Placement on a 2-core machine, as the other scripts: every primary (kv's three and
# Redis's) on CPU 1, redis-benchmark on CPU 0. The replicas both go on CPU 0 with the load
# generator (REPLICA_CPU=0; REPLICA_CPU= leaves them unpinned): Redis's replica is one
# thread and so is kv's, and in one run both must get the same placement, or the ratio
# measures the scheduler rather than the servers. CPU 0 rather than CPU 1 because a replica
# beside its primary would take the primary's core, and the row is meant to measure what
# a replicated write costs the primary (the replica's own cost still shows: it slows the
# load generator it shares CPU 0 with, equally for both). Unpinned, the kernel moves the
# replicas between the cores as the load shifts, which is what made this row swing by
# +-20% from run to run. The runs of the four primaries alternate in order (a drift in the
# machine's speed then favours none of them).
. "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
N=${2:-100000}
P0=7420 P1=7421 R1=7422 P2=7423 R2=7424 RP=7425 RR=7426
SERVER=(taskset -c "${SERVER_CPU:-1}")
LOAD=(taskset -c "${LOAD_CPU:-0}")
REPLICA_CPU=${REPLICA_CPU-0}
if [ -n "$REPLICA_CPU" ]; then REPLICA=(taskset -c "$REPLICA_CPU"); else REPLICA=(); fi

cargo build --release -q -p infralab --manifest-path "$BENCH_ROOT/Cargo.toml"
BIN="${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/release/infralab"

# Redis writes the full sync's RDB (primary and replica side) into its working directory.
RDB_DIR=$(mktemp -d)
trap 'cleanup; rm -rf "$RDB_DIR"' EXIT
"${SERVER[@]}" "$BIN" kv --port "$P0" 2>/dev/null & PIDS+=($!)
"${SERVER[@]}" "$BIN" kv --port "$P1" 2>/dev/null & PIDS+=($!)
"${SERVER[@]}" "$BIN" kv --port "$P2" --replication sync --sync-replicas 1 2>/dev/null & PIDS+=($!)
"${SERVER[@]}" redis-server --port "$RP" --dir "$RDB_DIR" --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
PIDS+=($!)
for port in "$P0" "$P1" "$P2" "$RP"; do wait_port "$port"; done
"${REPLICA[@]}" "$BIN" kv --port "$R1" --replicaof "127.0.0.1:$P1" 2>/dev/null & PIDS+=($!)
"${REPLICA[@]}" "$BIN" kv --port "$R2" --replicaof "127.0.0.1:$P2" 2>/dev/null & PIDS+=($!)
"${REPLICA[@]}" redis-server --port "$RR" --dir "$RDB_DIR" --dbfilename replica.rdb --save '' --appendonly no --replicaof 127.0.0.1 "$RP" \
  --daemonize no >/dev/null 2>&1 &
PIDS+=($!)
for port in "$R1" "$R2" "$RR"; do wait_port "$port"; done
for port in "$R1" "$R2" "$RR"; do
  until redis-cli -p "$port" INFO replication | grep -q 'master_link_status:up'; do sleep 0.1; done
done

# set_rps PORT PIPELINE: SETs per second, redis-benchmark pinned to the load's CPU.
set_rps() {
  "${LOAD[@]}" redis-benchmark -p "$1" -t set -n "$N" -c 50 -P "$2" -r 100000 -q 2>/dev/null |
    tr '\r' '\n' |
    awk '/requests per second/ { for (i = 2; i <= NF; i++) if ($i == "requests") rate = $(i - 1) } END { print rate }'
}

# lag_samples PORT: lag_ms of slave0, every 20 ms, until the file "$STOP" exists.
STOP=$(mktemp -u)
lag_samples() {
  while [ ! -e "$STOP" ]; do
    redis-cli -p "$1" INFO replication | tr -d '\r' | sed -n 's/^slave0:.*lag_ms=\([0-9]*\).*/\1/p'
    sleep 0.02
  done
}

TARGETS=("none:$P0" "async:$P1" "sync:$P2" "redis-async:$RP")
echo "(primaries on CPU ${SERVER_CPU:-1}, redis-benchmark on CPU ${LOAD_CPU:-0}, replicas on CPU ${REPLICA_CPU:-any}; load average $(cut -d' ' -f1-3 /proc/loadavg))"
for pipeline in 1 16; do
  echo "SET, -c 50 -P $pipeline, $N requests, median of $RUNS:"
  declare -A runs=() med=()
  for i in $(seq 0 $((RUNS - 1))); do
    # Run i starts with target i (mod 4): each goes first, second, ... in turn.
    for j in 0 1 2 3; do
      target=${TARGETS[$(((i + j) % 4))]}
      name=${target%%:*} port=${target##*:}
      runs[$name]+="$(set_rps "$port" "$pipeline") "
    done
  done
  for target in "${TARGETS[@]}"; do
    name=${target%%:*}
    # shellcheck disable=SC2086
    med[$name]=$(median ${runs[$name]})
    printf '  %-12s %10.0f rps   (runs: %s)\n' "$name" "${med[$name]}" "${runs[$name]% }"
  done
  awk -v n="${med[none]}" -v a="${med[async]}" -v s="${med[sync]}" -v r="${med[redis-async]}" 'BEGIN {
    printf "  ratios: async/none %.2f   sync/none %.2f   sync/async %.2f   async/redis-async %.2f\n",
      a / n, s / n, s / a, a / r }'
  # Replication lag of the async replica under the same load.
  rm -f "$STOP"
  lag_samples "$P1" >"$STOP.lag" &
  sampler=$!
  set_rps "$P1" "$pipeline" >/dev/null
  touch "$STOP"
  wait "$sampler"
  mapfile -t lags <"$STOP.lag"
  if [ "${#lags[@]}" -gt 0 ]; then
    printf '  async replica lag under load: median %s ms, max %s ms (%d samples)\n' \
      "$(median "${lags[@]}")" "$(printf '%s\n' "${lags[@]}" | sort -g | tail -1)" "${#lags[@]}"
  fi
  rm -f "$STOP" "$STOP.lag"
  unset runs med
done
