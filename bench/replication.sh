#!/usr/bin/env bash
# "Sync replication makes writes slower", measured: SET throughput on a kv primary with
# no replica, one async replica, and one sync replica (--sync-replicas 1), with
# redis-benchmark -c 50 at -P 1 and -P 16; plus the async replica's lag (INFO
# replication lag_ms, sampled during the load) and redis-server with one replica as peer.
#   bench/replication.sh [runs] [requests]
. "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
N=${2:-100000}
P0=7420 P1=7421 R1=7422 P2=7423 R2=7424 RP=7425 RR=7426

cargo build --release -q -p infralab --manifest-path "$BENCH_ROOT/Cargo.toml"
BIN="${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/release/infralab"

"$BIN" kv --port "$P0" 2>/dev/null & PIDS+=($!)
"$BIN" kv --port "$P1" 2>/dev/null & PIDS+=($!)
"$BIN" kv --port "$P2" --replication sync --sync-replicas 1 2>/dev/null & PIDS+=($!)
for port in "$P0" "$P1" "$P2"; do wait_port "$port"; done
"$BIN" kv --port "$R1" --replicaof "127.0.0.1:$P1" 2>/dev/null & PIDS+=($!)
"$BIN" kv --port "$R2" --replicaof "127.0.0.1:$P2" 2>/dev/null & PIDS+=($!)
start_redis "$RP"
redis-server --port "$RR" --save '' --appendonly no --replicaof 127.0.0.1 "$RP" --daemonize no >/dev/null 2>&1 &
PIDS+=($!)
for port in "$R1" "$R2" "$RR"; do wait_port "$port"; done
for port in "$R1" "$R2" "$RR"; do
  until redis-cli -p "$port" INFO replication | grep -q 'master_link_status:up'; do sleep 0.1; done
done

# lag_samples PORT: lag_ms of slave0, every 20 ms, until the file "$STOP" exists.
STOP=$(mktemp -u)
lag_samples() {
  while [ ! -e "$STOP" ]; do
    redis-cli -p "$1" INFO replication | tr -d '\r' | sed -n 's/^slave0:.*lag_ms=\([0-9]*\).*/\1/p'
    sleep 0.02
  done
}

for pipeline in 1 16; do
  echo "SET, -c 50 -P $pipeline, $N requests, median of $RUNS:"
  declare -A med=()
  for target in "none:$P0" "async:$P1" "sync:$P2" "redis-async:$RP"; do
    name=${target%%:*} port=${target##*:}
    runs=()
    for _ in $(seq 1 "$RUNS"); do runs+=("$(rps "$port" set -n "$N" -c 50 -P "$pipeline" -r 100000)"); done
    med[$name]=$(median "${runs[@]}")
    printf '  %-12s %10.0f rps   (runs: %s)\n' "$name" "${med[$name]}" "${runs[*]}"
  done
  awk -v n="${med[none]}" -v a="${med[async]}" -v s="${med[sync]}" 'BEGIN {
    printf "  ratios: async/none %.2f   sync/none %.2f   sync/async %.2f\n", a / n, s / n, s / a }'
  # Replication lag of the async replica under the same load.
  rm -f "$STOP"
  lag_samples "$P1" >"$STOP.lag" &
  sampler=$!
  rps "$P1" set -n "$N" -c 50 -P "$pipeline" -r 100000 >/dev/null
  touch "$STOP"
  wait "$sampler"
  mapfile -t lags <"$STOP.lag"
  if [ "${#lags[@]}" -gt 0 ]; then
    printf '  async replica lag under load: median %s ms, max %s ms (%d samples)\n' \
      "$(median "${lags[@]}")" "$(printf '%s\n' "${lags[@]}" | sort -g | tail -1)" "${#lags[@]}"
  fi
  rm -f "$STOP" "$STOP.lag"
  unset med
done
