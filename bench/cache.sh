#!/usr/bin/env bash
# The cache against redis-server, side by side:
#   1. GET/SET throughput with redis-benchmark (-P 1 and -P 16), medians and ratio;
#   2. hit ratio of each eviction policy on one Zipf(0.99) trace (100k keys, 1M requests,
#      fixed seed, 1000-byte values, cache-aside: GET, SET on a miss) at memory budgets of
#      1% and 10% of the working set, against redis-server's allkeys-lru and allkeys-lfu,
#      with the ideal bound (the share of requests to the C most popular keys), the best
#      hit ratio any policy that sees only the past can expect, and exact LFU with perfect
#      memory (an online policy that comes close to it; see crates/cache/src/workload.rs);
#   3. the same on a scan-heavy trace: after every 20,000 Zipf requests a burst of 20,000
#      one-hit wonders (keys asked once, never again), where plain LRU collapses.
#
# Pinned when taskset exists: each server on CPU 1, redis-benchmark and the replay on
# CPU 0 (on a 2-core machine shared with other work the figures are "under load").
#
#   bench/cache.sh [runs] [requests]       (defaults: 3 runs, 1000000 requests)
#   ONLY=throughput bench/cache.sh ...     (or ONLY=hit-ratio: one part alone)
#
# Same budget for both: the cache's maxmemory is the budget; Redis's is its own baseline
# used_memory (measured after start, ~1 MB of non-data) plus the budget. The cache charges
# 166 bytes of bookkeeping per entry (crates/cache/src/memory.rs), Redis less, so Redis
# fits slightly more keys in the same budget: the comparison does not favour the cache.
# `ttl` degenerates to FIFO here (the trace writes no TTLs); random is the baseline.
. "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
REQUESTS=${2:-1000000}
# Free ports picked now (several benchmarks may run on one machine at once).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
OURS=$(free_port)
PEER=$(free_port)
while [ "$PEER" = "$OURS" ]; do PEER=$(free_port); done
TARGET="${CARGO_TARGET_DIR:-$BENCH_ROOT/target}"
if command -v taskset >/dev/null; then
  SERVER_CPU=(taskset -c 1)
  LOAD_CPU=(taskset -c 0)
else
  SERVER_CPU=()
  LOAD_CPU=()
fi
# rps PORT TEST [args...]: lib.sh's, with redis-benchmark pinned.
rps() {
  local port=$1 test=$2
  shift 2
  "${LOAD_CPU[@]}" redis-benchmark -p "$port" -t "$test" -q "$@" 2>/dev/null | tr '\r' '\n' |
    awk '/requests per second/ { for (i = 2; i <= NF; i++) if ($i == "requests") rate = $(i - 1) } END { print rate }'
}
BIN="$TARGET/release/examples"

cargo build --release -q -p cache --examples --manifest-path "$BENCH_ROOT/Cargo.toml"

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# is_cache PORT: the server there really is ours (not another benchmark's on a reused port).
is_cache() {
  redis-cli -p "$1" INFO server | tr -d '\r' | grep -q '^infralab_server:cache$' ||
    { echo "port $1 is not our cache" >&2; exit 1; }
}

ONLY=${ONLY:-}

# --- 1. throughput ------------------------------------------------------------------
if [ "$ONLY" != hit-ratio ]; then
"${SERVER_CPU[@]}" "$BIN/cache_server" --port "$OURS" --maxmemory 1gb --maxmemory-policy lfu 2>/dev/null &
CACHE_PID=$!
PIDS+=("$CACHE_PID")
wait_port "$OURS"
is_cache "$OURS"
"${SERVER_CPU[@]}" redis-server --port "$PEER" --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
wait_port "$PEER"
N=200000
echo "== throughput: $N requests, 50 clients, 100k random keys, median of $RUNS runs (peer: redis $(redis-server --version | awk '{print $3}'))"
compare "SET -P 1" "$OURS" "$PEER" set "$RUNS" -n "$N" -r 100000 -P 1
compare "GET -P 1" "$OURS" "$PEER" get "$RUNS" -n "$N" -r 100000 -P 1
compare "SET -P 16" "$OURS" "$PEER" set "$RUNS" -n "$((N * 5))" -r 100000 -P 16
compare "GET -P 16" "$OURS" "$PEER" get "$RUNS" -n "$((N * 5))" -r 100000 -P 16
stop "$CACHE_PID"
stop "$REDIS_PID"
fi
[ "$ONLY" = throughput ] && exit 0

