#!/usr/bin/env bash
# What the dashboard's polling costs a kv server: bench/kv.sh's SET and GET rows against two
# in-memory kv servers, one polled by a dashboard once a second (INFO), one not. Prints the
# median requests/s of each and the ratio polled / unpolled (1.00: no cost), then, where perf
# is available, the instructions the polled kv spends in 10 idle seconds (the polling alone;
# load-independent, unlike requests/s on a busy machine).
#   bench/dashboard.sh [runs] [requests]
# Servers pinned to CPU 1; redis-benchmark and the dashboard to CPU 0 (see lib.sh).
. "$(dirname "$0")/lib.sh"
RUNS=${1:-5}
N=${2:-200000}
KV_POLLED=7420
KV_QUIET=7421
IDLE=7422
DASHBOARD=7423

infralab_bin
taskset -c 1 "$BIN" kv --port "$KV_POLLED" 2>/dev/null &
PIDS+=($!)
taskset -c 1 "$BIN" kv --port "$KV_QUIET" 2>/dev/null &
PIDS+=($!)
for port in "$KV_POLLED" "$KV_QUIET"; do wait_port "$port"; done
taskset -c 0 "$BIN" dashboard --port "$DASHBOARD" --kv "127.0.0.1:$KV_POLLED" \
  --cache '' --router '' --broker '' --stream '' --pubsub '' --sql '' --edge '' >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$DASHBOARD/api/state" | grep -q '"up":true' && break
  sleep 0.1
done

echo "kv polled by a dashboard (INFO once a second) vs kv alone: $N requests, 50 clients, median of $RUNS runs"
echo "(\"infralab\" = polled, \"peer\" = not polled; ratio 1.00 = the polling costs nothing measurable)"
for t in set get; do
  compare "${t^^} -P 1" "$KV_POLLED" "$KV_QUIET" "$t" "$RUNS" -c 50 -n "$N" -P 1
  compare "${t^^} -P 16" "$KV_POLLED" "$KV_QUIET" "$t" "$RUNS" -c 50 -n "$((N * 5))" -P 16
done

# The polling alone, in instructions (or, where the CPU's counters are not available to
# perf, as in most containers, in CPU time: task-clock): a fresh idle kv, 10 s without and
# 10 s with a dashboard, then 100,000 SETs for scale.
if command -v perf >/dev/null 2>&1; then
  EVENT=instructions
  perf stat -x, -e instructions true 2>&1 | grep -q '^<not' && EVENT=task-clock
  taskset -c 1 "$BIN" kv --port "$IDLE" 2>/dev/null &
  idle_pid=$!
  PIDS+=($idle_pid)
  wait_port "$IDLE"
  # counted COMMAND...: the idle kv's $EVENT while COMMAND runs.
  counted() {
    perf stat -x, -e "$EVENT" -p "$idle_pid" -- "$@" 2>&1 >/dev/null |
      awk -F, -v e="$EVENT" '$3 == e || $3 ~ e { print $1 }'
  }
  alone=$(counted sleep 10)
  taskset -c 0 "$BIN" dashboard --port 0 --kv "127.0.0.1:$IDLE" \
    --cache '' --router '' --broker '' --stream '' --pubsub '' --sql '' --edge '' >/dev/null 2>&1 &
  PIDS+=($!)
  sleep 2 # (its first poll connects; the window below should hold steady polls only)
  polled=$(counted sleep 10)
  kill "${PIDS[-1]}"
  sets=$(counted taskset -c 0 redis-benchmark -p "$IDLE" -t set -n 100000 -c 50 -q)
  unit=instructions
  [ "$EVENT" = task-clock ] && unit="ms of CPU"
  awk -v a="$alone" -v b="$polled" -v s="$sets" -v u="$unit" 'BEGIN {
    poll = (b - a) / 10; set = s / 100000
    printf "idle kv, %s in 10 s: alone %.3f, polled once a second %.3f\n", u, a, b
    printf "one poll ~ %.4g %s; one SET (-c 50) ~ %.4g; one poll costs what %.1f SETs cost\n", poll, u, set, (set > 0) ? poll / set : 0 }'
else
  echo "(perf not installed: no CPU counts)"
fi