# --- 2. hit ratio -------------------------------------------------------------------
ZIPF=("$BIN/zipf_replay" --keys 100000 --requests "$REQUESTS" --theta 0.99 --seed 42 --value-size 1000)
WS=$("${ZIPF[@]}" --working-set)

replay_cache() { # POLICY BUDGET
  "${SERVER_CPU[@]}" "$BIN/cache_server" --port "$OURS" --maxmemory "$2" --maxmemory-policy "$1" 2>/dev/null &
  local pid=$!
  wait_port "$OURS"
  is_cache "$OURS"
  "${LOAD_CPU[@]}" "${REPLAY[@]}" --port "$OURS"
  stop "$pid"
}

replay_redis() { # POLICY BUDGET
  "${SERVER_CPU[@]}" redis-server --port "$PEER" --save '' --appendonly no >/dev/null 2>&1 &
  local pid=$!
  wait_port "$PEER"
  local base
  base=$(redis-cli -p "$PEER" INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }')
  redis-cli -p "$PEER" CONFIG SET maxmemory "$((base + $2))" >/dev/null
  redis-cli -p "$PEER" CONFIG SET maxmemory-policy "$1" >/dev/null
  "${LOAD_CPU[@]}" "${REPLAY[@]}" --port "$PEER"
  stop "$pid"
}

# hit_ratios TITLE POLICIES...: every policy of both servers at 1% and 10% of the working
# set, on the trace REPLAY draws.
hit_ratios() {
  local title=$1
  shift
  echo
  echo "== hit ratio: $title; working set $WS bytes; median of $RUNS runs"
  for pct in 1 10; do
    budget=$((WS * pct / 100))
    read -r bound fits < <("${REPLAY[@]}" --bound "$budget")
    exact=$("${REPLAY[@]}" --exact-lfu "$fits")
    online=$("${REPLAY[@]}" --online-bound "$fits")
    echo "-- budget $pct% = $budget bytes (~$fits entries); ideal bound $bound; best any online policy can expect $online; exact LFU with perfect memory $exact"
    best_redis=0
    for policy in allkeys-lru allkeys-lfu; do
      r=()
      for _ in $(seq 1 "$RUNS"); do r+=("$(replay_redis "$policy" "$budget")"); done
      m=$(median "${r[@]}")
      best_redis=$(awk -v a="$m" -v b="$best_redis" 'BEGIN { print (a > b) ? a : b }')
      printf '   redis %-12s hit ratio %.4f   (runs: %s)\n' "$policy" "$m" "${r[*]}"
    done
    for policy in "$@"; do
      r=()
      for _ in $(seq 1 "$RUNS"); do r+=("$(replay_cache "$policy" "$budget")"); done
      m=$(median "${r[@]}")
      printf '   cache %-12s hit ratio %.4f   vs best redis %+.4f   vs bound %+.4f   (runs: %s)\n' \
        "$policy" "$m" "$(awk -v a="$m" -v b="$best_redis" 'BEGIN { print a - b }')" \
        "$(awk -v a="$m" -v b="$bound" 'BEGIN { print a - b }')" "${r[*]}"
    done
  done
}

REPLAY=("${ZIPF[@]}")
hit_ratios "Zipf(0.99), 100000 keys, $REQUESTS requests, seed 42, 1000-byte values" lru lfu random ttl
REPLAY=("${ZIPF[@]}" --scan-every 20000 --scan-len 20000)
hit_ratios "the same Zipf requests with a burst of 20000 one-hit wonders after every 20000 (half the requests are scans, which never hit)" lru lfu
